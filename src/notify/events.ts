/** What celforge tells its user about, and how each reads in a notification. */
import { formatSize } from '../config/size.ts';

export type CelforgeEvent =
  | { kind: 'ready-for-review'; source: string; frames: number; kept: number; withFaces: number | null; tagged: number | null }
  | { kind: 'job-failed'; source: string; reason: string }
  | { kind: 'waiting-for-disk'; source: string; neededBytes: number; freeBytes: number; reserveBytes: number }
  | { kind: 'model-missing'; source: string; models: string[]; command: string | null; reason: string; downloadError?: string }
  | { kind: 'training'; outcome: 'started' | 'finished' | 'stopped' | 'failed'; message: string }
  | { kind: 'checkpoint-reviewed'; version: string; regressions: number; templates: number };

export interface EventSink {
  emit(event: CelforgeEvent): void;
}

export function describeEvent(event: CelforgeEvent): { title: string; message: string } {
  const name = (source: string) => source.split(/[\\/]/).at(-1)!;
  switch (event.kind) {
    case 'ready-for-review': {
      const extras = [event.withFaces !== null ? `${event.withFaces} with faces` : null, event.tagged !== null ? `${event.tagged} tagged` : null].filter(Boolean);
      return { title: `Ready for review: ${name(event.source)}`, message: `${event.kept} frames kept of ${event.frames}${extras.length ? `; ${extras.join(', ')}` : ''}` };
    }
    case 'job-failed':
      return { title: `Failed: ${name(event.source)}`, message: event.reason };
    case 'waiting-for-disk':
      return {
        title: `Waiting for disk space: ${name(event.source)}`,
        message: `needs ${formatSize(event.neededBytes)} + ${formatSize(event.reserveBytes)} reserve, ${formatSize(event.freeBytes)} free`,
      };
    case 'model-missing':
      return { title: `Model missing: ${name(event.source)}`, message: event.command && !event.downloadError ? `run: ${event.command}` : event.reason };
    case 'training':
      return { title: `Training ${event.outcome}`, message: event.message };
    case 'checkpoint-reviewed':
      return {
        title: `Checkpoint ${event.version} reviewed`,
        message: event.regressions === 0 ? 'no regressions' : `${event.regressions} regression${event.regressions === 1 ? '' : 's'}`,
      };
  }
}
