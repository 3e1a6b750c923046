/**
 * The daemon: the inbox watcher feeding the scheduler, and overnight
 * training when configured, until SIGTERM/SIGINT.
 * Shutdown stops ffmpeg (the job resumes from its last complete frame),
 * leaves the ledger saved and releases the library. SIGHUP reloads the
 * configuration file and makes a training request (`celforge train`) seen at once.
 */
import { randomBytes } from 'node:crypto';
import type { Config } from '../config/schema.ts';
import { startReviewServer, type ReviewServer } from '../review/review-server.ts';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import { InboxWatcher } from './inbox-watcher.ts';
import { intakeVideo } from './intake.ts';
import { Runtime } from './runtime.ts';

export interface DaemonOptions {
  config: Config;
  log: Logger;
  reloadConfig: () => Promise<Config>;
  /** The review page's port, over the configured one. */
  port?: number;
}

export async function runDaemon({ config, log, reloadConfig, port }: DaemonOptions): Promise<void> {
  // A stop asked for while the library and the page open is kept for when they are, instead of killing the daemon with its lock held.
  let stopBeforeReady: string | null = null;
  const onEarlyStop = (signal: string) => void (stopBeforeReady = signal);
  process.on('SIGTERM', onEarlyStop);
  process.on('SIGINT', onEarlyStop);
  const runtime = await Runtime.open({ config, log, command: 'start' }).catch((error: unknown) => {
    process.off('SIGTERM', onEarlyStop);
    process.off('SIGINT', onEarlyStop);
    throw error;
  });
  let review: ReviewServer | null = null;
  if (config.review.enabled) {
    try {
      review = await startReviewServer(
        { config: () => runtime.config, ledger: runtime.ledger, catalog: runtime.catalog, training: runtime.training, wakeTraining: () => runtime.wakeTraining() },
        { ...config.review, port: port ?? config.review.port, token: randomBytes(24).toString('hex'), log },
      );
    } catch (error) {
      process.off('SIGTERM', onEarlyStop);
      process.off('SIGINT', onEarlyStop);
      await runtime.release();
      throw error;
    }
    runtime.notifier.reviewUrl = review.url;
    log.info({ url: review.url }, `review page: ${review.url}`);
  }
  let intakeQueue = Promise.resolve();
  const watcher = new InboxWatcher({
    config,
    log,
    onVideo: (file) => {
      // One at a time, so that two copies of a rip settling together make one job.
      intakeQueue = intakeQueue.then(async () => {
        try {
          await intakeVideo(file, runtime.ledger, runtime.config, log);
          runtime.scheduler.notify();
        } catch (error) {
          log.error({ file }, `${file}: cannot read it: ${errorMessage(error)}`);
        }
      });
    },
  });

  const onStop = (signal: string) => {
    log.info({ signal }, 'shutting down');
    runtime.stop();
  };
  const onReload = () => {
    reloadConfig()
      .then((next) => {
        runtime.reload(next);
        log.info({ file: next.source }, 'configuration reloaded');
      })
      .catch((error: unknown) => log.error(`configuration not reloaded: ${errorMessage(error)}`));
  };
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  process.on('SIGHUP', onReload);
  process.off('SIGTERM', onEarlyStop);
  process.off('SIGINT', onEarlyStop);
  if (stopBeforeReady) onStop(stopBeforeReady);
  // The watcher may wait for a network share; jobs already queued and training go on meanwhile.
  const watching = watcher.start().catch((error: unknown) => log.error(`inbox watcher: ${errorMessage(error)}`));
  try {
    await Promise.all([runtime.scheduler.run(), runtime.runTraining()]);
  } finally {
    process.off('SIGTERM', onStop);
    process.off('SIGINT', onStop);
    process.off('SIGHUP', onReload);
    await watcher.close();
    await watching;
    await review?.close();
    await intakeQueue;
    await runtime.release();
    log.info('stopped');
  }
}
