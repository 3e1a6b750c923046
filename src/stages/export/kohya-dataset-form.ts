/**
 * Which of the two dataset forms a Kohya sd-scripts training script accepts
 * in its `--dataset_config`:
 *
 * - `dreambooth`: subsets with `image_dir`, captions in `<image><caption_extension>`
 *   beside each image, `caption_extension` allowed in `[general]`.
 * - `fine-tuning`: subsets with a required `metadata_file` (meta_cap.json)
 *   holding the captions; `caption_extension` and `class_tokens` are refused
 *   anywhere in the file by a script that has no DreamBooth support.
 *
 * Each script builds its ConfigSanitizer(support_dreambooth, support_finetuning,
 * support_controlnet, support_dropout) (kohya-ss/sd-scripts at 48d368f):
 *   fine_tune.py:69      ConfigSanitizer(False, True, False, True)   fine-tuning only
 *   train_db.py:74       ConfigSanitizer(True, False, ...)           DreamBooth only
 *   train_network.py:517 ConfigSanitizer(True, True, ...)            either (also sdxl_, sd3_, flux_train_network.py, which subclass it)
 *   sdxl_train.py:140    ConfigSanitizer(True, True, ...)            either
 * and `library/config_util.py:315-335` picks, for a script that accepts
 * both, the fine-tuning schema when every subset has metadata_file and the
 * DreamBooth one when none has. The full fine-tunes get the fine-tuning
 * form, the way their documentation trains them; every other script gets
 * the DreamBooth form, which is what the LoRA scripts are used with.
 */
import path from 'node:path';

export type DatasetForm = 'dreambooth' | 'fine-tuning';

const FINE_TUNING_SCRIPTS = new Set(['fine_tune.py', 'sdxl_train.py']);

/** The form for `train.script` (a path relative to sd-scripts); DreamBooth without a training script. */
export function datasetFormFor(script: string | undefined): DatasetForm {
  if (script === undefined) return 'dreambooth';
  return FINE_TUNING_SCRIPTS.has(path.basename(script.replaceAll('\\', '/'))) ? 'fine-tuning' : 'dreambooth';
}
