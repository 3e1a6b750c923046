/**
 * `celforge models list` and `celforge models fetch [id...]`: which models
 * are present, and downloading them into the models folder with a progress
 * bar, resume and checksum verification.
 */
import { loadConfig } from '../config/load.ts';
import { CelforgeError } from '../errors.ts';
import { BUNDLED_MANIFEST, loadManifest, modelState } from '../models/manifest.ts';
import { downloadModel } from '../models/model-download.ts';
import type { GlobalOptions } from './context.ts';
import { DownloadBar } from './download-bar.ts';

export async function modelsCommand(action: string, ids: string[], options: GlobalOptions): Promise<void> {
  const config = await loadConfig({ configPath: options.config, library: options.library });
  const models = await loadManifest(config.models.manifest ?? BUNDLED_MANIFEST);
  if (action === 'list') {
    for (const model of models) {
      const state = await modelState(config.models.dir, model);
      process.stdout.write(`${model.id.padEnd(24)} ${model.kind.padEnd(14)} ${state.padEnd(8)} ${(model.shipped ? 'shipped' : 'download').padEnd(8)} ${model.licence}  ${model.homepage}\n`);
    }
    process.stdout.write(`models folder: ${config.models.dir}\n`);
    return;
  }
  if (action !== 'fetch') throw new CelforgeError('CONFIG_INVALID', `celforge models: "${action}" is not list or fetch`);
  const unknown = ids.filter((id) => !models.some((model) => model.id === id));
  if (unknown.length) {
    throw new CelforgeError('CONFIG_INVALID', `celforge models fetch: no model ${unknown.join(', ')}; known: ${models.map((m) => m.id).join(', ')}`);
  }
  const wanted = ids.length ? models.filter((model) => ids.includes(model.id)) : models;
  const progress = new DownloadBar();
  for (const model of wanted) {
    if ((await modelState(config.models.dir, model)) === 'present') {
      process.stdout.write(`${model.id}: ${model.shipped ? 'shipped with celforge, present' : 'already present'}\n`);
      continue;
    }
    await downloadModel({ modelsDir: config.models.dir, model, progress, command: 'models fetch' });
  }
}
