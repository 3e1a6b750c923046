/**
 * A running queue job's claim: whether this worker still holds the job's
 * lock. The lock runs out `lockMs` after the last renewal Redis accepted,
 * counted from when that renewal was asked for (Redis set the expiry later,
 * never earlier). Without word of a newer renewal by then, or when Redis
 * refuses one (the lock ran out, or another worker holds the job now), the
 * claim is lost: its signal aborts, once, with a CelforgeError CLAIM_LOST
 * that says why; from then on nothing the job sends is waited for.
 *
 * API: new JobClaim(jobId, lockMs, heldSince, onLost) -> signal, renewed(askedAt),
 * lose(why), whileHeld(send), end().
 */
import { CelforgeError } from '../errors.ts';

export class JobClaim {
  readonly #jobId: string;
  readonly #lockMs: number;
  readonly #onLost: (error: CelforgeError) => void;
  readonly #controller = new AbortController();
  #timer: NodeJS.Timeout | undefined;

  /** `heldSince`: when the lock was taken (BullMQ's processedOn, the time the worker asked for the job). */
  constructor(jobId: string, lockMs: number, heldSince: number, onLost: (error: CelforgeError) => void) {
    this.#jobId = jobId;
    this.#lockMs = lockMs;
    this.#onLost = onLost;
    this.renewed(heldSince);
  }

  /** Aborted once the job may be another worker's. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Redis accepted a renewal asked for at `askedAt`: the lock holds until lockMs after it. */
  renewed(askedAt: number): void {
    if (this.signal.aborted) return;
    clearTimeout(this.#timer);
    const seconds = this.#lockMs / 1000;
    this.#timer = setTimeout(
      () => this.lose(`no renewal of its ${seconds} s lock was confirmed in time (Redis out of reach, or this process stalled)`),
      Math.max(0, askedAt + this.#lockMs - Date.now()),
    );
  }

  lose(why: string): void {
    if (this.signal.aborted) return;
    clearTimeout(this.#timer);
    const error = new CelforgeError('CLAIM_LOST', `job ${this.#jobId}: this worker no longer holds it: ${why}. The queue hands it to another worker; this one stops it and writes nothing more for it`);
    this.#controller.abort(error);
    this.#onLost(error);
  }

  /** What `send` gives while the claim holds; once lost, it is not called, or no longer waited for: undefined at once. */
  whileHeld<T>(send: () => Promise<T>): Promise<T | undefined> {
    if (this.signal.aborted) return Promise.resolve(undefined);
    return new Promise<T | undefined>((resolve, reject) => {
      const onAbort = () => resolve(undefined);
      this.signal.addEventListener('abort', onAbort, { once: true });
      send()
        .then(resolve, (error: unknown) => (this.signal.aborted ? resolve(undefined) : reject(error)))
        .finally(() => this.signal.removeEventListener('abort', onAbort));
    });
  }

  /** The job ended here: no more watching. */
  end(): void {
    clearTimeout(this.#timer);
  }
}
