/**
 * The checkpoints awaiting review and those reviewed, with their versions:
 * `<train.dir>/reviews/queue.json`, written to a temporary name and renamed
 * on every change, so a restarted daemon finds every queued checkpoint again.
 * A checkpoint gets the next version ("v1", "v2", ...) when it is queued; the
 * same file queued twice keeps its version. A version whose checkpoint is gone
 * ('gone') is never tried again, and the next one is compared with the one
 * before it.
 *
 * API: `ReviewQueue.open(dir)`, `reload()`, `entries`, `pending()`, `find(version)`,
 * `previousOf(entry)`, `nextVersion()`, `add(checkpoint, now, extra?)`, `update(version, change)`.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { replaceFileDurably } from '../../adapters/durable-file.ts';
import { CelforgeError, errorMessage } from '../../errors.ts';
import { versionName, versionNumber } from './review-summary.ts';

export interface QueuedReview {
  version: string;
  /** The trained model file (as the trainer wrote it). */
  checkpoint: string;
  queuedAt: string;
  status: 'queued' | 'reviewed' | 'gone';
  /** An intermediate checkpoint's cumulative training step (review.atSteps); absent for a final checkpoint. */
  step?: number;
  /** Where the review keeps the checkpoint (a hard link or copy under reviews/<version>/), for a trainer that removes it. */
  kept?: string;
  reviewedAt: string | null;
  /** Why the last attempt did not finish (generator down, the window's end), or why it is gone; null when none did. */
  waiting: string | null;
  /** Not tried again before this time (the generator was down). */
  retryAt: string | null;
  /** The model file's sha256, once computed. */
  sha256: string | null;
}

interface QueueFile {
  version: 1;
  reviews: QueuedReview[];
}

export class ReviewQueue {
  readonly file: string;
  #reviews: QueuedReview[];

  private constructor(file: string, reviews: QueuedReview[]) {
    this.file = file;
    this.#reviews = reviews;
  }

  static async open(dir: string): Promise<ReviewQueue> {
    const file = path.join(dir, 'reviews', 'queue.json');
    return new ReviewQueue(file, await readReviews(file));
  }

  /** Reads the file again: another process (`celforge review-checkpoints`, the daemon) may have changed it. */
  async reload(): Promise<void> {
    this.#reviews = await readReviews(this.file);
  }

  get entries(): readonly QueuedReview[] {
    return this.#reviews;
  }

  /** The reviews still to run, oldest version first. */
  pending(): QueuedReview[] {
    return this.#reviews.filter((review) => review.status === 'queued');
  }

  find(version: string): QueuedReview | undefined {
    return this.#reviews.find((review) => review.version === version);
  }

  /** The version before this one that is not gone, compared against; undefined for the first. */
  previousOf(entry: QueuedReview): QueuedReview | undefined {
    const number = versionNumber(entry.version);
    return this.#reviews.filter((review) => versionNumber(review.version) < number && review.status !== 'gone').at(-1);
  }

  /** The version the next checkpoint queued gets. */
  nextVersion(): string {
    return versionName(Math.max(0, ...this.#reviews.map((review) => versionNumber(review.version))) + 1);
  }

  /** Queues a checkpoint under the next version; one already listed keeps its entry. */
  async add(checkpoint: string, now: Date, extra: Pick<QueuedReview, 'step' | 'kept'> = {}): Promise<QueuedReview> {
    const known = this.#reviews.find((review) => review.checkpoint === checkpoint);
    if (known) return known;
    const entry: QueuedReview = {
      version: this.nextVersion(), checkpoint, ...extra, queuedAt: now.toISOString(), status: 'queued', reviewedAt: null, waiting: null, retryAt: null, sha256: null,
    };
    this.#reviews.push(entry);
    await this.#save();
    return entry;
  }

  async update(version: string, change: Partial<Omit<QueuedReview, 'version' | 'checkpoint'>>): Promise<QueuedReview> {
    const entry = this.find(version);
    if (!entry) throw new CelforgeError('INTERNAL', `${this.file}: no checkpoint review ${version}`, { file: this.file });
    Object.assign(entry, change);
    await this.#save();
    return entry;
  }

  async #save(): Promise<void> {
    const data: QueueFile = { version: 1, reviews: this.#reviews };
    await replaceFileDurably(this.file, `${JSON.stringify(data, null, 2)}\n`);
  }
}

async function readReviews(file: string): Promise<QueuedReview[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new CelforgeError('FILE_NOT_FOUND', `${file}: cannot read the checkpoint review queue (${errorMessage(error)})`, { file, cause: error });
  }
  try {
    return (JSON.parse(text) as QueueFile).reviews;
  } catch (error) {
    throw new CelforgeError('LEDGER_CORRUPT', `${file}: not a checkpoint review queue (${errorMessage(error)}); move it away to start the versions afresh`, { file, cause: error });
  }
}
