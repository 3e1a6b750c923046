/**
 * Pictures turned into the arrays face detectors and taggers read (sharp):
 * - WD14 taggers: padded to a square with white, resized to the model's size
 *   (bicubic), BGR, NHWC float32 in 0..255, as SmilingWolf's reference scripts;
 * - YOLO: letterboxed into the square input (aspect kept, grey 114 padding,
 *   as ultralytics), RGB, NCHW float32 in 0..1;
 * - the LBP cascade: grey, the long side brought down to at most `maxSide`.
 * Each result is plain typed arrays, so it can cross from a worker thread.
 */
import sharp from 'sharp';

export interface Letterbox {
  input: Float32Array;
  /** Picture pixels to input pixels. */
  scale: number;
  padX: number;
  padY: number;
  /** The picture's own size. */
  width: number;
  height: number;
}

export interface GreyPicture {
  data: Uint8Array;
  width: number;
  height: number;
  /** Picture pixels per grey pixel (1 when not shrunk). */
  scale: number;
}

export async function wd14Tensor(image: string | Buffer, size: number): Promise<Float32Array> {
  const source = sharp(image).flatten({ background: '#ffffff' }).removeAlpha();
  const { width = 0, height = 0 } = await source.metadata();
  const side = Math.max(width, height);
  const padded = await source
    .extend({
      left: Math.floor((side - width) / 2), right: Math.ceil((side - width) / 2),
      top: Math.floor((side - height) / 2), bottom: Math.ceil((side - height) / 2),
      background: '#ffffff',
    })
    .toBuffer();
  const rgb = await sharp(padded).resize(size, size, { kernel: 'cubic' }).removeAlpha().raw().toBuffer();
  const input = new Float32Array(size * size * 3);
  for (let pixel = 0; pixel < size * size; pixel += 1) {
    input[pixel * 3] = rgb[pixel * 3 + 2]!;
    input[pixel * 3 + 1] = rgb[pixel * 3 + 1]!;
    input[pixel * 3 + 2] = rgb[pixel * 3]!;
  }
  return input;
}

export async function letterboxTensor(image: string | Buffer, size: number): Promise<Letterbox> {
  const source = sharp(image).removeAlpha();
  const { width = 0, height = 0 } = await source.metadata();
  const scale = Math.min(size / width, size / height);
  const resizedWidth = Math.round(width * scale);
  const resizedHeight = Math.round(height * scale);
  const padX = Math.floor((size - resizedWidth) / 2);
  const padY = Math.floor((size - resizedHeight) / 2);
  const rgb = await source
    .resize(resizedWidth, resizedHeight, { kernel: 'linear' })
    .extend({ left: padX, right: size - resizedWidth - padX, top: padY, bottom: size - resizedHeight - padY, background: { r: 114, g: 114, b: 114 } })
    .raw()
    .toBuffer();
  const plane = size * size;
  const input = new Float32Array(3 * plane);
  for (let pixel = 0; pixel < plane; pixel += 1) {
    input[pixel] = rgb[pixel * 3]! / 255;
    input[plane + pixel] = rgb[pixel * 3 + 1]! / 255;
    input[2 * plane + pixel] = rgb[pixel * 3 + 2]! / 255;
  }
  return { input, scale, padX, padY, width, height };
}

export async function greyPicture(image: string | Buffer, maxSide: number): Promise<GreyPicture> {
  const { width = 0, height = 0 } = await sharp(image).metadata();
  const scale = Math.max(1, Math.max(width, height) / maxSide);
  const w = Math.round(width / scale);
  const h = Math.round(height / scale);
  const data = await sharp(image).resize(w, h).greyscale().raw().toBuffer();
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: w, height: h, scale };
}
