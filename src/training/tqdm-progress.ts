/**
 * Kohya's training progress bar, as tqdm writes it to stderr: redrawn in
 * place with `\r`, not newlines, e.g.
 * `steps:  45%|████▌     | 450/1000 [05:23<06:35,  1.39it/s, avr_loss=0.0912]`
 * (sd-scripts 48d368f train_network.py line 1357:
 * `tqdm(range(max_train_steps - initial_step), desc="steps")`, counting from 0
 * even on a resume; tqdm std.py format_meter: `{desc}: {percentage:3.0f}%|{bar}|
 * {n}/{total} [{elapsed}<{remaining}, {rate}{postfix}]`). Slow steps read
 * `s/it`; an unknown remainder reads `?`.
 *
 * Only the bar whose desc is exactly `steps` is training progress: with
 * `--validation_split` sd-scripts also draws "validation steps" and "epoch
 * validation steps" bars (lines 1546, 1622), one line below the main bar
 * (tqdm moveto: `\n`, the bar, then the cursor-up escape `ESC[A`).
 *
 * The postfix is `set_postfix(**{**max_mean_logs, **logs})` (line 1516), and
 * tqdm sorts keyword postfixes by name (std.py set_postfix: `sorted(kwargs)`),
 * so with `--scale_weight_norms` it reads
 * `Average key norm=0.0571, Keys Scaled=0, avr_loss=0.0912`: avr_loss is
 * found by name, wherever it stands. Another network module's norm may be a
 * tensor (`Average key norm=tensor(0.2138, device='cuda:0')`,
 * Akegarasu/lora-scripts#381), and a terminal-wide line may be cut short
 * (tqdm trims to the terminal width): a loss cut off is not read.
 */
export interface TrainerProgress {
  /** The bar's count: steps done in this run. */
  step: number;
  /** The bar's total. */
  total: number;
  /** Steps per second. */
  rate: number | null;
  etaSeconds: number | null;
  loss: number | null;
}

// Escape sequences tqdm may leave at the start of a redraw (cursor movement of nested bars).
const BAR = /^(?:\x1b\[[\d;]*[A-Za-z])*steps: *\d+%\|[^|]*\| *(\d+)\/(\d+) \[([\d:]+)<([\d:]+|\?)(?:, *([\d.]+|\?)(it\/s|s\/it))?(.*)$/;
const LOSS = /(?:^|, )avr_loss=([^,\]\s]+)(?=,|\])/;

/** Every progress update of the training bar in a piece of trainer output, in order. */
export function parseProgress(text: string): TrainerProgress[] {
  const updates: TrainerProgress[] = [];
  for (const segment of text.split(/[\r\n]/)) {
    const match = BAR.exec(segment);
    if (!match) continue;
    const [, step, total, , remaining, amount, unit, postfix] = match;
    const value = amount && amount !== '?' ? Number(amount) : null;
    const rate = value === null ? null : unit === 's/it' ? (value > 0 ? 1 / value : null) : value;
    const loss = LOSS.exec(postfix!.replace(/^, */, ''))?.[1];
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
