/**
 * `celforge process <video...>`: one run of the pipeline over the given
 * videos, without watching, with a progress bar. A video that failed before
 * is tried again. A model that the faces or tags stage needs and the models
 * folder lacks is downloaded then, with a bar (models.autoFetch); when that
 * download fails (offline), or autoFetch is off, the video is left waiting,
 * naming the model and why (the daemon, or the next `process`, continues
 * it). Nor does it wait for disk space: a video the disk gate holds (or
 * whose extraction paused at the reserve) is left waiting, with what it
 * needs and what is free. Exit codes: 0 every video ready for review, 1 one
 * failed, 3 one waits for a model, 4 one waits for disk space, 130
 * interrupted.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { intakeVideo } from '../daemon/intake.ts';
import { formatSize } from '../config/size.ts';
import { isFinished, type Job } from '../daemon/job.ts';
import { Runtime } from '../daemon/runtime.ts';
import { CelforgeError } from '../errors.ts';
import { commandContext, type GlobalOptions } from './context.ts';
import { DownloadBar } from './download-bar.ts';
import { describeJob, describeOutput } from './job-summary.ts';
import { JobProgressBar } from './progress-bar.ts';

export async function processCommand(videos: string[], options: GlobalOptions): Promise<number> {
  const missing = videos.filter((video) => !existsSync(video));
  if (missing.length) {
    throw new CelforgeError('FILE_NOT_FOUND', `${missing.join(', ')}: no such file`, { file: missing[0] });
  }
  const { config, log } = await commandContext(options, 'warn');
  const bar = new JobProgressBar();
  const downloads = new DownloadBar(() => bar.pause());
  const runtime = await Runtime.open({ config, log, command: 'process', downloads });
  const onInterrupt = () => runtime.stop();
  process.on('SIGINT', onInterrupt);
  process.on('SIGTERM', onInterrupt);
  let ids: string[] = [];
  try {
    for (const video of videos) {
      const { job } = await intakeVideo(path.resolve(video), runtime.ledger, config, log);
      if (job.state === 'failed') {
        await runtime.ledger.update(job.id, (target) => void (target.state = 'queued'));
      }
      ids.push(job.id);
    }
    ids = [...new Set(ids)];
    const current = () => runtime.ledger.jobs().find((job) => ids.includes(job.id) && !isFinished(job));
    const redraw = setInterval(() => downloads.active || bar.show(current()), 250);
    try {
      await runtime.scheduler.run({ exitWhenIdle: true, only: new Set(ids), leaveModelWaits: true, leaveDiskWaits: true });
    } finally {
      clearInterval(redraw);
      bar.stop();
    }
  } finally {
    process.off('SIGINT', onInterrupt);
    process.off('SIGTERM', onInterrupt);
    await runtime.release();
  }
  const jobs = ids.map((id) => runtime.ledger.get(id)).filter((job): job is Job => job !== undefined);
  for (const job of jobs) {
    if (isReady(job) || job.state === 'waiting-for-model') process.stdout.write(`${job.source}: ${describeOutput(job)}\n`);
    if (!isReady(job)) process.stdout.write(`${describeJob(job)}\n`);
  }
  const short = jobs.filter((job) => job.state === 'waiting-for-disk' || job.state === 'paused-disk-low');
  for (const job of short) process.stderr.write(`celforge: ${job.source}: ${describeDiskWait(job, config.library)}\n`);
  if (runtime.signal.aborted) return 130;
  if (jobs.some((job) => job.state === 'failed')) return 1;
  if (short.length) return EXIT_WAITING_FOR_DISK;
  return jobs.every(isReady) ? 0 : 3;
}

/** `process` ends when a video waits for disk space: a one-off run does not wait for a person to free some. */
export const EXIT_WAITING_FOR_DISK = 4;

function describeDiskWait(job: Job, library: string): string {
  const what = job.state === 'paused-disk-low' ? 'extraction paused' : 'not started';
  if (!job.disk) return `${what}: not enough disk space on ${library}`;
  const { neededBytes, reserveBytes, freeBytes } = job.disk;
  return `${what}: needs ${formatSize(neededBytes)} plus the ${formatSize(reserveBytes)} reserve (disk.reserve) on ${library}, ` +
    `and ${formatSize(freeBytes)} is free. Free some space or lower disk.reserve, then run it again (\`celforge start\` waits instead).`;
}

function isReady(job: Job): boolean {
  return job.state === 'ready-for-review' || job.state === 'done';
}
