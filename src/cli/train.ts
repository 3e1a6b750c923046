/**
 * `celforge train [--now]`: queues a training run for the next window (or
 * at once with --now). A running daemon is told (SIGHUP) and takes the
 * request at once; a daemon on another host (a shared library) is never
 * signalled from here, where its pid is some other process: it finds the
 * request at its next training check. Without a daemon, --now runs the training here in the
 * foreground until it finishes, fails or stops; a queued run waits for
 * `celforge start`.
 */
import { writeFile } from 'node:fs/promises';
import { hostName } from '../adapters/host-name.ts';
import { lockHolder } from '../adapters/lock-file.ts';
import { assertWritableFolder } from '../adapters/writable-folder.ts';
import { loadConfig } from '../config/load.ts';
import { lockPath, stateDir } from '../daemon/library-paths.ts';
import { Runtime } from '../daemon/runtime.ts';
import { CelforgeError } from '../errors.ts';
import { trainingRequestPath, type TrainingState } from '../training/training-state.ts';
import { nextWindowStart } from '../training/windows.ts';
import { commandContext, type GlobalOptions } from './context.ts';
import { describeTraining } from './training-summary.ts';

export async function trainCommand(options: GlobalOptions & { now?: boolean }): Promise<number> {
  const config = await loadConfig({ configPath: options.config, library: options.library });
  if (!config.train) {
    throw new CelforgeError('CONFIG_INVALID', `${config.source ?? 'the configuration'}: no train section; set train.sdScripts, train.maxTrainSteps and the rest (see the README)`);
  }
  if (config.train.dir) await assertWritableFolder(config.train.dir, 'the training folder (train.dir)');
  const daemon = await lockHolder(lockPath(config.library));
  if (daemon) {
    const request = trainingRequestPath(stateDir(config.library));
    await writeFile(request, JSON.stringify({ queuedAt: new Date().toISOString(), now: Boolean(options.now) }));
    if (daemon.host !== undefined && daemon.host !== hostName()) {
      const command = `celforge train${options.now ? ' --now' : ''}`;
      process.stdout.write(`queued in ${request} for the daemon on ${daemon.host} (pid ${daemon.pid} there), which takes it at its next training check `
        + `(train.checkSeconds, ${config.train.checkSeconds} s in this configuration); it is not signalled from ${hostName()}. `
        + `To have it taken at once, run "${command}" on ${daemon.host}, or "kill -HUP ${daemon.pid}" there.\n`);
      return 0;
    }
    process.kill(daemon.pid, 'SIGHUP');
    process.stdout.write(`queued with the daemon (pid ${daemon.pid}); ${options.now ? 'it starts now when the machine is idle' : describeNext(config.train)}\n`);
    return 0;
  }
  const { log } = await commandContext(options, 'info');
  const runtime = await Runtime.open({ config, log, command: 'train' });
  const onInterrupt = () => runtime.stop();
  process.on('SIGINT', onInterrupt);
  process.on('SIGTERM', onInterrupt);
  try {
    if (options.now && runtime.catalog.search(config.train.query).length === 0) {
      // Training would find nothing to train on at every check, and never end.
      throw new CelforgeError('FILE_NOT_FOUND', `train.query "${config.train.query}": no images in ${config.library} to train on; import pictures or process videos first`);
    }
    await runtime.training!.request(Boolean(options.now));
    if (!options.now) {
      process.stdout.write(`queued; "celforge start" runs it: ${describeNext(config.train)}\n`);
      return 0;
    }
    let last = '';
    await runtime.runTraining((state: TrainingState) => {
      const line = describeTraining(state);
      if (line !== last) process.stdout.write(`${line}\n`);
      last = line;
      return state.status === 'finished' || state.status === 'failed' || (state.status === 'waiting-for-window' && state.runs.some((run) => run.stopReason));
    });
    return runtime.training!.state.status === 'failed' ? 1 : 0;
  } finally {
    process.off('SIGINT', onInterrupt);
    process.off('SIGTERM', onInterrupt);
    await runtime.release();
  }
}

function describeNext(train: NonNullable<Awaited<ReturnType<typeof loadConfig>>['train']>): string {
  const next = nextWindowStart(train.windows, new Date(), train.timezone);
  return next ? `the next window opens ${next.toISOString()}` : 'no training window is configured';
}
