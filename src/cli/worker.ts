/**
 * `celforge worker --redis URL [--gpu N] [--concurrency N]`: takes extraction
 * jobs and face detection, CCIP feature and tagging batches from the
 * coordinator's queues (queue.redis) and runs them on this
 * machine against the shared library, until SIGINT/SIGTERM; then the running
 * jobs go back to the queue for another worker. A worker that does not see
 * the library stops the same way, with exit code 1. The address comes from
 * --redis or queue.redis; this machine's configuration gives ffmpeg, threads,
 * hardware decoding, models, inference providers and queue.pathMap, and its library folder only holds the
 * worker's log. --gpu picks the GPU (CUDA_VISIBLE_DEVICES) and is shown by
 * `status`.
 */
import { realDiskSpace } from '../adapters/disk.ts';
import { resolveFfmpegBinaries } from '../adapters/ffmpeg-binaries.ts';
import { createImageWorkers } from '../adapters/image-workers.ts';
import { QUEUE_NAMES, startQueueWorker, WORKER_HEARTBEAT_MS, type WorkerSettings } from '../adapters/job-queue.ts';
import { MediaRepository } from '../adapters/media.ts';
import { loadConfig } from '../config/load.ts';
import { redactRedisUrl, redisUrlProblem } from '../config/redis-url.ts';
import { extractJobRunner } from '../daemon/extract-worker.ts';
import type { ExtractJobData, ExtractJobResult } from '../daemon/extract-job.ts';
import type { CcipJobData, CcipJobResult } from '../daemon/ccip-job.ts';
import { ccipJobRunner } from '../daemon/ccip-worker.ts';
import type { FacesJobData, FacesJobResult } from '../daemon/faces-job.ts';
import { facesJobRunner } from '../daemon/faces-worker.ts';
import type { BatchWorkerPorts } from '../daemon/mapped-job.ts';
import type { TagsJobData, TagsJobResult } from '../daemon/tags-job.ts';
import { tagsJobRunner } from '../daemon/tags-worker.ts';
import { ModelCache } from '../models/model-cache.ts';
import { CelforgeError } from '../errors.ts';
import { createLogger } from '../log.ts';
import type { GlobalOptions } from './context.ts';

export interface WorkerCommandOptions extends GlobalOptions {
  redis?: string;
  gpu?: string;
  concurrency?: string;
}

export async function workerCommand(options: WorkerCommandOptions): Promise<void> {
  const config = await loadConfig({ configPath: options.config, library: options.library });
  const url = options.redis ?? config.queue.redis;
  if (!url) throw new CelforgeError('CONFIG_INVALID', 'celforge worker: no job queue; give --redis redis://[user][:password]@host:port (the coordinator\'s queue.redis)');
  const problem = redisUrlProblem(url);
  if (problem) throw new CelforgeError('CONFIG_INVALID', `--redis ${redactRedisUrl(url)}: ${problem}`);
  const gpu = options.gpu === undefined ? null : wholeNumber('--gpu', options.gpu, 0);
  const concurrency = options.concurrency === undefined ? 1 : wholeNumber('--concurrency', options.concurrency, 1);
  // Read by the CUDA runtime when it first loads, so set before any model does.
  if (gpu !== null) process.env.CUDA_VISIBLE_DEVICES = String(gpu);

  const log = createLogger({ library: config.library, level: options.verbose ? 'debug' : config.log.level });
  const abort = new AbortController();
  let stop!: (why: string) => void;
  const stopped = new Promise<string>((resolve) => (stop = resolve));
  const onLibraryMissing = (error: CelforgeError) => {
    if (!process.exitCode) log.error(`${error.message}; this worker stops, its job goes back to the queue`);
    process.exitCode = 1;
    stop('library missing');
  };
  const runner = extractJobRunner({
    config: () => config,
    media: new MediaRepository(resolveFfmpegBinaries(config.ffmpeg)),
    disk: realDiskSpace,
    log,
    signal: abort.signal,
    onLibraryMissing,
  });
  const settings: WorkerSettings = {
    concurrency,
    lockMs: config.queue.lockSeconds * 1000,
    stalledMs: config.queue.stalledSeconds * 1000,
    maxStalled: config.queue.maxStalled,
    gpu,
    heartbeatMs: WORKER_HEARTBEAT_MS,
  };
  const onError = quietRepeats((message) => log.warn(`job queue: ${message}`));
  const worker = await startQueueWorker<ExtractJobData, ExtractJobResult>(url, QUEUE_NAMES.extract, runner, settings, onError);
  // Models load on the first job that needs them and stay loaded for the worker's life, one cache for all queues.
  const images = createImageWorkers(config.inference.workers);
  const batchPorts: BatchWorkerPorts = { config: () => config, images, models: new ModelCache(), log, onLibraryMissing };
  const batchWorkers = [
    await startQueueWorker<FacesJobData, FacesJobResult>(url, QUEUE_NAMES.faces, facesJobRunner(batchPorts), settings, onError),
    await startQueueWorker<CcipJobData, CcipJobResult>(url, QUEUE_NAMES.ccip, ccipJobRunner(batchPorts), settings, onError),
    await startQueueWorker<TagsJobData, TagsJobResult>(url, QUEUE_NAMES.tags, tagsJobRunner(batchPorts), settings, onError),
  ];
  // Scripts and tests look for "taking extraction jobs and face detection batches".
  log.info({ worker: worker.id, redis: redactRedisUrl(url), gpu, concurrency }, `worker ${worker.id}: taking extraction jobs and face detection batches, CCIP feature and tagging batches from ${redactRedisUrl(url)}`);

  const onSignal = (signal: string) => {
    log.info({ signal }, 'worker shutting down; running jobs go back to the queue');
    stop(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  await stopped;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  abort.abort();
  const closed = (await Promise.all([worker, ...batchWorkers].map((each) => each.close()))).every(Boolean);
  await images.close();
  if (closed) {
    log.info('worker stopped');
    return;
  }
  log.warn('worker stopped without a word from Redis; its running jobs are taken back by another worker once Redis answers');
  // BullMQ's connections keep trying to reconnect after being dropped; nothing is left to finish.
  process.exit();
}

/** While Redis is down BullMQ reports every reconnect: the same message is said again only after a minute. */
function quietRepeats(say: (message: string) => void): (error: Error) => void {
  let last = '';
  let at = 0;
  return (error) => {
    if (error.message === last && Date.now() - at < 60_000) return;
    last = error.message;
    at = Date.now();
    say(error.message);
  };
}

function wholeNumber(option: string, text: string, min: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) throw new CelforgeError('CONFIG_INVALID', `${option} ${text}: expected a whole number of at least ${min}`);
  return value;
}
