/** How training reads in a terminal: one line with its state, steps, rate, ETA and loss. */
import type { TrainingState } from '../training/training-state.ts';

export function describeTraining(state: TrainingState): string {
  const parts = [`training ${state.status}`, `step ${state.seenSteps}/${state.targetSteps} (${state.savedSteps} saved)`];
  const progress = state.progress;
  if (state.status === 'running' || state.status === 'stopping') {
    if (progress?.rate) parts.push(`${progress.rate.toFixed(2)} steps/s`);
    if (progress?.rate) parts.push(`ETA ${formatDuration((state.targetSteps - state.seenSteps) / progress.rate)}`);
    if (progress?.loss !== null && progress?.loss !== undefined) parts.push(`loss ${progress.loss}`);
  }
  if (state.reason) parts.push(state.reason);
  if (state.status === 'finished' && state.checkpoint) parts.push(`checkpoint ${state.checkpoint}`);
  return parts.join('  ');
}

function formatDuration(seconds: number): string {
  const minutes = Math.round(seconds / 60);
  return minutes >= 60 ? `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}` : `${minutes}m`;
}
