/**
 * What every review API route shares when it refuses a request: ApiError (an
 * HTTP status and a message the page shows) and parseBody, which checks a
 * POST body against the route's zod schema and answers 400 naming each field
 * that is wrong and the body the route expects.
 */
import type { z } from 'zod';

export class ApiError extends Error {
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export function parseBody<S extends z.ZodType>(schema: S, body: unknown, usage: string): z.output<S> {
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => `${issue.path.length ? issue.path.join('.') : 'the body'}: ${issue.message}`);
  throw new ApiError(400, `${problems.join('; ')} (expected ${usage})`);
}
