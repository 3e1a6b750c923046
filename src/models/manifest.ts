/**
 * The model manifest (models/manifest.json): what each model is, where its
 * files come from, their checksums, size, licence and input contract; and
 * whether a model's files are present. A downloadable model's files live in
 * the models folder (`<models.dir>/<id>/<name>`); a shipped model's files are
 * part of the repository, at paths relative to the manifest, and are never
 * downloaded.
 */
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { CelforgeError, errorMessage } from '../errors.ts';

export const BUNDLED_MANIFEST = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'models', 'manifest.json');

const fileSchema = z.strictObject({
  name: z.string().regex(/^[\w.-]+$/, 'a plain file name'),
  /** Where the file is downloaded from; null for a file that is only shipped. */
  url: z.string().url().nullable(),
  /** A shipped file: its path relative to the manifest's folder (made absolute on loading). */
  path: z.string().min(1).optional(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/).nullable(),
  size: z.number().int().positive().nullable(),
});

const modelSchema = z.strictObject({
  id: z.string().regex(/^[a-z0-9][a-z0-9.-]*$/),
  kind: z.enum(['tagger', 'face-yolo', 'face-cascade', 'face-detector', 'ccip']),
  licence: z.string(),
  homepage: z.string().url(),
  /** In the repository beside the manifest: present without a download, never fetched. */
  shipped: z.boolean().default(false),
  input: z.strictObject({ size: z.number().int().min(0), layout: z.string(), channels: z.string(), range: z.string(), pad: z.string() }),
  files: z.array(fileSchema).min(1),
}).superRefine((model, context) => {
  model.files.forEach((file, index) => {
    const problem = model.shipped
      ? (file.path === undefined ? 'a shipped file needs its path inside the repository'
        : path.isAbsolute(file.path) || file.path.split(/[\\/]/).includes('..') ? 'a shipped file\'s path is relative to the manifest\'s folder and stays inside it'
        : file.sha256 === null || file.size === null ? 'a shipped file needs its sha256 and size pinned' : null)
      : (file.path !== undefined ? 'only a shipped model ("shipped": true) has file paths'
        : file.url === null ? 'a file that is not shipped needs a url to download it from' : null);
    if (problem) context.addIssue({ code: 'custom', path: ['files', index], message: problem });
  });
});

export type ModelEntry = z.infer<typeof modelSchema>;
export type ModelFile = z.infer<typeof fileSchema>;

export async function loadManifest(file: string): Promise<ModelEntry[]> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new CelforgeError('CONFIG_INVALID', `${file}: the model manifest cannot be read (${errorMessage(error)})`, { file });
  }
  const parsed = z.strictObject({ models: z.array(modelSchema) }).safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new CelforgeError('CONFIG_INVALID', `${file}: ${issue.path.join('.')}: ${issue.message}`, { file });
  }
  const folder = path.dirname(path.resolve(file));
  return parsed.data.models.map((model) => ({
    ...model,
    files: model.files.map((entry) => (entry.path === undefined ? entry : { ...entry, path: path.resolve(folder, entry.path) })),
  }));
}

export function modelFilePath(modelsDir: string, model: ModelEntry, file: ModelFile): string {
  return file.path ?? path.join(modelsDir, model.id, file.name);
}

export type ModelState = 'present' | 'missing' | 'partial';

/** Present when every file is there (at its pinned size, when one is pinned), in the models folder or, when shipped, in the repository. */
export async function modelState(modelsDir: string, model: ModelEntry): Promise<ModelState> {
  let present = 0;
  for (const file of model.files) {
    const target = modelFilePath(modelsDir, model, file);
    if (existsSync(target) && (file.size === null || (await stat(target)).size === file.size)) present += 1;
  }
  return present === model.files.length ? 'present' : present === 0 ? 'missing' : 'partial';
}

/** A shipped model whose files are gone or changed: nothing to download, the repository has to be restored. */
export function shippedModelMissing(model: ModelEntry): CelforgeError {
  const files = model.files.map((file) => file.path!);
  return new CelforgeError(
    'FILE_NOT_FOUND',
    `model ${model.id} is shipped with celforge, but ${files.join(', ')} is missing or changed; restore it (git checkout -- ${files.join(' ')})`,
    { file: files[0]! },
  );
}
