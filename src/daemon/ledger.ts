/**
 * The job ledger: one JSON file in the library (lowdb on a JSONFile adapter,
 * renamed into place atomically, then fsynced with its folder). A damaged
 * file is never silently replaced: it is copied aside and opening fails.
 */
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Low, type Adapter } from 'lowdb';
import { JSONFile } from 'lowdb/node';
import { fsyncDir, fsyncFile } from '../adapters/durable-file.ts';
import { CelforgeError, errorMessage } from '../errors.ts';
import type { Job } from './job.ts';

export interface LedgerData {
  version: 1;
  jobs: Job[];
}

class DurableJSONFile<T> implements Adapter<T> {
  readonly #file: string;
  readonly #json: JSONFile<T>;

  constructor(file: string) {
    this.#file = file;
    this.#json = new JSONFile<T>(file);
  }

  read(): Promise<T | null> {
    return this.#json.read();
  }

  async write(data: T): Promise<void> {
    await this.#json.write(data);
    await fsyncFile(this.#file);
    await fsyncDir(path.dirname(this.#file));
  }
}

export class Ledger {
  readonly file: string;
  readonly #db: Low<LedgerData>;

  private constructor(file: string, db: Low<LedgerData>) {
    this.file = file;
    this.#db = db;
  }

  static async open(file: string): Promise<Ledger> {
    await mkdir(path.dirname(file), { recursive: true });
    const db = new Low<LedgerData>(new DurableJSONFile<LedgerData>(file), { version: 1, jobs: [] });
    try {
      await db.read();
      if (!Array.isArray(db.data?.jobs)) throw new Error('it has no "jobs" list');
    } catch (error) {
      const backup = `${file}.damaged-${Date.now()}`;
      await copyFile(file, backup).catch(() => undefined);
      throw new CelforgeError(
        'LEDGER_CORRUPT',
        `${file}: the job ledger is damaged (${errorMessage(error)}). A copy was kept at ${backup}. ` +
          'Repair the JSON by hand, or move the file away to start a new ledger (the frames on disk are kept and extraction resumes from them).',
        { file, cause: error },
      );
    }
    return new Ledger(file, db);
  }

  /** Reads the ledger without taking part in writing it (status, frames). */
  static async read(file: string): Promise<Job[]> {
    const ledger = await Ledger.open(file);
    return ledger.jobs();
  }

  jobs(): Job[] {
    return this.#db.data.jobs;
  }

  get(id: string): Job | undefined {
    return this.#db.data.jobs.find((job) => job.id === id);
  }

  async add(job: Job): Promise<Job> {
    this.#db.data.jobs.push(job);
    await this.#db.write();
    return job;
  }

  /** Applies `change` to the job and writes the ledger. */
  async update(id: string, change: (job: Job) => void): Promise<Job> {
    const job = this.get(id);
    if (!job) throw new Error(`no job ${id} in ${this.file}`);
    change(job);
    job.updatedAt = new Date().toISOString();
    await this.#db.write();
    return job;
  }
}
