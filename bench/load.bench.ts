/**
 * The daemon's memory over a long run: BENCH_RIPS (default 40) rips of
 * 1280x720 dropped into the inbox at once, processed by one daemon (frames
 * only: extraction, dedup, catalog). Its resident memory (VmRSS from
 * /proc) is sampled every half second and reported per finished job, as a
 * ratio against the baseline measured in the same run: the RSS after the
 * first job. Memory is flat when the last ratio stays near the first.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeClip } from '../test/fixtures/clips.ts';
import { FRAMES_ONLY, readJobs, startDaemon, stopDaemon, waitFor, writeConfig } from '../test/helpers.ts';

const RIPS = Number(process.env.BENCH_RIPS ?? 40);

function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((text) => text.startsWith('VmRSS:'))!;
  return Number(line.replace(/\D+/g, '')) / 1024;
}

const work = mkdtempSync(path.join(os.tmpdir(), 'celforge-bench-load-'));
try {
  const clips = await Promise.all(Array.from({ length: RIPS }, (_, i) => makeClip({ width: 1280 + 16 * (i % 20), height: 720, seconds: 3, variant: Math.floor(i / 20) })));
  const inbox = path.join(work, 'inbox', 'Load');
  mkdirSync(inbox, { recursive: true });
  const configFile = writeConfig(work, { ...FRAMES_ONLY, inbox: './inbox', library: './library', watch: { settleSeconds: 0.5 }, disk: { reserve: 0 }, notify: { desktop: false } });
  const daemon = startDaemon(configFile);
  await waitFor('the daemon to watch', () => daemon.output().includes('watching the inbox'));
  const start = performance.now();
  clips.forEach((clip, i) => copyFileSync(clip, path.join(inbox, `Load ${String(i + 1).padStart(3, '0')}.m2ts`)));
  const library = path.join(work, 'library');
  const samples: { at: number; rss: number; done: number }[] = [];
  let done = 0;
  while (done < RIPS) {
    done = readJobs(library).filter((job) => job.state === 'ready-for-review').length;
    samples.push({ at: (performance.now() - start) / 1000, rss: rssMiB(daemon.child.pid!), done });
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  await stopDaemon(daemon);
  const baseline = Math.max(...samples.filter((sample) => sample.done === 1).map((sample) => sample.rss));
  console.log(`${RIPS} rips of 3 s at 1280x720 (frames only), ${((performance.now() - start) / 1000).toFixed(0)} s; baseline: RSS after the first job, ${baseline.toFixed(0)} MiB\n`);
  console.log('| jobs done | peak RSS (MiB) | vs baseline |');
  console.log('|---|---|---|');
  const marks = [1, ...[0.25, 0.5, 0.75, 1].map((share) => Math.round(RIPS * share))];
  for (const mark of [...new Set(marks)]) {
    const peak = Math.max(...samples.filter((sample) => sample.done <= mark && sample.done >= Math.max(1, mark - Math.round(RIPS / 4))).map((sample) => sample.rss));
    console.log(`| ${mark} | ${peak.toFixed(0)} | ${(peak / baseline).toFixed(2)} |`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
