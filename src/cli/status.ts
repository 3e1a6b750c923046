/** `celforge status [--json]`: the jobs with their stage and state. */
import { existsSync } from 'node:fs';
import { loadConfig } from '../config/load.ts';
import { Ledger } from '../daemon/ledger.ts';
import { ledgerPath } from '../daemon/library-paths.ts';
import type { GlobalOptions } from './context.ts';
import { describeJob } from './job-summary.ts';

export async function statusCommand(options: GlobalOptions & { json?: boolean }): Promise<void> {
  const config = await loadConfig({ configPath: options.config, library: options.library });
  const file = ledgerPath(config.library);
  const jobs = existsSync(file) ? await Ledger.read(file) : [];
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ library: config.library, jobs }, null, 2)}\n`);
    return;
  }
  if (jobs.length === 0) {
    process.stdout.write(`no jobs in ${config.library}; drop videos into ${config.inbox.join(', ')}\n`);
    return;
  }
  for (const job of jobs) process.stdout.write(`${describeJob(job)}\n`);
}
