/**
 * The trainer's tqdm output as sd-scripts writes it: recorded lines from real
 * runs where there are some, and lines in the format of the source
 * (sd-scripts 48d368f train_network.py lines 1357, 1516, 1542-1581;
 * tqdm std.py format_meter, set_postfix, moveto) for the rest.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseProgress } from '../../src/training/tqdm-progress.ts';

test('the loss is read after the --scale_weight_norms fields that tqdm sorts before it', () => {
  // Recorded in Akegarasu/lora-scripts#381 (a real sd-scripts run with --scale_weight_norms).
  const [update] = parseProgress('steps:  25%|█████▎               | 76/300 [33:45<1:39:28, 26.64s/it, Average key norm=0, Keys Scaled=0, avr_loss=0.116]');
  assert.deepEqual(update, { step: 76, total: 300, rate: 1 / 26.64, etaSeconds: 3600 + 39 * 60 + 28, loss: 0.116 });
  const [tensor] = parseProgress("\rsteps:  26%|██▌       | 78/300 [34:38<1:38:36, 26.65s/it, Average key norm=tensor(0.2138, device='cuda:0'), Keys Scaled=1, avr_loss=0.114]   ");
  assert.equal(tensor!.loss, 0.114, 'a tensor-valued norm (with commas) before it');
  assert.equal(parseProgress('\rsteps:  12%|█▏        | 120/1000 [01:00<07:20,  2.00it/s, Average key norm=0.0571, Keys Scaled=3, avr_loss=1.23e-5]')[0]!.loss, 1.23e-5, 'tqdm format_num writes small numbers in exponent form');
});

test('a line cut at the terminal width keeps its step and drops a loss it cannot read whole', () => {
  // Recorded in Akegarasu/lora-scripts#381: tqdm trimmed the line to the terminal's width.
  const [update] = parseProgress("steps:  26%|▎| 78/300 [34:38<1:38:36, 26.65s/it, Average key norm=tensor(0.2138, device='cuda:0'), Keys Scaled=1, avr_l");
  assert.equal(update!.step, 78);
  assert.equal(update!.loss, null);
  assert.equal(parseProgress('steps:  26%|▎| 78/300 [34:38<1:38:36, 26.65s/it, avr_loss=0.11')[0]!.loss, null, 'avr_loss=0.11 may be 0.116 cut short');
});

test('validation bars are not training progress', () => {
  const output = [
    '\rsteps:  10%|█         | 10/100 [00:05<00:45,  2.00it/s, avr_loss=0.0912]',
    // Position 1 below the main bar: "\n", the bar, ESC[A (tqdm moveto); desc "validation steps" and "epoch validation steps".
    '\n\rvalidation steps:  25%|██▌       | 1/4 [00:00<00:01,  2.50it/s, val_avg_loss=0.118, timestep=200]\x1b[A',
    '\n\rvalidation steps: 100%|██████████| 4/4 [00:01<00:00,  2.50it/s, val_avg_loss=0.121, timestep=800]\x1b[A',
    '\n\repoch validation steps:  50%|█████     | 2/4 [00:00<00:00,  2.50it/s, val_epoch_avg_loss=0.12, timestep=400]\x1b[A',
    '\x1b[A\rsteps:  11%|█         | 11/100 [00:06<00:45,  2.00it/s, avr_loss=0.0907]',
  ].join('');
  assert.deepEqual(parseProgress(output).map((update) => [update.step, update.total, update.loss]), [[10, 100, 0.0912], [11, 100, 0.0907]]);
});

test('the first redraw has no rate, no remainder and no loss yet', () => {
  assert.deepEqual(parseProgress('\rsteps:   0%|          | 0/1000 [00:00<?, ?it/s]'), [{ step: 0, total: 1000, rate: null, etaSeconds: null, loss: null }]);
});
