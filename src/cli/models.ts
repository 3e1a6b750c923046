/**
 * `celforge models list` and `celforge models fetch [id...]`: which models
 * are present, and downloading them into the models folder with a progress
 * bar, resume and checksum verification.
 */
import cliProgress from 'cli-progress';
import { download } from '../adapters/downloader.ts';
import { loadConfig } from '../config/load.ts';
import { formatSize } from '../config/size.ts';
import { CelforgeError } from '../errors.ts';
import { BUNDLED_MANIFEST, loadManifest, modelFilePath, modelState, shippedModelMissing } from '../models/manifest.ts';
import type { GlobalOptions } from './context.ts';

export async function modelsCommand(action: string, ids: string[], options: GlobalOptions): Promise<void> {
  const config = await loadConfig({ configPath: options.config, library: options.library });
  const models = await loadManifest(config.models.manifest ?? BUNDLED_MANIFEST);
  if (action === 'list') {
    for (const model of models) {
      const state = await modelState(config.models.dir, model);
      process.stdout.write(`${model.id.padEnd(24)} ${model.kind.padEnd(13)} ${state.padEnd(8)} ${(model.shipped ? 'shipped' : 'download').padEnd(8)} ${model.licence}  ${model.homepage}\n`);
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
  const bar = new cliProgress.SingleBar({ format: '{name} [{bar}] {percentage}% {done} of {size}', hideCursor: true }, cliProgress.Presets.shades_classic);
  for (const model of wanted) {
    if ((await modelState(config.models.dir, model)) === 'present') {
      process.stdout.write(`${model.id}: ${model.shipped ? 'shipped with celforge, present' : 'already present'}\n`);
      continue;
    }
    if (model.shipped) throw shippedModelMissing(model);
    for (const file of model.files) {
      if (file.url === null) throw new CelforgeError('CONFIG_INVALID', `model ${model.id}: ${file.name} has no url to download it from`);
      const name = `${model.id}/${file.name}`;
      bar.start(file.size ?? 1, 0, { name, done: '0 B', size: file.size ? formatSize(file.size) : '?' });
      try {
        const result = await download({
          url: file.url, dest: modelFilePath(config.models.dir, model, file), sha256: file.sha256, size: file.size,
          onProgress: (received, total) => {
            if (total) bar.setTotal(total);
            bar.update(received, { name, done: formatSize(received), size: total ? formatSize(total) : '?' });
          },
        });
        bar.stop();
        const resumed = result.resumedFrom ? `, resumed from ${formatSize(result.resumedFrom)}` : '';
        process.stdout.write(`${name}: ${formatSize(result.bytes)}, sha256 ${result.sha256}${resumed}\n`);
      } finally {
        bar.stop();
      }
    }
  }
}
