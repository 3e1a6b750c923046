/**
 * Decoded frames paired with their dedup features, in decode order.
 */
import { computeFeatures, type FrameFeatures } from './features.ts';

export interface FrameWithFeatures {
  rgb: Buffer;
  features: FrameFeatures;
}

export async function* framesWithFeatures(frames: AsyncIterable<Buffer>, width: number, height: number): AsyncIterable<FrameWithFeatures> {
  for await (const rgb of frames) yield { rgb, features: computeFeatures(rgb, width, height) };
}
