/**
 * A crop as DeepGHS CCIP's feature model reads it (imgutils' `_preprocess_image`,
 * deepghs/imgutils@525c042e imgutils/metrics/ccip.py:56-67): transparency on
 * white (`load_images(images, mode='RGB')`, whose `force_background` is
 * 'white', imgutils@146f940d imgutils/data/image.py `load_image`), resized to
 * size x size whatever its aspect (no padding, ccip.py:62), channels RGB,
 * /255 (ccip.py:64), then (x - mean) / std per channel (ccip.py:56-58), NCHW
 * float32.
 *
 * The resize: ccip.py:62 is PIL's `Image.resize(..., resample=Image.BILINEAR)`,
 * a triangle filter whose support grows with the reduction (Pillow
 * src/libImaging/Resample.c `precompute_coeffs`: support = 1.0 * max(1, scale)),
 * i.e. an antialiased bilinear. sharp's `kernel: 'linear'` with `fit: 'fill'` is
 * libvips' reduce with the same triangle, also widened by the reduction;
 * test/stages/ccip.test.ts holds it against a reimplementation of Pillow's
 * resampler.
 */
import sharp from 'sharp';

// ccip.py:56, the CLIP normalisation constants.
export const CCIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const CCIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

export async function ccipTensor(image: string | Buffer, size: number): Promise<Float32Array> {
  const rgb = await sharp(image)
    .flatten({ background: '#ffffff' })
    .removeAlpha()
    .toColourspace('srgb')
    .resize(size, size, { fit: 'fill', kernel: 'linear' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (rgb.info.channels !== 3) throw new Error(`expected 3 channels after conversion to RGB, got ${rgb.info.channels}`);
  const plane = size * size;
  const input = new Float32Array(3 * plane);
  for (let channel = 0; channel < 3; channel += 1) {
    const mean = CCIP_MEAN[channel]!;
    const std = CCIP_STD[channel]!;
    const offset = channel * plane;
    for (let pixel = 0; pixel < plane; pixel += 1) input[offset + pixel] = (rgb.data[pixel * 3 + channel]! / 255 - mean) / std;
  }
  return input;
}
