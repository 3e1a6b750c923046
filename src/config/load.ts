/**
 * Finds, imports and validates the configuration. An invalid value stops the
 * caller with a CelforgeError naming the file, the key, the value and what is
 * allowed. Relative paths are resolved against the config file's folder (or
 * the working directory when there is no file); `--library` against the
 * working directory.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { tsImport } from 'tsx/esm/api';
import type { z } from 'zod';
import { CelforgeError, errorMessage } from '../errors.ts';
import { configSchema, type Config } from './schema.ts';

export const DEFAULT_CONFIG_FILE = 'daemon.config.ts';

export interface LoadOptions {
  /** --config: an explicit file, which must exist. */
  configPath?: string | undefined;
  /** --library: overrides the configured library folder. */
  library?: string | undefined;
  cwd?: string;
}

export async function loadConfig(options: LoadOptions = {}): Promise<Config> {
  const cwd = options.cwd ?? process.cwd();
  const file = findConfigFile(options.configPath ?? process.env.CELFORGE_CONFIG, cwd);
  const raw = file ? await importConfigFile(file) : {};
  const config = validateConfig(raw, file ?? 'the default configuration', file ? path.dirname(file) : cwd);
  if (options.library) config.library = path.resolve(cwd, options.library);
  config.source = file;
  return config;
}

export function validateConfig(raw: unknown, label: string, baseDir: string): Config {
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => describeIssue(issue, raw));
    throw new CelforgeError('CONFIG_INVALID', `${label}: invalid configuration\n  ${problems.join('\n  ')}`, {
      file: label,
    });
  }
  const parsed = result.data;
  return {
    ...parsed,
    inbox: parsed.inbox.map((folder) => path.resolve(baseDir, folder)),
    library: path.resolve(baseDir, parsed.library),
    models: {
      dir: path.resolve(baseDir, parsed.models.dir),
      manifest: parsed.models.manifest && path.resolve(baseDir, parsed.models.manifest),
    },
    ffmpeg: {
      ffmpegPath: parsed.ffmpeg.ffmpegPath && path.resolve(baseDir, parsed.ffmpeg.ffmpegPath),
      ffprobePath: parsed.ffmpeg.ffprobePath && path.resolve(baseDir, parsed.ffmpeg.ffprobePath),
    },
    train: parsed.train && {
      ...parsed.train,
      sdScripts: path.resolve(baseDir, parsed.train.sdScripts),
      dir: path.resolve(baseDir, parsed.train.dir ?? path.join(parsed.library, 'training')),
    },
    source: null,
  };
}

function findConfigFile(explicit: string | undefined, cwd: string): string | null {
  if (explicit) {
    const file = path.resolve(cwd, explicit);
    if (!existsSync(file)) {
      throw new CelforgeError('CONFIG_NOT_FOUND', `${file}: config file not found`, { file });
    }
    return file;
  }
  const local = path.resolve(cwd, DEFAULT_CONFIG_FILE);
  return existsSync(local) ? local : null;
}

async function importConfigFile(file: string): Promise<unknown> {
  try {
    // tsImport loads the file afresh on every call, so a reload (SIGHUP) sees edits.
    const module = unwrapCommonJs((await tsImport(pathToFileURL(file).href, import.meta.url)) as { default?: unknown });
    if (module.default === undefined) {
      throw new Error('it has no default export; write `export default defineConfig({ ... })`');
    }
    return module.default;
  } catch (error) {
    throw new CelforgeError('CONFIG_INVALID', `${file}: cannot load the configuration: ${errorMessage(error)}`, {
      file,
      cause: error,
    });
  }
}

/** A config file outside an ESM package is compiled to CommonJS: its exports sit one `default` deeper. */
function unwrapCommonJs(module: { default?: unknown }): { default?: unknown } {
  const inner = module.default as { default?: unknown } | undefined;
  const isExportsObject = inner !== null && typeof inner === 'object' && Object.keys(inner).length === 1 && 'default' in inner;
  return isExportsObject ? inner : module;
}

function describeIssue(issue: z.core.$ZodIssue, raw: unknown): string {
  if (issue.code === 'unrecognized_keys') {
    const parent = issue.path.length ? `${issue.path.join('.')}.` : '';
    const keys = issue.keys.map((key) => `${parent}${key}`).join(', ');
    return `${keys}: unknown key${issue.keys.length > 1 ? 's' : ''} (check the spelling against the README's configuration table)`;
  }
  const key = issue.path.join('.') || '(top level)';
  const value = valueAt(raw, issue.path);
  return `${key} = ${formatValue(value)} is not allowed: ${issue.message}`;
}

function valueAt(raw: unknown, keyPath: readonly PropertyKey[]): unknown {
  let current = raw;
  for (const key of keyPath) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

function formatValue(value: unknown): string {
  if (value === undefined) return '(missing)';
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}
