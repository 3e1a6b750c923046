/**
 * Which configured models a stage can use now: each id looked up in the
 * manifest and its files checked in the models folder. A missing model is
 * not an error for the job: the stage waits, and says what fetches it.
 */
import type { Config } from '../config/schema.ts';
import { CelforgeError } from '../errors.ts';
import { BUNDLED_MANIFEST, loadManifest, modelFilePath, modelState, shippedModelMissing, type ModelEntry } from './manifest.ts';

export interface AvailableModel {
  entry: ModelEntry;
  /** Each file's path in the models folder, by file name. */
  files: Record<string, string>;
}

export type Availability =
  | { ready: true; models: AvailableModel[] }
  | { ready: false; missing: string[]; reason: string; command: string | null };

export async function modelsAvailable(config: Config, ids: readonly string[], kinds: readonly ModelEntry['kind'][]): Promise<Availability> {
  const manifestFile = config.models.manifest ?? BUNDLED_MANIFEST;
  const manifest = await loadManifest(manifestFile);
  const unknown = ids.filter((id) => !manifest.some((entry) => entry.id === id && kinds.includes(entry.kind)));
  if (unknown.length) {
    const known = manifest.filter((entry) => kinds.includes(entry.kind)).map((entry) => entry.id);
    return {
      ready: false, missing: unknown, command: null,
      reason: `no ${kinds.join(' or ')} model ${unknown.join(', ')} in ${manifestFile} (known: ${known.join(', ')}); fix the configuration`,
    };
  }
  const entries = ids.map((id) => manifest.find((entry) => entry.id === id)!);
  const missing: string[] = [];
  for (const entry of entries) if ((await modelState(config.models.dir, entry)) !== 'present') missing.push(entry.id);
  const shipped = entries.find((entry) => entry.shipped && missing.includes(entry.id));
  if (shipped) return { ready: false, missing, command: null, reason: shippedModelMissing(shipped).message };
  if (missing.length) {
    const command = `celforge models fetch ${missing.join(' ')}`;
    return { ready: false, missing, command, reason: `${missingModels(missing)} not in ${config.models.dir}; run "${command}"` };
  }
  return {
    ready: true,
    models: entries.map((entry) => ({ entry, files: Object.fromEntries(entry.files.map((file) => [file.name, modelFilePath(config.models.dir, entry, file)])) })),
  };
}

/** The model's file whose name ends so (".onnx", ".csv", ".xml"). */
export function modelFile(model: AvailableModel, ending: string): string {
  const name = Object.keys(model.files).find((candidate) => candidate.endsWith(ending));
  if (!name) throw new CelforgeError('CONFIG_INVALID', `model ${model.entry.id} has no ${ending} file in its manifest entry`);
  return model.files[name]!;
}

/** "model a is" or "models a, b are", to begin a sentence about missing models. */
export function missingModels(ids: string[]): string {
  return ids.length === 1 ? `model ${ids[0]} is` : `models ${ids.join(', ')} are`;
}
