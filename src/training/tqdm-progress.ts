/**
 * Kohya's progress bar, as tqdm writes it to stderr: redrawn in place with
 * `\r`, not newlines, e.g.
 * `steps:  45%|████▌     | 450/1000 [05:23<06:35,  1.39it/s, avr_loss=0.0912]`
 * (sd-scripts: `tqdm(range(max_train_steps), desc="steps")`, postfix
 * `avr_loss`). Slow steps read `s/it`; an unknown remainder reads `?`.
 */
export interface TrainerProgress {
  step: number;
  total: number;
  /** Steps per second. */
  rate: number | null;
  etaSeconds: number | null;
  loss: number | null;
}

const BAR = /steps:\s*\d+%\|[^|]*\|\s*(\d+)\/(\d+)\s*\[([\d:]+)<([\d:]+|\?)(?:,\s*([\d.]+|\?)(it\/s|s\/it))?(?:,\s*avr_loss=([^\],\s]+))?/;

/** Every progress update in a piece of trainer output, in order. */
export function parseProgress(text: string): TrainerProgress[] {
  const updates: TrainerProgress[] = [];
  for (const segment of text.split(/[\r\n]/)) {
    const match = BAR.exec(segment);
    if (!match) continue;
    const [, step, total, , remaining, amount, unit, loss] = match;
    const value = amount && amount !== '?' ? Number(amount) : null;
    const rate = value === null ? null : unit === 's/it' ? (value > 0 ? 1 / value : null) : value;
    const lossValue = loss === undefined ? null : Number(loss);
    updates.push({
      step: Number(step), total: Number(total), rate,
      etaSeconds: remaining === '?' ? null : clockSeconds(remaining!),
      loss: lossValue !== null && Number.isFinite(lossValue) ? lossValue : null,
    });
  }
  return updates;
}

/** "05:23" or "1:05:23" as seconds. */
function clockSeconds(text: string): number {
  return text.split(':').reduce((total, part) => total * 60 + Number(part), 0);
}
