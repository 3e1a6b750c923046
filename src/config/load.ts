/**
 * Finds, imports and validates the configuration. An invalid value stops the
 * caller with a CelforgeError naming the file, the key, the value and what is
 * allowed; the value of a secret (a key named like key, secret, token or
 * password) is never shown. Relative paths are resolved against the config
 * file's folder (or the working directory when there is no file);
 * `--library` against the working directory, and what defaults to a place in
 * the library (train.dir) follows it.
 */
import { existsSync, readFileSync } from 'node:fs';
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
  const library = options.library ? path.resolve(cwd, options.library) : undefined;
  const config = validateConfig(raw, file ?? 'the default configuration', file ? path.dirname(file) : cwd, library);
  config.source = file;
  return config;
}

/** `library` (absolute) replaces the configured library folder, as --library does. */
export function validateConfig(raw: unknown, label: string, baseDir: string, library?: string): Config {
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => describeIssue(issue, raw));
    throw new CelforgeError('CONFIG_INVALID', `${label}: invalid configuration\n  ${problems.join('\n  ')}`, { file: label });
  }
  const parsed = result.data;
  const libraryDir = library ?? path.resolve(baseDir, parsed.library);
  return {
    ...parsed,
    inbox: parsed.inbox.map((folder) => path.resolve(baseDir, folder)),
    library: libraryDir,
    models: {
      ...parsed.models,
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
      dir: parsed.train.dir === undefined ? path.join(libraryDir, 'training') : path.resolve(baseDir, parsed.train.dir),
    },
    review: {
      ...parsed.review,
      generator: parsed.review.generator && {
        ...parsed.review.generator,
        ...(parsed.review.generator.kind === 'comfyui' && { workflow: path.resolve(baseDir, parsed.review.generator.workflow) }),
        modelFolder: parsed.review.generator.modelFolder && path.resolve(baseDir, parsed.review.generator.modelFolder),
      },
      wildPrompts: parsed.review.wildPrompts && path.resolve(baseDir, parsed.review.wildPrompts),
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
    const config = defaultExport(file, (await tsImport(pathToFileURL(file).href, import.meta.url)) as { default?: unknown });
    if (config === undefined) {
      throw new Error('it has no default export; write `export default defineConfig({ ... })`');
    }
    return config;
  } catch (error) {
    throw new CelforgeError('CONFIG_INVALID', `${file}: cannot load the configuration: ${errorMessage(error)}`, {
      file,
      cause: error,
    });
  }
}

/**
 * The file's `export default`, or undefined. Outside an ESM package a .ts
 * file is compiled to CommonJS, and Node hands back `module.exports` as the
 * default: esbuild marks exports compiled from ESM syntax with `__esModule`
 * (`__toCommonJS` in evanw/esbuild internal/runtime/runtime.go, commit
 * 02b4187), and their default export sits one level deeper. A CommonJS file without that mark has no `export default`, even
 * when its `module.exports` is an (empty) object.
 */
function defaultExport(file: string, module: { default?: unknown }): unknown {
  if (moduleFormatOf(file) === 'module') return module.default;
  const exports = module.default as { __esModule?: unknown; default?: unknown } | null | undefined;
  return exports !== null && typeof exports === 'object' && exports.__esModule === true ? exports.default : undefined;
}

/** Node's rule for the format of a file: its extension, else the `type` of the nearest package.json. */
function moduleFormatOf(file: string): 'module' | 'commonjs' {
  if (/\.m[jt]s$/.test(file)) return 'module';
  if (/\.c[jt]s$/.test(file)) return 'commonjs';
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        return (JSON.parse(readFileSync(manifest, 'utf8')) as { type?: unknown }).type === 'module' ? 'module' : 'commonjs';
      } catch {
        return 'commonjs';
      }
    }
    if (path.dirname(dir) === dir) return 'commonjs';
  }
}

function describeIssue(issue: z.core.$ZodIssue, raw: unknown): string {
  if (issue.code === 'unrecognized_keys') {
    const parent = issue.path.length ? `${issue.path.join('.')}.` : '';
    const keys = issue.keys.map((key) => `${parent}${key}`).join(', ');
    return `${keys}: unknown key${issue.keys.length > 1 ? 's' : ''} (check the spelling against the README's configuration table)`;
  }
  const key = issue.path.join('.') || '(top level)';
  const secret = issue.path.some((part) => typeof part === 'string' && SECRET_KEY.test(part));
  const value = valueAt(raw, issue.path);
  return hideSecrets(`${key} = ${secret && value !== undefined ? HIDDEN : formatValue(value)} is not allowed: ${issue.message}`, raw);
}

function valueAt(raw: unknown, keyPath: readonly PropertyKey[]): unknown {
  let current = raw;
  for (const key of keyPath) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

/** A value as JSON, with what sits under secret-named keys inside it hidden. */
function formatValue(value: unknown): string {
  if (value === undefined) return '(missing)';
  try {
    return JSON.stringify(value, (key, inner: unknown) => (key && SECRET_KEY.test(key) && inner !== undefined ? HIDDEN : inner));
  } catch {
    return String(value);
  }
}

const SECRET_KEY = /key|secret|token|password/i;
const HIDDEN = '(hidden)';

/** Every value under a secret-named key (an access key, a webhook secret, a token, a password), as it would be printed. */
function secretValues(raw: unknown, underSecret = false, found: string[] = []): string[] {
  if (typeof raw === 'string' || typeof raw === 'number' || typeof raw === 'bigint') {
    if (underSecret) found.push(String(raw), JSON.stringify(String(raw)).slice(1, -1));
    // A password written into a URL (http://user:password@host), under any key.
    const inUrl = typeof raw === 'string' ? /^[a-z][a-z\d+.-]*:\/\/[^/?#@\s]*?:([^/?#@\s]+)@/i.exec(raw)?.[1] : undefined;
    if (inUrl) found.push(inUrl, safeDecode(inUrl));
  } else if (raw !== null && typeof raw === 'object') {
    for (const [key, value] of Object.entries(raw)) secretValues(value, underSecret || SECRET_KEY.test(key), found);
  }
  return found;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** Takes every secret value out of a message of zod's, which may quote what it received. */
function hideSecrets(message: string, raw: unknown): string {
  const secrets = [...new Set(secretValues(raw))].filter(Boolean).sort((a, b) => b.length - a.length);
  return secrets.reduce((text, secret) => text.split(secret).join(HIDDEN), message);
}
