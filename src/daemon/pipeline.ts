/**
 * Moves one job through its stages, from the stage it is in, recording each
 * result in the ledger. A stage that waits (disk space) leaves the job in a
 * waiting state with a time to try again; an error fails the job with its
 * message; a shutdown leaves it where it was, to resume.
 */
import { CelforgeError, errorMessage } from '../errors.ts';
import { diskGateStage } from '../stages/diskgate.ts';
import { catalogStage } from '../stages/catalog/catalog-stage.ts';
import { charactersStage } from '../stages/characters/characters-stage.ts';
import { cropsStage } from '../stages/crops/crops-stage.ts';
import { extractStage } from '../stages/extract/extract-stage.ts';
import { facesStage } from '../stages/faces/faces-stage.ts';
import { probeStage } from '../stages/probe.ts';
import { tagsStage } from '../stages/tags/tags-stage.ts';
import type { EventSink } from '../notify/events.ts';
import type { Stage, StagePorts } from '../stages/stage.ts';
import { isWaiting, STAGES, type Job, type StageName } from './job.ts';
import type { Ledger } from './ledger.ts';

const STAGE_HANDLERS: Record<StageName, Stage> = {
  probe: probeStage,
  diskgate: diskGateStage,
  extract: extractStage,
  catalog: catalogStage,
  faces: facesStage,
  crops: cropsStage,
  characters: charactersStage,
  tags: tagsStage,
};

export type PipelineOutcome =
  | { kind: 'done' }
  | { kind: 'failed'; message: string }
  | { kind: 'waiting'; retryAt: number }
  | { kind: 'interrupted' };

export type PipelinePorts = Omit<StagePorts, 'save'> & {
  /** Told when a job is ready for review, fails, or starts waiting for disk or a model. */
  events?: EventSink;
  /** Stages run elsewhere (queue.redis): these handlers replace the local ones. */
  remoteStages?: Partial<Record<StageName, Stage>>;
  /** Where jobs move side by side (a coordinator): the stages run here take turns through this. */
  localTurn?: <T>(work: () => Promise<T>) => Promise<T>;
};

export async function runPipeline(jobId: string, ledger: Ledger, ports: PipelinePorts): Promise<PipelineOutcome> {
  const save = async (change: (job: Job) => void) => void (await ledger.update(jobId, change));
  const stagePorts: StagePorts = { ...ports, save };
  let job = ledger.get(jobId)!;
  for (let index = STAGES.indexOf(job.stage); index < STAGES.length; index += 1) {
    const stage = STAGES[index]!;
    const previousState = job.state;
    // A waiting job keeps showing its wait while it re-checks; the stage says when it really runs again.
    const recheck = isWaiting(job) && job.stage === stage;
    job = await ledger.update(jobId, (target) => {
      target.stage = stage;
      if (!recheck) target.state = 'running';
      target.timings[stage] ??= { startedAt: new Date().toISOString() };
      delete target.error;
    });

    let result;
    try {
      const remote = ports.remoteStages?.[stage];
      const local = () => STAGE_HANDLERS[stage](structuredClone(job), stagePorts);
      result = remote ? await remote(structuredClone(job), stagePorts) : await (ports.localTurn ? ports.localTurn(local) : local());
    } catch (error) {
      const code = error instanceof CelforgeError ? error.code : 'INTERNAL';
      const message = errorMessage(error);
      await save((target) => {
        target.state = 'failed';
        target.error = { code, message, at: new Date().toISOString() };
      });
      ports.log.error({ job: jobId, stage, code, file: job.source }, message);
      ports.events?.emit({ kind: 'job-failed', source: job.source, reason: message });
      return { kind: 'failed', message };
    }

    switch (result.kind) {
      case 'done':
        if (recheck) {
          const what = previousState === 'waiting-for-model' ? 'the models are there now' : 'space is available again';
          ports.log.info({ job: jobId, stage }, `${job.source}: ${what}; continuing`);
        }
        job = await ledger.update(jobId, (target) => {
          delete target.waitingFor;
          result.change?.(target);
          target.timings[stage]!.finishedAt = new Date().toISOString();
        });
        break;
      case 'wait': {
        job = await ledger.update(jobId, (target) => {
          result.change?.(target);
          target.state = result.state;
        });
        // Logged once when the job starts waiting, not at every re-check.
        if (previousState !== result.state) {
          ports.log.warn({ job: jobId, stage, state: result.state }, `${job.source}: ${result.state}: ${result.reason}`);
          if (result.state === 'waiting-for-model' && job.waitingFor) {
            ports.events?.emit({ kind: 'model-missing', source: job.source, ...job.waitingFor });
          } else if (result.state !== 'waiting-for-model' && job.disk) {
            const { neededBytes, freeBytes, reserveBytes } = job.disk;
            ports.events?.emit({ kind: 'waiting-for-disk', source: job.source, neededBytes, freeBytes, reserveBytes });
          }
        }
        return { kind: 'waiting', retryAt: Date.now() + result.retryAfterMs };
      }
      case 'interrupted':
        await save((target) => void (target.state = 'queued'));
        return { kind: 'interrupted' };
    }
  }
  await save((target) => void (target.state = 'ready-for-review'));
  ports.log.info(
    { job: jobId, frames: job.extract?.framesDone, kept: job.extract?.kept, duplicates: job.extract?.duplicates, withFaces: job.faces?.framesWithFaces, crops: job.crops?.crops, tagged: job.tags?.framesDone, dir: job.extract?.dir },
    `${job.source}: ready for review`,
  );
  ports.events?.emit({
    kind: 'ready-for-review', source: job.source, frames: job.extract?.framesDone ?? 0, kept: job.extract?.kept ?? 0,
    withFaces: job.faces?.framesWithFaces ?? null, tagged: job.tags?.framesDone ?? null,
  });
  return { kind: 'done' };
}
