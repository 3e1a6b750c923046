/**
 * Kohya sd-scripts' `--dataset_config` file (docs/config_README-en.md): a
 * `[general]` table, `[[datasets]]` with their `[[datasets.subsets]]`.
 * sd-scripts reads it with the Python `toml` package, 0.10.2 in its
 * requirements.txt (`library/config_util.py` `load_user_config`), so we write
 * only what that parser and TOML 1.0 agree on: literal or basic strings (see
 * tomlString), decimal integers, booleans, one-line arrays of integers.
 *
 * parseSimpleToml reads back exactly that subset, and refuses anything else
 * (inline tables, multi-line strings, dotted keys, dates) with the line number.
 */
import { CelforgeError } from '../../errors.ts';

/**
 * Both forms sd-scripts' `library/config_util.py` ConfigSanitizer accepts
 * (see kohya-dataset-form.ts): caption_extension and class_tokens belong to
 * the DreamBooth form only, metadata_file to the fine-tuning form.
 */
export interface DatasetConfig {
  general: { enable_bucket: boolean; caption_extension?: string; shuffle_caption: boolean; keep_tokens: number };
  datasets: {
    resolution: number | [number, number];
    batch_size: number;
    min_bucket_reso: number;
    max_bucket_reso: number;
    bucket_reso_steps: number;
    bucket_no_upscale: boolean;
    subsets: (DreamBoothSubset | FineTuningSubset)[];
  }[];
}

/** Trains on every image in image_dir, its caption from the file beside it. */
export type DreamBoothSubset = { image_dir: string; num_repeats: number; keep_tokens?: number; class_tokens?: string };
/** Trains on the images metadata_file names, with the captions in it. */
export type FineTuningSubset = { metadata_file: string; image_dir: string; num_repeats: number; keep_tokens?: number };

type Scalar = string | number | boolean | number[];

export function datasetConfigToml(config: DatasetConfig): string {
  const lines = [
    '# Kohya sd-scripts dataset config, written by celforge: pass it to the trainer with --dataset_config.',
    '',
    '[general]',
    ...entries('', config.general),
  ];
  for (const dataset of config.datasets) {
    const { subsets, ...options } = dataset;
    lines.push('', '[[datasets]]', ...entries('', options));
    for (const subset of subsets) {
      lines.push('', '  [[datasets.subsets]]', ...entries('  ', subset));
    }
  }
  return `${lines.join('\n')}\n`;
}

function entries(indent: string, table: Record<string, Scalar | undefined>): string[] {
  return Object.entries(table)
    .filter((entry): entry is [string, Scalar] => entry[1] !== undefined)
    .map(([key, value]) => `${indent}${key} = ${tomlValue(key, value)}`);
}

function tomlValue(key: string, value: Scalar): string {
  if (typeof value === 'string') return tomlString(value);
  if (typeof value === 'boolean') return String(value);
  if (typeof value === 'number') return tomlInteger(key, value);
  return `[${value.map((n) => tomlInteger(key, n)).join(', ')}]`;
}

function tomlInteger(key: string, value: number): string {
  if (!Number.isSafeInteger(value)) {
    throw new CelforgeError('CONFIG_INVALID', `dataset_config.toml: ${key} must be a whole number, got ${value}.`);
  }
  return String(value);
}

/**
 * A string as toml 0.10.2 and TOML 1.0 both read it. That parser mis-reads a
 * basic string that begins with an escaped quote (`"\"x"` gives "") and a
 * `\\u` after any `\uXXXX` escape, so: a literal string where the text has
 * no single quote and no control character (what Kohya's README uses for
 * Windows paths), else a basic string with the short escapes only. Text that
 * fits neither (a control character without a short escape, or a leading
 * double quote with a single quote or line break in it) is refused.
 */
export function tomlString(value: string): string {
  const refuse = (why: string): never => {
    throw new CelforgeError('CONFIG_INVALID', `dataset_config.toml: ${JSON.stringify(value)} ${why}, which Kohya's TOML reader (toml 0.10.2) cannot read back; rename it.`);
  };
  if (/[\u0000-\u0007\u000b\u000e-\u001f\u007f]/.test(value)) refuse('contains a control character');
  if (!/['\u0008-\u000a\u000c\u000d]/.test(value)) return `'${value}'`;
  if (value.startsWith('"')) refuse('starts with a double quote and has a single quote or a control character');
  let out = '"';
  for (const char of value) out += SHORT_ESCAPES[char] ?? char;
  return `${out}"`;
}

const SHORT_ESCAPES: Record<string, string> = { '\\': '\\\\', '"': '\\"', '\b': '\\b', '\t': '\\t', '\n': '\\n', '\f': '\\f', '\r': '\\r' };

export function parseSimpleToml(text: string): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  let current = root;
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const fail = (message: string): never => {
      throw new CelforgeError('CONFIG_INVALID', `TOML line ${index + 1}: ${message}: ${raw.trim()}`);
    };
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;

    const arrayHeader = /^\[\[\s*([A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*)\s*\]\]\s*(?:#.*)?$/.exec(line);
    const tableHeader = arrayHeader ? null : /^\[\s*([A-Za-z0-9_-]+)\s*\]\s*(?:#.*)?$/.exec(line);
    if (arrayHeader) {
      const path = arrayHeader[1]!.split('.');
      const parent = resolveParent(root, path.slice(0, -1), fail);
      const name = path[path.length - 1]!;
      if (parent[name] === undefined) parent[name] = [];
      const array = parent[name];
      if (!Array.isArray(array)) fail(`${path.join('.')} is already a table or a value`);
      const table: Record<string, unknown> = {};
      (array as unknown[]).push(table);
      current = table;
      return;
    }
    if (tableHeader) {
      const name = tableHeader[1]!;
      if (root[name] !== undefined) fail(`table ${name} is defined twice`);
      const table: Record<string, unknown> = {};
      root[name] = table;
      current = table;
      return;
    }
    if (line.startsWith('[')) fail('this table header is not supported');

    const pair = /^([A-Za-z0-9_-]+)\s*=\s*(.*)$/.exec(line);
    if (!pair) fail('expected key = value');
    const [, key, rest] = pair!;
    if (Object.hasOwn(current, key!)) fail(`key ${key} is defined twice`);
    const { value, end } = parseValue(rest!, fail);
    const after = rest!.slice(end).trim();
    if (after !== '' && !after.startsWith('#')) fail('unexpected text after the value');
    current[key!] = value;
  });
  return root;
}

/** Follows `[[a.b]]` into the last table of each array on the way, as TOML does. */
function resolveParent(root: Record<string, unknown>, path: string[], fail: (message: string) => never): Record<string, unknown> {
  let table = root;
  for (const part of path) {
    const next = table[part];
    if (Array.isArray(next) && next.length > 0) table = next[next.length - 1] as Record<string, unknown>;
    else if (isTable(next)) table = next;
    else fail(`[[${path.join('.')}...]] needs a [[${part}]] before it`);
  }
  return table;
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseValue(text: string, fail: (message: string) => never): { value: unknown; end: number } {
  if (text.startsWith('"""') || text.startsWith("'''")) fail('multi-line strings are not supported');
  if (text.startsWith('"')) return parseBasicString(text, fail);
  if (text.startsWith("'")) {
    const close = text.indexOf("'", 1);
    if (close < 0) fail('unterminated literal string');
    return { value: text.slice(1, close), end: close + 1 };
  }
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) fail('arrays must close on the same line');
    const inner = text.slice(1, close).trim();
    const items = inner === '' ? [] : inner.replace(/,\s*$/, '').split(',').map((item) => parseNumber(item.trim(), fail));
    return { value: items, end: close + 1 };
  }
  const token = /^[^\s#]+/.exec(text)?.[0] ?? '';
  if (token === 'true') return { value: true, end: 4 };
  if (token === 'false') return { value: false, end: 5 };
  return { value: parseNumber(token, fail), end: token.length };
}

function parseNumber(token: string, fail: (message: string) => never): number {
  if (/^[+-]?(0|[1-9][0-9]*)$/.test(token)) {
    const value = Number(token);
    if (!Number.isSafeInteger(value)) fail(`integer ${token} is too large`);
    return value;
  }
  if (/^[+-]?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/.test(token) && /[.eE]/.test(token)) return Number(token);
  return fail(`unsupported value ${JSON.stringify(token)}`);
}

const ESCAPES: Record<string, string> = { b: '\b', t: '\t', n: '\n', f: '\f', r: '\r', '"': '"', '\\': '\\' };

function parseBasicString(text: string, fail: (message: string) => never): { value: string; end: number } {
  let value = '';
  for (let i = 1; i < text.length; i++) {
    const char = text[i]!;
    if (char === '"') return { value, end: i + 1 };
    if (char !== '\\') {
      if (/[\u0000-\u0008\u000a-\u001f\u007f]/.test(char)) fail('control character in a string');
      value += char;
      continue;
    }
    const escape = text[++i];
    if (escape === undefined) break;
    if (ESCAPES[escape] !== undefined) {
      value += ESCAPES[escape];
    } else if (escape === 'u' || escape === 'U') {
      const length = escape === 'u' ? 4 : 8;
      const hex = text.slice(i + 1, i + 1 + length);
      if (!new RegExp(`^[0-9A-Fa-f]{${length}}$`).test(hex)) fail(`bad \\${escape} escape`);
      const code = parseInt(hex, 16);
      if (code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) fail(`\\${escape}${hex} is not a Unicode scalar value`);
      value += String.fromCodePoint(code);
      i += length;
    } else {
      fail(`unknown escape \\${escape}`);
    }
  }
  return fail('unterminated string');
}
