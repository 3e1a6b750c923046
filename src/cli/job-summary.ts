/** How a job reads in a terminal: one line with its stage, state, progress and what it waits for. */
import { formatSize } from '../config/size.ts';
import type { Job } from '../daemon/job.ts';

export function describeJob(job: Job): string {
  const parts = [`${job.id.slice(0, 12)}  ${job.series} ${job.episode}  ${job.stage}/${job.state}`];
  if (job.progress && job.progress.total > 0) {
    const percent = ((100 * job.progress.done) / job.progress.total).toFixed(1);
    parts.push(`${job.progress.done}/${job.progress.total} frames (${percent}%)`);
  }
  if ((job.state === 'waiting-for-disk' || job.state === 'paused-disk-low') && job.disk) {
    parts.push(`needs ${formatSize(job.disk.neededBytes)} + ${formatSize(job.disk.reserveBytes)} reserve, ${formatSize(job.disk.freeBytes)} free`);
  }
  if (job.state === 'waiting-for-model' && job.waitingFor) parts.push(job.waitingFor.reason);
  if (job.state === 'failed' && job.error) parts.push(`error: ${job.error.message}`);
  for (const note of job.notes ?? []) parts.push(`note: ${note.message}`);
  parts.push(job.source);
  return parts.join('  ');
}

/**
 * "34046 frames, 9120 kept, 24926 duplicates, 312 scenes, 27.1 GiB written in <dir>; faces on 7010 of 9120 (<detector>);
 * 8200 crops; characters of 8200 crops (<model>), 14 clusters in the series; 9120 tagged and 8200 crops by <taggers>, subject tags taken from 1920, composition tags from 2400"
 */
export function describeOutput(job: Job): string {
  const extract = job.extract;
  if (!extract) return 'nothing extracted';
  const parts = [
    `${extract.framesDone} frames, ${extract.kept} kept, ${extract.duplicates} duplicates, ${extract.scenes} scenes, ` +
    `${formatSize(extract.bytesWritten)} written in ${extract.dir}`,
  ];
  if (job.faces) parts.push(`faces on ${job.faces.framesWithFaces} of ${job.faces.framesDone} (${job.faces.detector})`);
  if (job.crops) parts.push(`${job.crops.crops} crops`);
  if (job.characters) parts.push(`characters of ${job.characters.cropsDone} crops (${job.characters.model}), ${job.characters.clusters ?? 0} clusters in the series`);
  if (job.tags) {
    const { framesDone, cropsDone, taggers, framesGated, compositionGated } = job.tags;
    parts.push(`${framesDone} tagged${cropsDone ? ` and ${cropsDone} crops` : ''} by ${taggers.join(', ')}, subject tags taken from ${framesGated}` +
      (compositionGated === undefined ? '' : `, composition tags from ${compositionGated}`));
  }
  return parts.join('; ');
}
