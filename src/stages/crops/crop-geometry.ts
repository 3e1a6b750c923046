/**
 * Where a crop lies in its frame, from a face box: `face`, a square close-up
 * (the face plus a margin on every side), and `upper_body`, head and
 * shoulders down to about the waist. Rectangles are whole frame pixels inside
 * the frame; a crop smaller than the minimum is null (crops are never scaled
 * up). Pure arithmetic: `cropRect(kind, box, frame, options)`.
 */
import type { CropKind, PixelBox } from '../../adapters/crops-file.ts';

export interface CropGeometry {
  /** Added on every side of a face close-up, as a share of the face box's larger side. */
  faceMargin: number;
  /** The upper-body crop in face sizes (the face box's larger side): its width, its height, and how far its top lies above the box. */
  upperBody: { width: number; height: number; above: number };
  /** The shorter side a crop must have, in frame pixels. */
  minSize: number;
}

export interface FrameSize {
  width: number;
  height: number;
}

export interface FaceBoxLike {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** The crop's rectangle [x, y, width, height] in frame pixels, or null when the box is empty, outside the frame, or the crop too small. */
export function cropRect(kind: CropKind, box: FaceBoxLike, frame: FrameSize, geometry: CropGeometry): PixelBox | null {
  if (!(box.width > 0 && box.height > 0) || !overlapsFrame(box, frame)) return null;
  const rect = kind === 'face' ? faceRect(box, frame, geometry.faceMargin) : upperBodyRect(box, frame, geometry.upperBody);
  if (rect === null || Math.min(rect[2], rect[3]) < geometry.minSize) return null;
  return rect;
}

/**
 * A square centred on the face, moved (not cut) to lie inside the frame, so
 * a face at the frame's edge still gets a square close-up of the same size;
 * only a square larger than the frame's shorter side is made smaller.
 */
function faceRect(box: FaceBoxLike, frame: FrameSize, margin: number): PixelBox | null {
  const side = Math.min(Math.round(Math.max(box.width, box.height) * (1 + 2 * margin)), frame.width, frame.height);
  if (side <= 0) return null;
  const x = clamp(Math.round(box.x + box.width / 2 - side / 2), 0, frame.width - side);
  const y = clamp(Math.round(box.y + box.height / 2 - side / 2), 0, frame.height - side);
  return [x, y, side, side];
}

/** Centred on the face across, starting `above` face sizes over the box; cut at the frame's edges. */
function upperBodyRect(box: FaceBoxLike, frame: FrameSize, shape: CropGeometry['upperBody']): PixelBox | null {
  const face = Math.max(box.width, box.height);
  const left = box.x + box.width / 2 - (face * shape.width) / 2;
  const top = box.y - face * shape.above;
  return clip(left, top, face * shape.width, face * shape.height, frame);
}

function clip(left: number, top: number, width: number, height: number, frame: FrameSize): PixelBox | null {
  const x0 = clamp(Math.round(left), 0, frame.width);
  const y0 = clamp(Math.round(top), 0, frame.height);
  const x1 = clamp(Math.round(left + width), 0, frame.width);
  const y1 = clamp(Math.round(top + height), 0, frame.height);
  return x1 > x0 && y1 > y0 ? [x0, y0, x1 - x0, y1 - y0] : null;
}

function overlapsFrame(box: FaceBoxLike, frame: FrameSize): boolean {
  return box.x < frame.width && box.y < frame.height && box.x + box.width > 0 && box.y + box.height > 0;
}

function clamp(value: number, low: number, high: number): number {
  return Math.max(low, Math.min(high, value));
}
