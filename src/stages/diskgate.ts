/**
 * diskgate: holds a job until the library volume has room for everything it
 * will write plus the reserve. When even raw-size frames would fit, that is
 * enough; otherwise the size of a frame is measured, not guessed: a few real
 * frames spread over the video are written to a temporary folder and weighed
 * (film grain makes PNG sizes vary a lot between titles).
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { mkdir } from 'node:fs/promises';
import { formatSize } from '../config/size.ts';
import { tempDir } from '../daemon/library-paths.ts';
import type { Job } from '../daemon/job.ts';
import type { Stage, StagePorts } from './stage.ts';

export const diskGateStage: Stage = async (job, ports) => {
  const config = ports.config();
  const probe = job.probe!;
  const framesLeft = Math.max(0, probe.frameCount - (job.extract?.framesDone ?? 0));
  // Only new drawings are written in full under `reference`; `move` writes every frame.
  const writtenFraction = config.dedup.policy === 'move' ? 1 : config.disk.expectedKeptFraction;
  const neededFor = (bytesPerFrame: number) => Math.ceil(bytesPerFrame * framesLeft * writtenFraction * (1 + config.disk.estimateMargin));
  const freeBytes = await ports.disk.freeBytes(config.library);
  const reserveBytes = config.disk.reserve;
  // A PNG is never much larger than the raw pixels: when even that fits, weighing samples is not needed.
  const upperBound = probe.width * probe.height * 3 * 1.01;
  const bytesPerFrame = job.disk?.bytesPerFrame
    ?? (neededFor(upperBound) + reserveBytes <= freeBytes ? upperBound : await measureBytesPerFrame(job, ports));
  const neededBytes = neededFor(bytesPerFrame);
  const disk = { neededBytes, freeBytes, reserveBytes, bytesPerFrame, checkedAt: new Date().toISOString() };
  const record = (target: Job) => void (target.disk = disk);

  if (neededBytes + reserveBytes > freeBytes) {
    return {
      kind: 'wait',
      state: 'waiting-for-disk',
      retryAfterMs: config.disk.recheckSeconds * 1000,
      reason: `needs ${formatSize(neededBytes)} plus the ${formatSize(reserveBytes)} reserve on ${config.library}, ${formatSize(freeBytes)} free`,
      change: record,
    };
  }
  return { kind: 'done', change: record };
};

async function measureBytesPerFrame(job: Job, { config, media }: StagePorts): Promise<number> {
  const { library, disk } = config();
  const probe = job.probe!;
  await mkdir(tempDir(library), { recursive: true });
  const dir = await mkdtemp(path.join(tempDir(library), 'sample-'));
  try {
    const sizes: number[] = [];
    for (let i = 0; i < disk.sampleFrames; i += 1) {
      const seconds = (probe.durationSeconds * (i + 0.5)) / disk.sampleFrames;
      const file = path.join(dir, `sample-${i}.png`);
      await media.sampleFrame(job.source, seconds, file);
      sizes.push((await stat(file)).size);
    }
    return Math.ceil(sizes.reduce((sum, size) => sum + size, 0) / sizes.length);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
