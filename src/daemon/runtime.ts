/**
 * What the daemon and `celforge process` share: the library lock, the ledger,
 * the adapters and the scheduler, over one configuration that SIGHUP can
 * reload. Jobs a killed process left `running` are queued again to resume.
 */
import { realDiskSpace, type DiskSpace } from '../adapters/disk.ts';
import { Catalog } from '../adapters/catalog-store.ts';
import { acquireLock, type Lock } from '../adapters/lock-file.ts';
import { resolveFfmpegBinaries } from '../adapters/ffmpeg-binaries.ts';
import { createImageWorkers, type ImageWorkers } from '../adapters/image-workers.ts';
import { MediaRepository } from '../adapters/media.ts';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { downloadLog, type DownloadProgress } from '../models/download-progress.ts';
import { ModelCache } from '../models/model-cache.ts';
import { ModelFetcher } from '../models/model-fetcher.ts';
import { notifierFor } from '../notify/channels-from-config.ts';
import type { Notifier } from '../notify/notifier.ts';
import { systemIdleProbe, type IdleProbe } from '../adapters/idle-probe.ts';
import { CheckpointReviewer } from '../stages/checkpoint-review/review-runner.ts';
import { exportQuery } from '../stages/export/export-query.ts';
import { runTrainingLoop } from '../training/training-loop.ts';
import { TrainingSupervisor } from '../training/training-supervisor.ts';
import type { TrainingState } from '../training/training-state.ts';
import { STAGES } from './job.ts';
import { Ledger } from './ledger.ts';
import { catalogPath, ledgerPath, lockPath, stateDir } from './library-paths.ts';
import { separateSharedFolders } from './output-folder.ts';
import { Scheduler } from './scheduler.ts';
import { openJobQueue, QUEUE_NAMES } from '../adapters/job-queue.ts';
import type { ExtractJobData, ExtractJobResult } from './extract-job.ts';
import { remoteExtractStage, type ExtractQueue } from './remote-extract.ts';
import type { FacesJobData, FacesJobResult } from './faces-job.ts';
import { remoteFacesStage, type FacesQueue } from './remote-faces.ts';
import type { TagsJobData, TagsJobResult } from './tags-job.ts';
import { remoteTagsStage, type TagsQueue } from './remote-tags.ts';
import type { CcipJobData, CcipJobResult } from './ccip-job.ts';
import { remoteCharactersStage, type CcipQueue } from './remote-ccip.ts';

/** The coordinator's queues (queue.redis): extraction, then the batches of faces, CCIP features and tags. */
interface CoordinatorQueues {
  extract: ExtractQueue;
  faces: FacesQueue;
  ccip: CcipQueue;
  tags: TagsQueue;
}

export interface RuntimeOptions {
  config: Config;
  log: Logger;
  command: string;
  disk?: DiskSpace;
  /** How model downloads on first need are shown: log lines unless given (the CLI's bar). */
  downloads?: DownloadProgress;
  /** Training's clock and idle probe (tests move through nights with their own). */
  clock?: () => Date;
  idle?: IdleProbe;
}

export class Runtime {
  config: Config;
  readonly log: Logger;
  readonly ledger: Ledger;
  readonly catalog: Catalog;
  readonly scheduler: Scheduler;
  readonly media: MediaRepository;
  readonly images: ImageWorkers;
  readonly models = new ModelCache();
  /** Overnight training, when the configuration has a `train` section. */
  training: TrainingSupervisor | null = null;
  readonly notifier: Notifier;
  /** Reviews each finished training's checkpoint in the training windows, when review.generator is set. */
  readonly reviewer: CheckpointReviewer;
  readonly #trainingLoop: { wake?: () => void } = {};
  readonly #abort: AbortController;
  readonly #lock: Lock;

  readonly #clock: () => Date;
  readonly #idle: IdleProbe;
  /** The daemon as coordinator (queue.redis): extraction, faces, CCIP features and tags run on the workers. */
  readonly #queues: CoordinatorQueues | null;

  private constructor(config: Config, log: Logger, ledger: Ledger, catalog: Catalog, lock: Lock, disk: DiskSpace, fetcher: ModelFetcher, clock: () => Date, idle: IdleProbe, queues: CoordinatorQueues | null) {
    this.config = config;
    this.log = log;
    this.ledger = ledger;
    this.catalog = catalog;
    this.#lock = lock;
    this.#queues = queues;
    this.#abort = new AbortController();
    this.media = new MediaRepository(resolveFfmpegBinaries(config.ffmpeg));
    this.images = createImageWorkers(config.inference.workers);
    this.notifier = notifierFor(config, log);
    this.#clock = clock;
    this.#idle = idle;
    this.reviewer = new CheckpointReviewer({
      config: () => this.config, ports: { images: this.images, models: this.models, log }, log, clock, events: this.notifier, signal: this.#abort.signal,
    });
    this.scheduler = new Scheduler(ledger, {
      config: () => this.config,
      media: this.media,
      disk,
      catalog,
      images: this.images,
      models: this.models,
      fetcher,
      events: this.notifier,
      log,
      signal: this.#abort.signal,
      ...(queues ? {
        remoteStages: {
          extract: remoteExtractStage(queues.extract), faces: remoteFacesStage(queues.faces),
          characters: remoteCharactersStage(queues.ccip), tags: remoteTagsStage(queues.tags),
        },
      } : {}),
    });
  }

  static async open({ config, log, command, disk = realDiskSpace, downloads = downloadLog(log), clock = () => new Date(), idle = systemIdleProbe }: RuntimeOptions): Promise<Runtime> {
    const lock = await acquireLock(lockPath(config.library), command, `${config.library}: the library`);
    try {
      const ledger = await Ledger.open(ledgerPath(config.library));
      await separateSharedFolders(ledger, config.library, log);
      for (const job of ledger.jobs()) {
        if (job.state === 'running') {
          await ledger.update(job.id, (target) => void (target.state = 'queued'));
          log.info({ job: job.id, stage: job.stage }, `${job.source}: resuming after an interruption`);
        } else if (job.state === 'done' && job.stage !== STAGES.at(-1)) {
          // Finished by a celforge that had fewer stages: the new ones run now.
          await ledger.update(job.id, (target) => void (target.state = 'queued'));
          log.info({ job: job.id, stage: job.stage }, `${job.source}: continuing with the stages after ${job.stage}`);
        }
      }
      // Only the daemon coordinates: a one-off `process` runs every stage itself.
      const queues = command === 'start' && config.queue.redis ? await openCoordinatorQueues(config.queue.redis, config) : null;
      for (const risk of (await queues?.extract.settingsAtRisk()) ?? []) log.warn(`job queue: ${risk}`);
      const runtime = new Runtime(config, log, ledger, Catalog.open(catalogPath(config.library)), lock, disk, new ModelFetcher(downloads, command), clock, idle, queues);
      if (config.train) runtime.training = await runtime.#openTraining();
      const { ffmpeg, ffprobe, source } = runtime.media.binaries;
      log.debug({ ffmpeg, ffprobe, source }, 'ffmpeg binaries');
      return runtime;
    } catch (error) {
      await lock.release();
      throw error;
    }
  }

  #openTraining(): Promise<TrainingSupervisor> {
    return TrainingSupervisor.open({
      train: () => this.config.train!,
      stateDir: stateDir(this.config.library),
      clock: this.#clock,
      idle: this.#idle,
      log: this.log,
      onEvent: (event) => {
        if (event.kind !== 'started') this.notifier.emit({ kind: 'training', outcome: event.kind, message: event.message });
      },
      prepareDataset: async (out) => {
        const result = await exportQuery(this.catalog, this.config, this.config.train!.query, out);
        return { datasetConfig: result.datasetConfig, images: result.images };
      },
    });
  }

  /** Supervises training until shutdown (or until `until` holds); returns at once without a `train` section. */
  async runTraining(until?: Parameters<typeof runTrainingLoop>[0]['until']): Promise<void> {
    if (!this.training) return;
    // A foreground run (`until`) only trains; the daemon also reviews the checkpoints it makes.
    const afterTick = until ? undefined : (state: TrainingState) => this.reviewer.tick(state);
    await runTrainingLoop({ supervisor: this.training, train: () => this.config.train, signal: this.#abort.signal, log: this.log, until, handle: this.#trainingLoop, afterTick });
  }

  /** Makes the training loop look at a new request now. */
  wakeTraining(): void {
    this.#trainingLoop.wake?.();
  }

  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** Applies a reloaded configuration; waiting jobs re-check at once (a lowered reserve takes effect). */
  reload(config: Config): void {
    this.config = { ...config, library: this.config.library };
    this.scheduler.retryNow();
    this.#trainingLoop.wake?.();
  }

  /** Stops the running stage (ffmpeg is killed; the job resumes later) and the scheduler loop. */
  stop(): void {
    this.#abort.abort();
  }

  async release(): Promise<void> {
    await this.training?.shutdown();
    await this.notifier.flush();
    await this.images.close();
    for (const queue of Object.values(this.#queues ?? {})) await queue.close();
    this.catalog.close();
    await this.#lock.release();
  }
}

async function openCoordinatorQueues(url: string, config: Config): Promise<CoordinatorQueues> {
  const settings = { attempts: config.queue.attempts, backoffMs: config.queue.backoffSeconds * 1000 };
  const opened: { close(): Promise<void> }[] = [];
  const open = async <Data, Result>(name: string) => {
    const queue = await openJobQueue<Data, Result>(url, name, settings);
    opened.push(queue);
    return queue;
  };
  try {
    return {
      extract: await open<ExtractJobData, ExtractJobResult>(QUEUE_NAMES.extract),
      faces: await open<FacesJobData, FacesJobResult>(QUEUE_NAMES.faces),
      ccip: await open<CcipJobData, CcipJobResult>(QUEUE_NAMES.ccip),
      tags: await open<TagsJobData, TagsJobResult>(QUEUE_NAMES.tags),
    };
  } catch (error) {
    await Promise.all(opened.map((queue) => queue.close().catch(() => undefined)));
    throw error;
  }
}
