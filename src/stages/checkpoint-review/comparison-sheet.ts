/**
 * The comparison sheet of the checkpoint review: one PNG with a row per
 * template and seed and a column per version, each cell the stored render
 * scaled into a fixed square, with the versions as column headers and
 * template and seed as row labels. A render that is not stored (or was
 * made with other parameters) is an empty cell saying so.
 *
 * API: `writeComparisonSheet(dir, versions, jobs, options)` -> the sheet's
 * path, `<dir>/reviews/<last version>/sheet.png`; `SHEET_LAYOUT` for where
 * the cells are.
 */
import path from 'node:path';
import sharp, { type OverlayOptions } from 'sharp';
import { replaceFileDurably } from '../../adapters/durable-file.ts';
import { CelforgeError } from '../../errors.ts';
import { reviewFolder, storedRender } from './review-store.ts';
import type { RenderJob } from './templates.ts';

export const SHEET_LAYOUT = { labelWidth: 220, headerHeight: 32, cellSize: 256 } as const;

const BACKGROUND = { r: 24, g: 24, b: 24 };
const EMPTY_CELL = 'rgb(56,56,56)';

export interface SheetOptions {
  /** The side of a cell's square, in pixels. */
  cellSize?: number;
}

/** Cell (row, column)'s top-left corner on the sheet. */
export function cellOrigin(row: number, column: number, cellSize: number = SHEET_LAYOUT.cellSize): { left: number; top: number } {
  return { left: SHEET_LAYOUT.labelWidth + column * cellSize, top: SHEET_LAYOUT.headerHeight + row * cellSize };
}

export async function writeComparisonSheet(dir: string, versions: string[], jobs: RenderJob[], options: SheetOptions = {}): Promise<string> {
  const cell = options.cellSize ?? SHEET_LAYOUT.cellSize;
  const newest = versions.at(-1);
  if (newest === undefined || jobs.length === 0) {
    throw new CelforgeError('INTERNAL', `checkpoint review: a comparison sheet needs at least one version and one template (got ${versions.length} versions, ${jobs.length} renders)`);
  }
  const width = SHEET_LAYOUT.labelWidth + versions.length * cell;
  const height = SHEET_LAYOUT.headerHeight + jobs.length * cell;
  const pictures: OverlayOptions[] = [];
  const texts: string[] = [];
  const label = (x: number, y: number, text: string, anchor: 'start' | 'middle' = 'start') =>
    texts.push(`<text x="${x}" y="${y}" text-anchor="${anchor}" font-family="sans-serif" font-size="14" fill="rgb(230,230,230)">${escapeXml(clip(text, 26))}</text>`);

  versions.forEach((version, column) => label(cellOrigin(0, column, cell).left + cell / 2, 21, version, 'middle'));
  for (const [row, job] of jobs.entries()) {
    const top = cellOrigin(row, 0, cell).top;
    label(8, top + 22, job.template);
    label(8, top + 42, `seed ${job.parameters.seed}`);
    for (const [column, version] of versions.entries()) {
      const { left } = cellOrigin(row, column, cell);
      const stored = await storedRender(dir, version, job);
      if (stored) {
        // One pixel of the background around each picture keeps neighbouring cells apart.
        const input = await sharp(stored.png).resize(cell - 2, cell - 2, { fit: 'contain', background: BACKGROUND }).png().toBuffer();
        pictures.push({ input, left: left + 1, top: top + 1 });
      } else {
        texts.push(`<rect x="${left + 1}" y="${top + 1}" width="${cell - 2}" height="${cell - 2}" fill="${EMPTY_CELL}"/>`);
        label(left + cell / 2, top + cell / 2, `${version}: not rendered`, 'middle');
      }
    }
  }
  const overlay = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${texts.join('')}</svg>`;
  const sheet = await sharp({ create: { width, height, channels: 3, background: BACKGROUND } })
    .composite([...pictures, { input: Buffer.from(overlay), left: 0, top: 0 }])
    .png()
    .toBuffer();
  const file = path.join(reviewFolder(dir, newest), 'sheet.png');
  await replaceFileDurably(file, sheet);
  return file;
}

function clip(text: string, length: number): string {
  return text.length <= length ? text : `${text.slice(0, length - 1)}…`;
}

function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[char]!);
}
