/**
 * The model manifest (models/manifest.json): what each model is, where its
 * files come from, their checksums, size, licence and input contract; and
 * whether a model's files are present in the models folder.
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
  url: z.string().url(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/).nullable(),
  size: z.number().int().positive().nullable(),
});

const modelSchema = z.strictObject({
  id: z.string().regex(/^[a-z0-9][a-z0-9.-]*$/),
  kind: z.enum(['tagger', 'face-yolo', 'face-cascade']),
  licence: z.string(),
  homepage: z.string().url(),
  input: z.strictObject({ size: z.number().int().min(0), layout: z.string(), channels: z.string(), range: z.string(), pad: z.string() }),
  files: z.array(fileSchema).min(1),
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
  return parsed.data.models;
}

export function modelFilePath(modelsDir: string, model: ModelEntry, file: ModelFile): string {
  return path.join(modelsDir, model.id, file.name);
}

export type ModelState = 'present' | 'missing' | 'partial';

/** Present when every file is there (at its pinned size, when one is pinned). */
export async function modelState(modelsDir: string, model: ModelEntry): Promise<ModelState> {
  let present = 0;
  for (const file of model.files) {
    const target = modelFilePath(modelsDir, model, file);
    if (existsSync(target) && (file.size === null || (await stat(target)).size === file.size)) present += 1;
  }
  return present === model.files.length ? 'present' : present === 0 ? 'missing' : 'partial';
}
