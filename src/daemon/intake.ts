/**
 * Turns a video file into a job: identified by content, so the same rip
 * dropped twice or renamed joins its existing job instead of making another.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fingerprintFile } from '../adapters/fingerprint.ts';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import type { Job } from './job.ts';
import type { Ledger } from './ledger.ts';
import { seriesAndEpisode } from './naming.ts';
import { chooseEpisodeFolder, displacedNote } from './output-folder.ts';

export interface Intake {
  job: Job;
  isNew: boolean;
}

export async function intakeVideo(file: string, ledger: Ledger, config: Config, log: Logger): Promise<Intake> {
  const source = path.resolve(file);
  const { id, sizeBytes } = await fingerprintFile(source);
  const known = ledger.get(id);
  if (known) {
    if (!known.seenAs.includes(source)) {
      const moved = !existsSync(known.source);
      await ledger.update(id, (job) => {
        job.seenAs.push(source);
        if (moved) job.source = source; // renamed or moved: continue from where it is now
      });
      log.info({ job: id, file: source, first: known.source }, moved
        ? `${source}: ${known.source} was moved here; the job follows it`
        : `${source}: same video as ${known.source}; not processed again`);
    }
    return { job: known, isNew: false };
  }
  const now = new Date().toISOString();
  const { series, episode } = seriesAndEpisode(source, config.inbox, config.naming.patterns);
  const choice = await chooseEpisodeFolder({ id, source, series, episode }, ledger.jobs(), config.library);
  const job: Job = {
    id, source, seenAs: [source], sizeBytes, series, episode, folder: choice.folder,
    stage: 'probe', state: 'queued', progress: null, timings: {}, createdAt: now, updatedAt: now,
  };
  if (choice.takenBy) job.notes = [displacedNote(job, choice)];
  await ledger.add(job);
  log.info({ job: id, file: source, series, episode, folder: choice.folder }, `${source}: new job`);
  if (choice.takenBy) log.warn({ job: id, file: source, folder: `${series}/${choice.folder}` }, job.notes![0]!.message);
  return { job, isNew: true };
}
