/**
 * Tag sidecar files next to images, in the two forms users have:
 * Kohya/WD14 captions (`frame.txt`: tags separated by commas, spaces for
 * underscores) and Hydrus exports (`frame.png.txt`: one tag per line).
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { CelforgeError } from '../errors.ts';

export type SidecarKind = 'kohya' | 'hydrus';

export interface Sidecar {
  file: string;
  kind: SidecarKind;
  tags: string[];
}

/** The sidecar of an image, Hydrus form first (its name is the more specific). */
export async function readSidecar(image: string): Promise<Sidecar | null> {
  const hydrus = `${image}.txt`;
  const kohya = captionPathOf(image);
  for (const [file, kind] of [[hydrus, 'hydrus'], [kohya, 'kohya']] as const) {
    if (!existsSync(file)) continue;
    const bytes = await readFile(file);
    const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
    let content: string;
    try {
      content = text.decode(bytes);
    } catch {
      throw new CelforgeError('CONFIG_INVALID', `${file}: not a text sidecar (it is not UTF-8 text); fix or remove it`, { file });
    }
    if (content.includes('\0')) throw new CelforgeError('CONFIG_INVALID', `${file}: not a text sidecar (it holds NUL bytes)`, { file });
    return { file, kind, tags: kind === 'hydrus' ? parseHydrusSidecar(content) : parseKohyaCaption(content) };
  }
  return null;
}

/** The Kohya caption beside a picture: `frame.png` -> `frame.txt`. */
export function captionPathOf(image: string): string {
  return path.join(path.dirname(image), `${path.parse(image).name}.txt`);
}

export function parseKohyaCaption(text: string): string[] {
  return text.split(',').map((tag) => tag.trim()).filter(Boolean);
}

export function parseHydrusSidecar(text: string): string[] {
  return text.split(/\r?\n/).map((tag) => tag.trim()).filter(Boolean);
}
