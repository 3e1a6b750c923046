/**
 * Finds the job of a video named on the command line: by its file (the
 * content fingerprint, so a moved or renamed rip still matches) or by the
 * start of its job id as `status` prints it.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fingerprintFile } from '../adapters/fingerprint.ts';
import type { Config } from '../config/schema.ts';
import type { Job } from '../daemon/job.ts';
import { Ledger } from '../daemon/ledger.ts';
import { ledgerPath } from '../daemon/library-paths.ts';
import { CelforgeError } from '../errors.ts';

export async function findJob(video: string, config: Config): Promise<Job> {
  const file = ledgerPath(config.library);
  const jobs = existsSync(file) ? await Ledger.read(file) : [];
  let job: Job | undefined;
  if (existsSync(video)) {
    const { id } = await fingerprintFile(video);
    job = jobs.find((candidate) => candidate.id === id);
  } else if (/^[0-9a-f]{4,}$/.test(video)) {
    const matches = jobs.filter((candidate) => candidate.id.startsWith(video));
    if (matches.length > 1) throw new CelforgeError('FILE_NOT_FOUND', `${video}: more than one job id starts with it; give more of it`);
    job = matches[0];
  }
  if (!job) {
    throw new CelforgeError('FILE_NOT_FOUND', `${path.resolve(video)}: no job for this video in ${config.library} (process it first, or check --library)`, { file: video });
  }
  return job;
}
