/**
 * The CCIP model on real ONNX Runtime sessions of generated models with the
 * CCIP contract (test/fixtures/ccip-models.ts): preprocessing held against a
 * reimplementation of Pillow's bilinear resize (what imgutils calls), the
 * tensors' names, shapes and layout, batching, blocked difference matrices,
 * errors, and drawn characters clustered into the right identities.
 */
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import sharp from 'sharp';
import { CCIP_MEAN, CCIP_STD, ccipTensor } from '../../src/adapters/ccip-input.ts';
import { CelforgeError } from '../../src/errors.ts';
import { loadCcipModel, type CcipOptions } from '../../src/inference/ccip.ts';
import { adjustedRandIndex, clusterDifferences, defaultClusterParams } from '../../src/stages/characters/clustering.ts';
import { CHARACTERS, characterCrop, expectedDifference, expectedFeatures, identityFeatures, writeCcipModels } from '../fixtures/ccip-models.ts';
import { tempDir } from '../helpers.ts';

const OPTIONS: CcipOptions = { providers: ['cpu'], batchSize: 4, log: pino({ level: 'silent' }) };

/**
 * Pillow's resize with Image.BILINEAR (src/libImaging/Resample.c): per axis,
 * a triangle filter whose support is max(1, in/out), centred at
 * (i + 0.5) * in/out, weights normalised, then in 22-bit fixed point with
 * rounding; the horizontal pass first, each pass back to 8 bits.
 */
function pillowBilinear(rgb: Uint8Array, width: number, height: number, outWidth: number, outHeight: number): Uint8Array {
  const PRECISION = 22;
  const coefficients = (inSize: number, outSize: number) => {
    const scale = inSize / outSize;
    const filterScale = Math.max(1, scale);
    const support = filterScale;
    return Array.from({ length: outSize }, (_, out) => {
      const centre = (out + 0.5) * scale;
      const xmin = Math.max(0, Math.trunc(centre - support + 0.5));
      const xmax = Math.min(inSize, Math.trunc(centre + support + 0.5)) - xmin;
      const weights: number[] = [];
      let total = 0;
      for (let x = 0; x < xmax; x += 1) {
        const distance = Math.abs((x + xmin - centre + 0.5) / filterScale);
        const w = distance < 1 ? 1 - distance : 0;
        weights.push(w);
        total += w;
      }
      return { xmin, weights: weights.map((w) => Math.trunc(0.5 + (total ? w / total : w) * (1 << PRECISION))) };
    });
  };
  const clip8 = (sum: number) => Math.min(255, Math.max(0, Math.floor(sum / (1 << PRECISION))));
  const horizontal = coefficients(width, outWidth);
  const temp = new Uint8Array(outWidth * height * 3);
  for (let y = 0; y < height; y += 1) {
    horizontal.forEach(({ xmin, weights }, x) => {
      for (let c = 0; c < 3; c += 1) {
        let sum = 1 << (PRECISION - 1);
        weights.forEach((k, i) => (sum += rgb[(y * width + xmin + i) * 3 + c]! * k));
        temp[(y * outWidth + x) * 3 + c] = clip8(sum);
      }
    });
  }
  const vertical = coefficients(height, outHeight);
  const out = new Uint8Array(outWidth * outHeight * 3);
  vertical.forEach(({ xmin: ymin, weights }, y) => {
    for (let x = 0; x < outWidth; x += 1) {
      for (let c = 0; c < 3; c += 1) {
        let sum = 1 << (PRECISION - 1);
        weights.forEach((k, i) => (sum += temp[((ymin + i) * outWidth + x) * 3 + c]! * k));
        out[(y * outWidth + x) * 3 + c] = clip8(sum);
      }
    }
  });
  return out;
}

/** imgutils' _preprocess_image computed here: Pillow's bilinear resize, /255, CLIP mean and std, NCHW. */
async function referenceTensor(file: string, size: number): Promise<Float32Array> {
  const { data, info } = await sharp(file).flatten({ background: '#ffffff' }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const resized = pillowBilinear(new Uint8Array(data), info.width, info.height, size, size);
  const plane = size * size;
  const tensor = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c += 1) for (let p = 0; p < plane; p += 1) tensor[c * plane + p] = (resized[p * 3 + c]! / 255 - CCIP_MEAN[c]!) / CCIP_STD[c]!;
  return tensor;
}

async function writeCrops(dir: string, count: number, sides: number[]): Promise<string[]> {
  return Promise.all(Array.from({ length: count }, async (_, i) => {
    const file = path.join(dir, `crop-${i}.png`);
    writeFileSync(file, await characterCrop(CHARACTERS[i % CHARACTERS.length]!, 500 + i, sides[i % sides.length]));
    return file;
  }));
}

test('preprocessing matches imgutils (Pillow bilinear to 384, no padding, /255, CLIP mean/std, NCHW) on down- and upscaled crops', async (t) => {
  const dir = tempDir(t);
  // Reduced 1.3x to 3.5x, enlarged, and reduced across while enlarged down; none of them square.
  const crops = [[500, 560], [1340, 1200], [200, 150], [500, 200]] as const;
  for (const [index, [width, height]] of crops.entries()) {
    const file = path.join(dir, `c${index}.png`);
    await sharp(await characterCrop(CHARACTERS[index]!, index, 300)).resize(width, height, { fit: 'fill' }).png().toFile(file);
    const ours = await ccipTensor(file, 384);
    const reference = await referenceTensor(file, 384);
    assert.equal(ours.length, 3 * 384 * 384);
    let worst = 0;
    let total = 0;
    for (let i = 0; i < ours.length; i += 1) {
      const levels = Math.abs(ours[i]! - reference[i]!) * CCIP_STD[Math.floor(i / (384 * 384))]! * 255;
      worst = Math.max(worst, levels);
      total += levels;
    }
    // In 8-bit levels: libvips and Pillow round differently (measured: mean 0.001-0.26, at most 4 where libvips
    // shrinks by 2 before a 3.5x reduction); libvips' own enlargement, corners aligned, is 3.4 on average.
    assert.ok(total / ours.length < 0.35, `${width}x${height}: mean difference ${(total / ours.length).toFixed(3)} levels`);
    assert.ok(worst <= 4.01, `${width}x${height}: largest difference ${worst.toFixed(2)} levels`);
  }
  // Transparency goes on white, as imgutils' load_image (force_background='white').
  const clear = path.join(dir, 'clear.png');
  const white = path.join(dir, 'white.png');
  await sharp({ create: { width: 64, height: 80, channels: 4, background: { r: 10, g: 20, b: 30, alpha: 0 } } }).png().toFile(clear);
  await sharp({ create: { width: 64, height: 80, channels: 3, background: '#ffffff' } }).png().toFile(white);
  assert.deepEqual(await ccipTensor(clear, 384), await ccipTensor(white, 384));
  assert.ok(Math.abs((await ccipTensor(white, 384))[0]! - (1 - CCIP_MEAN[0]) / CCIP_STD[0]) < 1e-6, 'white is (1 - mean) / std');
});

test('features through a real session: input [N,3,384,384] float32 named input, output [N,768]; batches of 1 and of many agree', async (t) => {
  const dir = tempDir(t);
  const modelDir = writeCcipModels(path.join(dir, 'ccip-caformer-24-randaug-pruned'));
  const files = await writeCrops(dir, 6, [160, 300, 420]);
  const one = await loadCcipModel(modelDir, { ...OPTIONS, batchSize: 1 });
  t.after(() => one.close());
  const many = await loadCcipModel(modelDir, { ...OPTIONS, batchSize: 4 });
  t.after(() => many.close());
  assert.equal(many.id, 'ccip-caformer-24-randaug-pruned');
  assert.equal(many.threshold, 0.178);
  assert.equal(many.featureSize, 768);
  const single = await one.features(files);
  const batched = await many.features(files);
  assert.equal(batched.length, 6);
  for (let i = 0; i < files.length; i += 1) {
    assert.equal(batched[i]!.length, 768);
    const expected = expectedFeatures(await ccipTensor(files[i]!, 384), 384);
    for (let k = 0; k < 768; k += 1) {
      assert.ok(Math.abs(single[i]![k]! - batched[i]![k]!) < 1e-5, `crop ${i} value ${k}: batch of 1 vs 4`);
      assert.ok(Math.abs(batched[i]![k]! - expected[k]!) < 1e-3 * (1 + Math.abs(expected[k]!)), `crop ${i} value ${k}: ${batched[i]![k]} vs ${expected[k]} (layout or normalisation)`);
    }
  }
  assert.deepEqual(await many.features([]), []);
  // A metrics model that leaves its width free: the feature model's declared output says 768.
  const free = await loadCcipModel(writeCcipModels(path.join(dir, 'free-width'), { size: 16, freeWidth: true }), OPTIONS);
  t.after(() => free.close());
  assert.equal(free.featureSize, 768);
});

test('differences: blocks agree with one run, cross blocks are the sub-matrix, values as the metrics model defines them', async (t) => {
  const dir = tempDir(t);
  const modelDir = writeCcipModels(path.join(dir, 'ccip'), { size: 16 });
  const whole = await loadCcipModel(modelDir, { ...OPTIONS, blockSize: 1000 });
  t.after(() => whole.close());
  const blocked = await loadCcipModel(modelDir, { ...OPTIONS, blockSize: 3 });
  t.after(() => blocked.close());
  const { features } = identityFeatures({ identities: 3, perIdentity: 4, strays: 1, seed: 5 });
  const n = features.length;
  const a = await whole.differences(features);
  const b = await blocked.differences(features);
  assert.equal(a.length, n * n);
  for (let i = 0; i < n; i += 1) {
    for (let j = 0; j < n; j += 1) {
      assert.ok(Math.abs(a[i * n + j]! - b[i * n + j]!) < 1e-6, `(${i}, ${j}) blocked`);
      assert.ok(Math.abs(a[i * n + j]! - expectedDifference(features[i]!, features[j]!)) < 1e-5, `(${i}, ${j}) value`);
    }
  }
  const rows = features.slice(2, 9);
  const columns = features.slice(5);
  const cross = await blocked.crossDifferences(rows, columns);
  assert.equal(cross.length, rows.length * columns.length);
  for (let i = 0; i < rows.length; i += 1) {
    for (let j = 0; j < columns.length; j += 1) assert.ok(Math.abs(cross[i * columns.length + j]! - a[(i + 2) * n + j + 5]!) < 1e-6, `cross (${i}, ${j})`);
  }
  assert.equal((await whole.differences([])).length, 0);
  await assert.rejects(whole.differences([...features.slice(0, 2), new Float32Array(512)]), (error: unknown) => {
    assert.ok(error instanceof CelforgeError);
    assert.match(error.message, /feature 2 has 512 values, but model_metrics\.onnx reads 768/);
    return true;
  });
});

test('a missing or unreadable model file is an error naming it', async (t) => {
  const dir = tempDir(t);
  for (const name of ['model_feat.onnx', 'model_metrics.onnx', 'metrics.json']) {
    const modelDir = writeCcipModels(path.join(dir, `without-${name}`), { size: 16 });
    rmSync(path.join(modelDir, name));
    await assert.rejects(loadCcipModel(modelDir, OPTIONS), (error: unknown) => {
      assert.ok(error instanceof CelforgeError);
      assert.equal(error.code, 'FILE_NOT_FOUND');
      assert.equal(error.file, path.join(modelDir, name));
      assert.match(error.message, /celforge models fetch/);
      return true;
    }, name);
  }
  const badJson = writeCcipModels(path.join(dir, 'bad-json'), { size: 16 });
  writeFileSync(path.join(badJson, 'metrics.json'), JSON.stringify({ thresh: 0.2 }));
  await assert.rejects(loadCcipModel(badJson, OPTIONS), /metrics\.json: "threshold" must be a positive number/);
  const wrongShape = writeCcipModels(path.join(dir, 'wrong-size'), { size: 16, featureSize: 32 });
  const features = writeCcipModels(path.join(dir, 'right-size'), { size: 16 });
  writeFileSync(path.join(wrongShape, 'model_metrics.onnx'), Buffer.from('not a model'));
  await assert.rejects(loadCcipModel(wrongShape, OPTIONS), (error: unknown) => error instanceof CelforgeError && error.file === path.join(wrongShape, 'model_metrics.onnx'));
  // A feature model whose output does not fit the metrics model's input.
  const mixed = writeCcipModels(path.join(dir, 'mixed'), { size: 16, featureSize: 32 });
  writeFileSync(path.join(mixed, 'model_metrics.onnx'), await import('node:fs').then((fs) => fs.readFileSync(path.join(features, 'model_metrics.onnx'))));
  const model = await loadCcipModel(mixed, OPTIONS);
  t.after(() => model.close());
  await assert.rejects(model.features(await writeCrops(dir, 1, [64])), /gives features of shape \[1,32\] for 1 crops, but model_metrics\.onnx reads 768 values each/);
  const broken = path.join(dir, 'broken.png');
  writeFileSync(broken, 'not a picture');
  await assert.rejects(model.features([broken]), (error: unknown) => error instanceof CelforgeError && error.code === 'IMAGE_UNREADABLE' && error.file === broken);
});

test('drawn characters: features, differences and clustering put each character in its own cluster', async (t) => {
  const dir = tempDir(t);
  const model = await loadCcipModel(writeCcipModels(path.join(dir, 'ccip')), { ...OPTIONS, batchSize: 8 });
  t.after(() => model.close());
  const files = await writeCrops(dir, CHARACTERS.length * 6, [140, 220, 330, 470, 180, 260, 400]);
  const truth = files.map((_, i) => i % CHARACTERS.length);
  const d = await model.differences(await model.features(files));
  for (const method of ['dbscan', 'optics'] as const) {
    const labels = clusterDifferences(d, files.length, defaultClusterParams(method, model.threshold));
    assert.equal(adjustedRandIndex(truth, labels), 1, `${method}: ${[...labels]}`);
  }
});
