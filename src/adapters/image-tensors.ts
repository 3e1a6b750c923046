/**
 * Pictures turned into the arrays face detectors and taggers read (sharp):
 * - WD14 taggers: padded to a square with white, resized to the model's size
 *   (bicubic), BGR, NHWC float32 in 0..255, as SmilingWolf's reference scripts;
 * - YOLO: on white where transparent, letterboxed (aspect kept, grey 114
 *   padding, as ultralytics) or stretched (as imgutils) to the input size,
 *   RGB, NCHW float32 in 0..1;
 * - the LBP cascade: grey, the long side brought down to at most `maxSide`.
 * Each result is plain typed arrays, so it can cross from a worker thread.
 */
import sharp from 'sharp';

/** How a picture is brought to a YOLO detector's input size. */
export type YoloResize = 'letterbox' | 'stretch';

export interface YoloInput {
  input: Float32Array;
  /** Input pixels per picture pixel, across and down (the same when letterboxed). */
  scaleX: number;
  scaleY: number;
  /** Padding before the picture in the input (0 when stretched). */
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

/**
 * The picture as a YOLO input of `inputWidth` x `inputHeight`, transparency
 * on white first (as imgutils' load_image, `force_background='white'`, and
 * as the WD14 input):
 * - `letterbox`: aspect kept, centred, grey 114 padding, bilinear, as
 *   ultralytics' `LetterBox` (ultralytics/data/augment.py);
 * - `stretch`: resized to the input size whatever the aspect, bicubic, as
 *   imgutils' `_image_preprocess` without `allow_dynamic` (PIL's default
 *   resample is bicubic).
 */
export async function yoloTensor(image: string | Buffer, inputWidth: number, inputHeight: number, resize: YoloResize): Promise<YoloInput> {
  const source = sharp(image).flatten({ background: '#ffffff' }).removeAlpha();
  const { width = 0, height = 0 } = await source.metadata();
  let rgb: Buffer;
  let geometry: Omit<YoloInput, 'input' | 'width' | 'height'>;
  if (resize === 'stretch') {
    rgb = await source.resize(inputWidth, inputHeight, { fit: 'fill', kernel: 'cubic' }).raw().toBuffer();
    geometry = { scaleX: inputWidth / width, scaleY: inputHeight / height, padX: 0, padY: 0 };
  } else {
    const scale = Math.min(inputWidth / width, inputHeight / height);
    const resizedWidth = Math.max(1, Math.round(width * scale));
    const resizedHeight = Math.max(1, Math.round(height * scale));
    const padX = Math.floor((inputWidth - resizedWidth) / 2);
    const padY = Math.floor((inputHeight - resizedHeight) / 2);
    rgb = await source
      .resize(resizedWidth, resizedHeight, { fit: 'fill', kernel: 'linear' })
      .extend({ left: padX, right: inputWidth - resizedWidth - padX, top: padY, bottom: inputHeight - resizedHeight - padY, background: { r: 114, g: 114, b: 114 } })
      .raw()
      .toBuffer();
    geometry = { scaleX: scale, scaleY: scale, padX, padY };
  }
  const plane = inputWidth * inputHeight;
  const input = new Float32Array(3 * plane);
  for (let pixel = 0; pixel < plane; pixel += 1) {
    input[pixel] = rgb[pixel * 3]! / 255;
    input[plane + pixel] = rgb[pixel * 3 + 1]! / 255;
    input[2 * plane + pixel] = rgb[pixel * 3 + 2]! / 255;
  }
  return { input, ...geometry, width, height };
}

export async function greyPicture(image: string | Buffer, maxSide: number): Promise<GreyPicture> {
  const { width = 0, height = 0 } = await sharp(image).metadata();
  const scale = Math.max(1, Math.max(width, height) / maxSide);
  const w = Math.round(width / scale);
  const h = Math.round(height / scale);
  const data = await sharp(image).resize(w, h).greyscale().raw().toBuffer();
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: w, height: h, scale };
}
