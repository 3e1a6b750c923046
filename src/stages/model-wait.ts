/**
 * What the faces and tags stages share about their models: the models when
 * they are there; else, with models.autoFetch, a download of the missing
 * ones (once, however many stages and jobs need them); else, or when the
 * download fails, a wait that names the models, why, and the command.
 */
import { errorMessage } from '../errors.ts';
import { BUNDLED_MANIFEST, loadManifest, type ModelEntry } from '../models/manifest.ts';
import { isDownloadable } from '../models/model-download.ts';
import { missingModels, modelsAvailable, type AvailableModel, type Availability } from '../models/model-availability.ts';
import type { StagePorts, StageResult } from './stage.ts';

/** Models fetched while the daemon runs are noticed this soon (a SIGHUP re-checks at once); a failed download is tried again as often. */
const MODEL_RECHECK_MS = 60_000;

type Missing = Extract<Availability, { ready: false }>;

export type ModelsOrWait = { ready: true; models: AvailableModel[] } | { ready: false; result: StageResult };

export async function modelsOrWait(ports: StagePorts, ids: readonly string[], kinds: readonly ModelEntry['kind'][]): Promise<ModelsOrWait> {
  const config = ports.config();
  const available = await modelsAvailable(config, ids, kinds);
  if (available.ready) return available;
  if (!config.models.autoFetch || !ports.fetcher || available.command === null) return { ready: false, result: waitForModels(available) };
  const manifest = await loadManifest(config.models.manifest ?? BUNDLED_MANIFEST);
  const wanted = manifest.filter((entry) => available.missing.includes(entry.id));
  if (!wanted.every(isDownloadable)) return { ready: false, result: waitForModels(available) };
  try {
    await ports.fetcher.fetch(config.models.dir, wanted, ports.signal);
  } catch (error) {
    if (ports.signal.aborted) return { ready: false, result: { kind: 'interrupted' } };
    const why = errorMessage(error);
    const reason = `${missingModels(available.missing)} not in ${config.models.dir} and its download failed (${why}); ` +
      `it is tried again at the next check, or run "${available.command}"`;
    return { ready: false, result: waitForModels({ ...available, reason }, why) };
  }
  const after = await modelsAvailable(config, ids, kinds);
  return after.ready ? after : { ready: false, result: waitForModels(after) };
}

export function waitForModels(missing: Missing, downloadError?: string): StageResult {
  return {
    kind: 'wait', state: 'waiting-for-model', retryAfterMs: MODEL_RECHECK_MS, reason: missing.reason,
    change: (job) => {
      job.waitingFor = { models: missing.missing, reason: missing.reason, command: missing.command };
      if (downloadError) job.waitingFor.downloadError = downloadError;
    },
  };
}

/** The job shows `running` from here on, not the wait it came from. */
export function markRunning(ports: StagePorts): Promise<void> {
  return ports.save((job) => {
    job.state = 'running';
    delete job.waitingFor;
  });
}
