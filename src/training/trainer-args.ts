/**
 * `train.args` as the Kohya script will see them: the flags celforge sets
 * itself are dropped from them (`userArgs`), single flags can be read back
 * (`argValue`), and the ones celforge cannot honour are refused when the
 * configuration is loaded (`refusedTrainerArgs`).
 */

export type TrainerArgs = string[] | Record<string, string | number | boolean>;

/** Arguments celforge sets itself; the same ones in `train.args` are dropped. */
const OWNED_ARGS = [
  'dataset_config', 'output_dir', 'output_name', 'save_state', 'save_every_n_steps', 'max_train_steps', 'resume', 'train_data_dir', 'in_json',
  // Where a resumed run starts: celforge counts the steps across nights and passes them (train_network.py @48d368f, lines 1232-1255).
  'initial_step', 'initial_epoch', 'skip_until_initial_step',
];

/**
 * `--save_model_as` values that give one checkpoint file `<output_name>.<format>`
 * (train_network.py @48d368f line 1756 allows ckpt, pt, safetensors; fine_tune.py
 * also allows diffusers folders, which celforge does not follow).
 */
const MODEL_FORMATS = ['ckpt', 'pt', 'safetensors'];

export function userArgs(args: TrainerArgs): string[] {
  const list = asList(args);
  const result: string[] = [];
  for (let i = 0; i < list.length; i += 1) {
    const name = flagName(list[i]!);
    if (name && OWNED_ARGS.includes(name)) {
      if (takesValue(list, i)) i += 1;
      continue;
    }
    result.push(list[i]!);
  }
  return result;
}

/** A flag's value: its string, `true` for a flag without one, undefined when absent (the last one wins, as in argparse). */
export function argValue(args: TrainerArgs, name: string): string | true | undefined {
  const list = asList(args);
  let found: string | true | undefined;
  for (let i = 0; i < list.length; i += 1) {
    if (flagName(list[i]!) !== name) continue;
    const inline = /^--[\w-]+=(.*)$/s.exec(list[i]!);
    found = inline ? inline[1]! : takesValue(list, i) ? list[i + 1]! : true;
  }
  return found;
}

/**
 * sd-scripts uses a dummy scheduler that accelerate does not save (no
 * scheduler.bin) for every optimizer type ending in "schedulefree", any case
 * (library/train_util.py @48d368f: is_schedulefree_optimizer line 5240,
 * get_scheduler_fix line 5270, get_dummy_scheduler line 5244).
 */
export function usesScheduleFree(args: TrainerArgs): boolean {
  const type = argValue(args, 'optimizer_type');
  return typeof type === 'string' && type.toLowerCase().endsWith('schedulefree');
}

/**
 * Where the final checkpoint can be: `<output_name>.<save_model_as>`
 * (train_util.get_last_ckpt_name, line 5781). Unset, train_network.py writes
 * safetensors and fine_tune.py the source model's format, safetensors or ckpt
 * (train_util.py line 6043).
 */
export function checkpointFileNames(args: TrainerArgs, outputName: string): string[] {
  const format = argValue(args, 'save_model_as');
  return typeof format === 'string' ? [`${outputName}.${format}`] : [`${outputName}.safetensors`, `${outputName}.ckpt`];
}

/** Optimizer steps per dataloader batch: `--gradient_accumulation_steps`, default 1. */
export function accumulationSteps(args: TrainerArgs): number {
  const value = Number(argValue(args, 'gradient_accumulation_steps') ?? 1);
  return Number.isInteger(value) && value > 0 ? value : 1;
}

export interface RefusedArg {
  /** The key under train.args: the flag's name (object form) or its index (list form). */
  key: string | number;
  message: string;
}

/** Arguments that would make celforge's step count or its finished-run check wrong, with what to do instead. */
export function refusedTrainerArgs(args: TrainerArgs): RefusedArg[] {
  const refused: RefusedArg[] = [];
  const list = asList(args);
  for (let i = 0; i < list.length; i += 1) {
    const name = flagName(list[i]!);
    if (!name) continue;
    const key = Array.isArray(args) ? i : Object.keys(args).find((entry) => entry.replace(/-/g, '_') === name) ?? name;
    if (name === 'max_train_epochs') {
      // train_network.py @48d368f lines 799-805: --max_train_epochs replaces --max_train_steps, so the run would not stop where celforge counts.
      refused.push({ key, message: 'Kohya lets --max_train_epochs override --max_train_steps, which celforge sets to count steps across nights; remove it and set train.maxTrainSteps (epochs × the "num batches per epoch" Kohya prints)' });
    }
    if (name === 'save_model_as') {
      const value = argValue(args, 'save_model_as');
      if (typeof value !== 'string' || !MODEL_FORMATS.includes(value)) {
        refused.push({ key, message: `celforge follows a run to one checkpoint file: expected one of ${MODEL_FORMATS.join(', ')}` });
      }
    }
  }
  return refused;
}

function asList(args: TrainerArgs): string[] {
  return Array.isArray(args)
    ? args
    : Object.entries(args).flatMap(([key, value]) => (value === false ? [] : value === true ? [`--${key}`] : [`--${key}`, String(value)]));
}

function flagName(arg: string): string | null {
  const name = /^--([\w-]+)(=.*)?$/s.exec(arg)?.[1];
  return name ? name.replace(/-/g, '_') : null;
}

function takesValue(list: string[], i: number): boolean {
  return !list[i]!.includes('=') && list[i + 1] !== undefined && !list[i + 1]!.startsWith('--');
}
