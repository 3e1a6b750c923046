/**
 * Batches with the next one prepared while this one is used: picture
 * preparation (image workers) runs beside inference (ONNX Runtime's
 * threads) instead of after it.
 */
export async function forEachBatch<T, P>(
  items: readonly T[],
  size: number,
  prepare: (batch: T[]) => Promise<P>,
  use: (batch: T[], prepared: P) => Promise<void>,
  signal?: AbortSignal,
): Promise<'done' | 'aborted'> {
  const batches: T[][] = [];
  for (let start = 0; start < items.length; start += size) batches.push(items.slice(start, start + size));
  const begin = (batch: T[]) => {
    const promise = prepare(batch);
    promise.catch(() => undefined); // awaited below; this only keeps an early failure from counting as unhandled
    return promise;
  };
  let next = batches.length ? begin(batches[0]!) : null;
  for (let index = 0; index < batches.length; index += 1) {
    if (signal?.aborted) return 'aborted';
    const prepared = await next!;
    next = index + 1 < batches.length ? begin(batches[index + 1]!) : null;
    await use(batches[index]!, prepared);
  }
  return signal?.aborted ? 'aborted' : 'done';
}
