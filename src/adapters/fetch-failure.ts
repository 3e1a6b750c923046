/**
 * Why a fetch() to a local service failed, in words for an error message:
 * "no answer within <timeout>" when its AbortSignal timed out, else the
 * network error under undici's generic "fetch failed" (its `cause`, e.g.
 * "connect ECONNREFUSED 127.0.0.1:7860"). Callers redact secrets from it.
 */
export function fetchFailureReason(error: unknown, timeout: string): string {
  const name = (error as Error | undefined)?.name;
  if (name === 'TimeoutError' || name === 'AbortError') return `no answer within ${timeout}`;
  const cause = (error as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  return cause?.message ?? cause?.code ?? (error instanceof Error ? error.message : String(error));
}
