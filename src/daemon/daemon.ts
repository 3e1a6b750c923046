/**
 * The daemon: the inbox watcher feeding the scheduler, and overnight
 * training when configured, until SIGTERM/SIGINT.
 * Shutdown stops ffmpeg (the job resumes from its last complete frame),
 * leaves the ledger saved and releases the library. SIGHUP reloads the
 * configuration file and makes a training request (`celforge train`) seen at once.
 */
import type { Config } from '../config/schema.ts';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import { InboxWatcher } from './inbox-watcher.ts';
import { intakeVideo } from './intake.ts';
import { Runtime } from './runtime.ts';

export interface DaemonOptions {
  config: Config;
  log: Logger;
  reloadConfig: () => Promise<Config>;
}

export async function runDaemon({ config, log, reloadConfig }: DaemonOptions): Promise<void> {
  const runtime = await Runtime.open({ config, log, command: 'start' });
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
  try {
    await watcher.start();
    await Promise.all([runtime.scheduler.run(), runtime.runTraining()]);
  } finally {
    process.off('SIGTERM', onStop);
    process.off('SIGINT', onStop);
    process.off('SIGHUP', onReload);
    await watcher.close();
    await intakeQueue;
    await runtime.release();
    log.info('stopped');
  }
}
