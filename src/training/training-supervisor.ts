/**
 * Overnight training: a queued run starts only inside a training window (or
 * at once when asked with --now) and only when the machine is idle; it is
 * stopped at the window's end or when someone else wants the GPU, at the
 * next state save (or, after `stopWaitMinutes`, at once, keeping the last
 * complete state); the next window resumes from the newest complete state.
 *
 * celforge counts steps across runs itself, following both generations of
 * sd-scripts' resume rules:
 * - States without train_state.json (sd-scripts before 2024-05-31): Kohya
 *   counts from 0 again on --resume, so the run gets `--max_train_steps` =
 *   the steps left.
 * - States with train_state.json (train_network.py @48d368f, lines 944-969
 *   and 1232-1358): Kohya starts from the state's step and asserts
 *   `max_train_steps > initial_step`, so the run gets the whole training as
 *   `--max_train_steps` (also the LR scheduler's horizon), celforge's own
 *   count as `--initial_step` (the step in train_state.json is wrong after a
 *   resume past the first epoch: global_step restarts at the step within the
 *   epoch, line 1344; kohya-ss/sd-scripts#1406) and `--skip_until_initial_step`
 *   to continue with the same data. Its steps bar counts from 0 to
 *   `max_train_steps - that step within the epoch`, and its state folders are
 *   named by that global_step: run steps = folder step - (max - bar total).
 *
 * A run is recorded with its host: one started on another host (the library
 * on shared storage, its daemon gone) is never looked at or signalled here,
 * where its process group number is some other process's; it is recorded as
 * ended, and the message says to stop it there before training again.
 *
 * `tick()` does one round of that and saves the state; the daemon calls it
 * on a timer and when a window opens. The clock and the idle probe are
 * injected, so tests can move through nights.
 */
import { existsSync } from 'node:fs';
import { appendFile, mkdir, open, readFile } from 'node:fs/promises';
import path from 'node:path';
import { hostName } from '../adapters/host-name.ts';
import { groupPids, type IdleProbe } from '../adapters/idle-probe.ts';
import { groupAlive, startTrainer, stopGroup } from '../adapters/trainer-process.ts';
import type { Config } from '../config/schema.ts';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import { cumulativeStep, stateFolders, type StateContents } from './state-folders.ts';
import { parseProgress } from './tqdm-progress.ts';
import { accumulationSteps, checkpointFileNames, usesScheduleFree, userArgs } from './trainer-args.ts';
import {
  emptyTrainingState, readTrainingState, takeTrainingRequest, trainingRequestPath, trainingStatePath, writeJsonDurably,
  type TrainingEvent, type TrainingRun, type TrainingState,
} from './training-state.ts';
import { nextWindowStart, openWindow } from './windows.ts';

export type TrainConfig = NonNullable<Config['train']>;

const LOG_TAIL_LINES = 20;

export interface SupervisorOptions {
  train: () => TrainConfig;
  /** The library's state folder (.celforge), where training.json lives. */
  stateDir: string;
  clock: () => Date;
  idle: IdleProbe;
  /** Exports the dataset into `out`; returns its dataset_config.toml. */
  prepareDataset: (out: string) => Promise<{ datasetConfig: string; images: number }>;
  log: Logger;
  onEvent?: (event: TrainingEvent) => void;
  /** How long each signal gets to end the trainer's group before the next, stronger one. */
  signalGraceMs?: number;
}

export class TrainingSupervisor {
  state: TrainingState;
  readonly #options: SupervisorOptions;
  readonly #exits = new Map<number, { code: number | null; signal: string | null }>();
  readonly #logOffsets = new Map<string, number>();
  readonly #reported = new Set<string>();

  private constructor(options: SupervisorOptions, state: TrainingState) {
    this.#options = options;
    this.state = state;
  }

  static async open(options: SupervisorOptions): Promise<TrainingSupervisor> {
    await mkdir(options.stateDir, { recursive: true });
    const state = (await readTrainingState(trainingStatePath(options.stateDir))) ?? emptyTrainingState(options.train().maxTrainSteps);
    return new TrainingSupervisor(options, state);
  }

  /** Queues a run from this process (the `train` command leaves a request file for a daemon instead). */
  async request(now: boolean): Promise<void> {
    this.#accept({ queuedAt: this.#now().toISOString(), now });
    await this.#save();
  }

  /** celforge is stopping: a running trainer's group is stopped now, keeping its last complete state, to resume later. */
  async shutdown(): Promise<void> {
    const current = this.state.runs.find((run) => !run.endedAt);
    if (!current || !startedHere(current) || !groupAlive(current.pgid)) return;
    const train = this.#options.train();
    current.stopReason = 'celforge was stopped';
    await stopGroup(current.pgid, this.#options.signalGraceMs);
    await this.#follow(current, train);
    this.#refreshSaved(train);
    await this.#ended(current, train);
    await this.#save();
  }

  async tick(): Promise<TrainingState> {
    const request = await takeTrainingRequest(trainingRequestPath(this.#options.stateDir));
    if (request) this.#accept(request);
    const train = this.#options.train();
    this.state.targetSteps = train.maxTrainSteps;
    const current = this.state.runs.find((run) => !run.endedAt);
    if (current) await this.#supervise(current, train);
    else if (this.state.request) await this.#maybeStart(train);
    await this.#save();
    return this.state;
  }

  #accept(request: TrainingState['request']): void {
    if (this.state.status === 'finished' && !this.state.runs.some((run) => !run.endedAt)) {
      // A new training after a finished one starts from nothing.
      // Earlier runs stay listed, marked (baseSteps -1) so that their states are never resumed from.
      this.state = { ...emptyTrainingState(this.#options.train().maxTrainSteps), runs: this.state.runs.map((run) => ({ ...run, baseSteps: -1 })) };
    }
    this.state.request = request;
    if (this.state.status === 'idle' || this.state.status === 'failed' || this.state.status === 'finished') this.state.status = 'waiting-for-window';
  }

  async #maybeStart(train: TrainConfig): Promise<void> {
    const now = this.#now();
    const window = openWindow(train.windows, now, train.timezone);
    const next = nextWindowStart(train.windows, now, train.timezone);
    this.state.nextWindow = next?.toISOString() ?? null;
    if (!this.state.request!.now && !window) {
      this.#wait('waiting-for-window', `the next training window opens ${next?.toISOString() ?? 'never (no windows configured)'}`);
      return;
    }
    const idle = await this.#options.idle.check(train.idle, null);
    this.#reportUnknown(idle.unknown);
    if (!idle.idle) {
      this.#wait('waiting-for-idle', idle.busy.join('; '));
      return;
    }
    this.#refreshSaved(train);
    if (this.state.savedSteps >= this.state.targetSteps) {
      this.state.status = 'finished';
      this.state.request = null;
      return;
    }
    await this.#start(train);
  }

  async #start(train: TrainConfig): Promise<void> {
    const script = path.join(train.sdScripts, train.script);
    if (!existsSync(script)) {
      this.state.status = 'failed';
      this.state.request = null;
      this.state.reason = `${script}: no such training script; set train.sdScripts to the Kohya sd-scripts folder and train.script to the script in it`;
      this.#event('failed', `training cannot start: ${this.state.reason}`);
      return;
    }
    const index = this.state.runs.length + 1;
    const dir = path.join(train.dir!, 'runs', `run-${String(index).padStart(4, '0')}`);
    await mkdir(dir, { recursive: true });
    const dataset = await this.#options.prepareDataset(path.join(train.dir!, 'dataset'));
    const resume = this.#newestCompleteState(train);
    // A state with train_state.json comes from an sd-scripts that has --initial_step and --skip_until_initial_step (both added with it, commit b2363f10).
    const fromStep = resume?.trainState ? resume.cumulative : undefined;
    const maxSteps = fromStep === undefined ? this.state.targetSteps - this.state.savedSteps : this.state.targetSteps;
    // With gradient accumulation, --skip_until_initial_step skips far too many epochs (train_network.py line 1269; kohya-ss/sd-scripts#2407): skip only whole epochs then.
    const skip = fromStep !== undefined && accumulationSteps(train.args) === 1;
    const command = [
      ...train.launcher, script, ...userArgs(train.args),
      '--dataset_config', dataset.datasetConfig, '--output_dir', dir, '--output_name', train.outputName,
      '--save_state', '--save_every_n_steps', String(train.saveEveryNSteps), '--max_train_steps', String(maxSteps),
      ...(resume ? ['--resume', resume.dir] : []),
      ...(fromStep !== undefined ? ['--initial_step', String(fromStep)] : []),
      ...(skip ? ['--skip_until_initial_step'] : []),
    ];
    const log = path.join(dir, 'trainer.log');
    await appendFile(log, `# celforge: ${JSON.stringify(command)}\n`);
    const started = startTrainer(command, { cwd: train.sdScripts, log });
    void started.exited.then((exit) => this.#exits.set(started.pgid, exit));
    const run: TrainingRun = {
      index, dir, log, pgid: started.pgid, host: hostName(), startedAt: this.#now().toISOString(), baseSteps: this.state.savedSteps, maxSteps, resumedFrom: resume?.dir ?? null,
      ...(fromStep !== undefined ? { initialStep: fromStep } : {}),
    };
    this.state.runs.push(run);
    this.state.status = 'running';
    this.state.reason = null;
    this.state.stopRequested = null;
    this.#event('started', `training run ${index} started on ${dataset.images} images at step ${run.baseSteps} of ${this.state.targetSteps}${resume ? `, resuming from ${resume.dir}` : ''}`);
  }

  async #supervise(run: TrainingRun, train: TrainConfig): Promise<void> {
    await this.#follow(run, train);
    this.#refreshSaved(train);
    if (!startedHere(run) || !groupAlive(run.pgid) || this.#exits.has(run.pgid)) {
      await this.#ended(run, train);
      return;
    }
    const now = this.#now();
    const reasons: string[] = [];
    if (!this.state.request?.now && !openWindow(train.windows, now, train.timezone)) reasons.push('the training window ended');
    const idle = await this.#options.idle.check(train.idle, { ownPids: await groupPids(run.pgid) });
    this.#reportUnknown(idle.unknown);
    reasons.push(...idle.busy);
    if (reasons.length && !this.state.stopRequested) {
      this.state.stopRequested = { at: now.toISOString(), reason: reasons.join('; '), savedStepAtRequest: this.#newestLocalState(run, train) };
      this.state.status = 'stopping';
      this.state.reason = this.state.stopRequested.reason;
      this.#options.log.info({ run: run.index }, `training: ${this.state.reason}; stopping at the next state save`);
    }
    const stop = this.state.stopRequested;
    if (!stop) return;
    const saved = this.#newestLocalState(run, train);
    // A new state counts once the trainer has gone on past it: only then is the folder surely written in full.
    const savedSince = saved > stop.savedStepAtRequest && (this.state.progress?.step ?? 0) > saved;
    const overdue = now.getTime() - Date.parse(stop.at) >= train.stopWaitMinutes * 60_000;
    if (savedSince || overdue) {
      run.stopReason = stop.reason;
      await stopGroup(run.pgid, this.#options.signalGraceMs);
      await this.#follow(run, train);
      this.#refreshSaved(train);
      await this.#ended(run, train);
    }
  }

  async #ended(run: TrainingRun, train: TrainConfig): Promise<void> {
    const known = startedHere(run) ? this.#exits.get(run.pgid) : undefined;
    const exit = known ?? { code: null, signal: null };
    run.exit = exit;
    run.endedAt = this.#now().toISOString();
    this.state.stopRequested = null;
    const checkpoint = checkpointFileNames(train.args, train.outputName).map((name) => path.join(run.dir, name)).find((file) => existsSync(file));
    if (!run.stopReason && checkpoint && (exit.code === 0 || exit.code === null)) {
      this.state.status = 'finished';
      this.state.request = null;
      this.state.checkpoint = checkpoint;
      this.state.savedSteps = this.state.targetSteps;
      this.state.reason = null;
      this.#event('finished', `training finished: ${this.state.targetSteps} steps; checkpoint ${checkpoint}`);
      return;
    }
    if (run.stopReason) {
      this.state.status = 'waiting-for-window';
      this.state.reason = run.stopReason;
      const newest = this.#newestCompleteState(train);
      this.#event('stopped', `training stopped (${run.stopReason}) at step ${this.state.seenSteps} of ${this.state.targetSteps}; ` +
        (newest ? `it resumes from ${newest.dir} (step ${this.state.savedSteps})` : 'no complete state yet; it starts again'));
      return;
    }
    this.state.status = 'failed';
    this.state.request = null;
    this.state.reason = !startedHere(run)
      ? `training run ${run.index} was started on ${run.host} (process group ${run.pgid} there), which this host (${hostName()}) cannot see or stop; `
        + `it is recorded as ended, without its final checkpoint. If it still runs on ${run.host}, stop it there (kill -TERM -${run.pgid}) before training again (celforge train)`
      : !known
      ? 'the trainer ended while celforge was not running, without its final checkpoint'
      : `the trainer exited with ${exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`}${exit.code === 0 ? ` without its final checkpoint (${checkpointFileNames(train.args, train.outputName).join(' or ')})` : ''}`;
    this.#event('failed', `training failed: ${this.state.reason}. Last lines of ${run.log}:\n${await logTail(run.log)}`);
  }

  /** Reads what the trainer wrote since last time: progress, and the loss for the plot. */
  async #follow(run: TrainingRun, train: TrainConfig): Promise<void> {
    if (!existsSync(run.log)) return;
    const from = this.#logOffsets.get(run.log) ?? 0;
    const handle = await open(run.log, 'r');
    let text: string;
    try {
      const { size } = await handle.stat();
      const buffer = Buffer.alloc(size - from);
      await handle.read(buffer, 0, buffer.length, from);
      text = buffer.toString('utf8');
      this.#logOffsets.set(run.log, size);
    } finally {
      await handle.close();
    }
    const updates = parseProgress(text);
    if (updates.length === 0) return;
    const lossLines: string[] = [];
    const every = Math.max(1, Math.floor(this.state.targetSteps / 1000));
    let lastLogged = Math.floor(this.state.seenSteps / every);
    run.barTotal ??= updates[0]!.total;
    for (const update of updates) {
      const cumulative = run.baseSteps + update.step;
      if (update.loss !== null && Math.floor(cumulative / every) > lastLogged) {
        lossLines.push(JSON.stringify({ step: cumulative, loss: update.loss, run: run.index }));
        lastLogged = Math.floor(cumulative / every);
      }
      this.state.seenSteps = Math.max(this.state.seenSteps, cumulative);
    }
    const last = updates.at(-1)!;
    this.state.progress = { ...last, step: run.baseSteps + last.step, total: this.state.targetSteps, at: this.#now().toISOString() };
    if (lossLines.length) await appendFile(path.join(train.dir!, 'loss.jsonl'), `${lossLines.join('\n')}\n`);
  }

  #refreshSaved(train: TrainConfig): void {
    const newest = this.#newestCompleteState(train);
    this.state.savedSteps = newest?.cumulative ?? 0;
  }

  #newestCompleteState(train: TrainConfig): { dir: string; cumulative: number; trainState: boolean } | null {
    let best: { dir: string; cumulative: number; trainState: boolean } | null = null;
    for (const run of this.state.runs) {
      if (run.baseSteps < 0) continue;
      for (const state of this.#completeStates(run, train)) {
        if (!best || state.cumulative > best.cumulative) best = state;
      }
    }
    return best;
  }

  /** Cumulative step of the newest complete state this run wrote (0 when none). */
  #newestLocalState(run: TrainingRun, train: TrainConfig): number {
    return Math.max(0, ...this.#completeStates(run, train).map((state) => state.cumulative));
  }

  #completeStates(run: TrainingRun, train: TrainConfig): { dir: string; cumulative: number; trainState: boolean }[] {
    const contents: StateContents = { scheduler: !usesScheduleFree(train.args) };
    return stateFolders(run.dir, train.outputName, contents).filter((folder) => folder.complete).map((folder) => ({
      dir: folder.dir,
      cumulative: folder.final ? this.state.targetSteps : cumulativeStep(run, folder.step),
      trainState: folder.trainState,
    }));
  }

  #wait(status: 'waiting-for-window' | 'waiting-for-idle', reason: string): void {
    if (this.state.status !== status || this.state.reason !== reason) this.#options.log.info(`training: ${status}: ${reason}`);
    this.state.status = status;
    this.state.reason = reason;
  }

  #reportUnknown(unknown: string[]): void {
    for (const what of unknown) {
      if (this.#reported.has(what)) continue;
      this.#reported.add(what);
      this.#options.log.warn(`training: cannot measure ${what}; it is not checked`);
    }
  }

  #event(kind: TrainingEvent['kind'], message: string): void {
    const event = { kind, message, at: this.#now().toISOString() };
    this.state.lastEvent = event;
    (kind === 'failed' ? this.#options.log.error : this.#options.log.info).call(this.#options.log, `training: ${message}`);
    try {
      this.#options.onEvent?.(event);
    } catch (error) {
      this.#options.log.error(`training: the event could not be passed on: ${errorMessage(error)}`);
    }
  }

  #now(): Date {
    return this.#options.clock();
  }

  async #save(): Promise<void> {
    await writeJsonDurably(trainingStatePath(this.#options.stateDir), this.state);
  }
}

async function logTail(file: string): Promise<string> {
  try {
    const lines = (await readFile(file, 'utf8')).split(/[\r\n]+/).filter((line) => line.trim());
    return lines.slice(-LOG_TAIL_LINES).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Whether the run's process group is this host's to look at and signal (older records, without a host, are). */
function startedHere(run: TrainingRun): boolean {
  return run.host === undefined || run.host === hostName();
}
