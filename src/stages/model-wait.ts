/** What the faces and tags stages share about models that are not there yet. */
import type { Availability } from '../models/model-availability.ts';
import type { StagePorts, StageResult } from './stage.ts';

/** Models fetched while the daemon runs are noticed this soon (a SIGHUP re-checks at once). */
const MODEL_RECHECK_MS = 60_000;

export function waitForModels(missing: Extract<Availability, { ready: false }>): StageResult {
  return {
    kind: 'wait', state: 'waiting-for-model', retryAfterMs: MODEL_RECHECK_MS, reason: missing.reason,
    change: (job) => void (job.waitingFor = { models: missing.missing, reason: missing.reason, command: missing.command }),
  };
}

/** The job shows `running` from here on, not the wait it came from. */
export function markRunning(ports: StagePorts): Promise<void> {
  return ports.save((job) => {
    job.state = 'running';
    delete job.waitingFor;
  });
}
