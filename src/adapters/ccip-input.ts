/**
 * A crop as DeepGHS CCIP's feature model reads it (imgutils' `_preprocess_image`,
 * deepghs/imgutils@525c042e imgutils/metrics/ccip.py:56-67): transparency on
 * white (`load_images(images, mode='RGB')`, whose `force_background` is
 * 'white', imgutils@146f940d imgutils/data/image.py `load_image`), resized to
 * size x size whatever its aspect (no padding, ccip.py:62), channels RGB,
 * /255 (ccip.py:64), then (x - mean) / std per channel (ccip.py:56-58), NCHW
 * float32.
 *
 * The resize: ccip.py:62 is PIL's `Image.resize(..., resample=Image.BILINEAR)`:
 * per axis, horizontal first, each pass rounded back to 8 bits, a triangle
 * filter centred at (i + 0.5) * in/out whose support widens with the
 * reduction (Pillow src/libImaging/Resample.c `precompute_coeffs`:
 * support = 1.0 * max(1, in/out), `ImagingResampleHorizontal_8bpc` then
 * `ImagingResampleVertical_8bpc`). sharp does the same axis by axis: a
 * reduction with `kernel: 'linear'` (libvips' reduce widens its triangle
 * the same way); an enlargement as an affine map with the bilinear
 * interpolator, pixel centres aligned and the edge pixels repeated (libvips'
 * resize enlarges with corners aligned instead, 3 levels off on average).
 * test/stages/ccip.test.ts holds the result against a reimplementation of
 * Pillow's resampler.
 */
import sharp from 'sharp';

// ccip.py:56, the CLIP normalisation constants.
export const CCIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const CCIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

export async function ccipTensor(image: string | Buffer, size: number): Promise<Float32Array> {
  const decoded = await sharp(image).flatten({ background: '#ffffff' }).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  if (decoded.info.channels !== 3) throw new Error(`expected 3 channels after conversion to RGB, got ${decoded.info.channels}`);
  let picture: RawPicture = { data: decoded.data, width: decoded.info.width, height: decoded.info.height };
  picture = await resizeAxis(picture, size, 'horizontal');
  picture = await resizeAxis(picture, size, 'vertical');
  const rgb = picture.data;
  const plane = size * size;
  const input = new Float32Array(3 * plane);
  for (let channel = 0; channel < 3; channel += 1) {
    const mean = CCIP_MEAN[channel]!;
    const std = CCIP_STD[channel]!;
    const offset = channel * plane;
    for (let pixel = 0; pixel < plane; pixel += 1) input[offset + pixel] = (rgb[pixel * 3 + channel]! / 255 - mean) / std;
  }
  return input;
}

interface RawPicture {
  data: Buffer;
  width: number;
  height: number;
}

/** One axis of PIL's bilinear resize, to `target` pixels, the other axis untouched. */
async function resizeAxis(picture: RawPicture, target: number, axis: 'horizontal' | 'vertical'): Promise<RawPicture> {
  const across = axis === 'horizontal';
  const from = across ? picture.width : picture.height;
  if (from === target) return picture;
  const raw = { raw: { width: picture.width, height: picture.height, channels: 3 as const } };
  const width = across ? target : picture.width;
  const height = across ? picture.height : target;
  if (from > target) {
    const data = await sharp(picture.data, raw).resize(width, height, { fit: 'fill', kernel: 'linear' }).raw().toBuffer();
    return { data, width, height };
  }
  // Output pixel X samples input (X + 0.5) * from / target - 0.5; the padding repeats the edge as Pillow's clipped, renormalised filter does.
  const scale = target / from;
  const padded = await sharp(picture.data, raw)
    .extend(across ? { left: 1, right: 1, extendWith: 'copy' } : { top: 1, bottom: 1, extendWith: 'copy' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  const mapped = await sharp(padded.data, { raw: { width: padded.info.width, height: padded.info.height, channels: 3 } })
    .affine(across ? [[scale, 0], [0, 1]] : [[1, 0], [0, scale]], {
      interpolator: 'bilinear',
      idx: across ? -0.5 : 0, idy: across ? 0 : -0.5, odx: across ? -0.5 : 0, ody: across ? 0 : -0.5,
    })
    .raw()
    .toBuffer({ resolveWithObject: true });
  const data = await sharp(mapped.data, { raw: { width: mapped.info.width, height: mapped.info.height, channels: 3 } })
    .extract({ left: 0, top: 0, width, height })
    .raw()
    .toBuffer();
  return { data, width, height };
}
