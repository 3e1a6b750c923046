/**
 * What every stage is: a function of (job, ports) that returns what happened.
 * A stage never imports another stage; the pipeline applies its result to
 * the ledger.
 */
import type { Catalog } from '../adapters/catalog-store.ts';
import type { ImageWorkers } from '../adapters/image-workers.ts';
import type { DiskSpace } from '../adapters/disk.ts';
import type { MediaRepository } from '../adapters/media.ts';
import type { Config } from '../config/schema.ts';
import type { Job, JobState } from '../daemon/job.ts';
import type { Logger } from '../log.ts';
import type { ModelCache } from '../models/model-cache.ts';
import type { ModelFetcher } from '../models/model-fetcher.ts';

export interface StagePorts {
  /** Read at each use: a reloaded configuration (SIGHUP) takes effect at the next check. */
  config: () => Config;
  media: MediaRepository;
  disk: DiskSpace;
  catalog: Catalog;
  /** Worker threads for reading and preparing pictures. */
  images: ImageWorkers;
  /** Models loaded once for the process's life. */
  models: ModelCache;
  /** Downloads missing models on first need (models.autoFetch); without it a missing model is only waited for. */
  fetcher?: ModelFetcher;
  log: Logger;
  /**
   * Aborted when the daemon shuts down: stop at once, leaving a resumable state. With a CelforgeError CLAIM_LOST as
   * its reason another process owns the work now (a queue worker lost its job's lock): stop at once, writing nothing more.
   */
  signal: AbortSignal;
  /** Records a partial result and progress while the stage runs. */
  save: (change: (job: Job) => void) => Promise<void>;
}

export type StageResult =
  | { kind: 'done'; change?: (job: Job) => void }
  /** Not an error: try this stage again later (disk space, a missing model). */
  | { kind: 'wait'; state: Extract<JobState, 'waiting-for-disk' | 'paused-disk-low' | 'waiting-for-model'>; retryAfterMs: number; reason: string; change?: (job: Job) => void }
  /** Shutdown asked for it; the job resumes from its saved state. */
  | { kind: 'interrupted' };

export type Stage = (job: Job, ports: StagePorts) => Promise<StageResult>;
