/**
 * A picture packed into square detector inputs of S x S (RGB, NCHW float32
 * 0..1, grey 114 elsewhere, as ultralytics' letterbox): the whole picture
 * scaled to fit, in the top left corner, and zoomed views of places where a
 * small face may be ("cells", each a square of the picture brought to
 * `cell` x `cell` pixels) in the room the whole picture leaves (a 16:9
 * frame leaves the bottom 44%), then in further inputs of cells only.
 * Each region records where it lies in its input and which part of the
 * picture it shows, so a box found there maps back to picture pixels.
 */
import sharp from 'sharp';
import type { Rect } from './face-cascade.ts';

export interface MosaicRegion {
  /** Which input of the picture's list. */
  input: number;
  /** Where it lies in that input, in whole input pixels. */
  at: Rect;
  /** The part of the picture it shows, in whole picture pixels (inside the picture). */
  source: Rect;
}

export interface MosaicLayout {
  size: number;
  /** The picture's own size. */
  width: number;
  height: number;
  inputs: number;
  regions: MosaicRegion[];
}

export interface FaceMosaic extends MosaicLayout {
  /** One S x S input after another (3 * S * S floats each). */
  data: Float32Array;
}

export interface CellRequest {
  /** Centre of the view, in picture pixels. */
  x: number;
  y: number;
  /** Side of the square of the picture shown, in picture pixels. */
  side: number;
}

/**
 * Where everything goes: the whole picture first (region 0), then one cell
 * per request, in order, in the free room of input 0 and then in further
 * inputs. A cell's square is moved inside the picture where it would cross
 * an edge (and shrunk when the picture is smaller), so every pixel of an
 * input comes from the picture or the grey.
 */
export function layoutMosaic(width: number, height: number, size: number, cell: number, requests: readonly CellRequest[]): MosaicLayout {
  const scale = Math.min(size / width, size / height);
  const whole = { x: 0, y: 0, width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
  const regions: MosaicRegion[] = [{ input: 0, at: whole, source: { x: 0, y: 0, width, height } }];
  const free = freeSpots(whole, size, cell);
  const perInput = Math.floor(size / cell) ** 2;
  let inputs = 1;
  requests.forEach((request, index) => {
    let spot: { input: number; x: number; y: number };
    if (index < free.length) spot = { input: 0, ...free[index]! };
    else {
      const extra = index - free.length;
      const input = 1 + Math.floor(extra / perInput);
      const slot = extra % perInput;
      const across = Math.floor(size / cell);
      spot = { input, x: (slot % across) * cell, y: Math.floor(slot / across) * cell };
      inputs = Math.max(inputs, input + 1);
    }
    const side = Math.max(1, Math.min(Math.round(request.side), width, height));
    const source = {
      x: Math.min(width - side, Math.max(0, Math.round(request.x - side / 2))),
      y: Math.min(height - side, Math.max(0, Math.round(request.y - side / 2))),
      width: side,
      height: side,
    };
    regions.push({ input: spot.input, at: { x: spot.x, y: spot.y, width: cell, height: cell }, source });
  });
  return { size, width, height, inputs, regions };
}

/** Top-left corners of whole cells in the room the picture leaves, row by row. */
function freeSpots(whole: Rect, size: number, cell: number): { x: number; y: number }[] {
  const spots: { x: number; y: number }[] = [];
  const below = whole.height;
  for (let y = below; y + cell <= size; y += cell) for (let x = 0; x + cell <= size; x += cell) spots.push({ x, y });
  const right = whole.width;
  for (let y = 0; y + cell <= below; y += cell) for (let x = right; x + cell <= size; x += cell) spots.push({ x, y });
  return spots;
}

/** The inputs of a layout, from the picture's RGB pixels (width x height x 3). */
export async function fillMosaic(rgb: Buffer, layout: MosaicLayout): Promise<FaceMosaic> {
  const { size } = layout;
  const plane = size * size;
  const data = new Float32Array(layout.inputs * 3 * plane).fill(114 / 255);
  for (const region of layout.regions) {
    const pixels = await sharp(rgb, { raw: { width: layout.width, height: layout.height, channels: 3 } })
      .extract({ left: region.source.x, top: region.source.y, width: region.source.width, height: region.source.height })
      .resize(region.at.width, region.at.height, { fit: 'fill', kernel: 'linear' })
      .raw()
      .toBuffer();
    const base = region.input * 3 * plane;
    for (let row = 0; row < region.at.height; row += 1) {
      let target = base + (region.at.y + row) * size + region.at.x;
      let from = row * region.at.width * 3;
      for (let column = 0; column < region.at.width; column += 1, target += 1, from += 3) {
        data[target] = pixels[from]! / 255;
        data[target + plane] = pixels[from + 1]! / 255;
        data[target + 2 * plane] = pixels[from + 2]! / 255;
      }
    }
  }
  return { ...layout, data };
}

/** A box in input pixels of `input`, in picture pixels: through the region holding its centre, or null when none does. */
export function boxToPicture(layout: MosaicLayout, input: number, box: Rect): Rect | null {
  const cx = box.x + box.width / 2;
  const cy = box.y + box.height / 2;
  const region = layout.regions.find(({ input: i, at }) => i === input && cx >= at.x && cx < at.x + at.width && cy >= at.y && cy < at.y + at.height);
  if (!region) return null;
  const { at, source } = region;
  const sx = source.width / at.width;
  const sy = source.height / at.height;
  // Clipped to the region, so a box cannot reach into a neighbouring cell's content or the padding.
  const x1 = source.x + (Math.max(box.x, at.x) - at.x) * sx;
  const y1 = source.y + (Math.max(box.y, at.y) - at.y) * sy;
  const x2 = source.x + (Math.min(box.x + box.width, at.x + at.width) - at.x) * sx;
  const y2 = source.y + (Math.min(box.y + box.height, at.y + at.height) - at.y) * sy;
  return x2 > x1 && y2 > y1 ? { x: x1, y: y1, width: x2 - x1, height: y2 - y1 } : null;
}
