import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CelforgeError } from '../../../src/errors.ts';
import { bucketReport, makeBucketResolutions, selectBucket, type BucketSettings } from '../../../src/stages/export/kohya-buckets.ts';

// Every expected value below was worked out by hand from Kohya's code
// (library/model_util.py make_bucket_resolutions, library/train_util.py
// BucketManager.select_bucket), not by running this implementation.
const sd15: BucketSettings = { resolution: [512, 512], minBucketReso: 256, maxBucketReso: 1024, bucketResoSteps: 64 };
const close = (actual: number, expected: number) => assert.ok(Math.abs(actual - expected) < 1e-12, `${actual} != ${expected}`);

test('512x512, min 256, max 1024, steps 64: the predefined buckets', () => {
  // max_area = 512*512 = 262144; square: int(sqrt(262144) // 64) * 64 = 8*64 = 512 -> (512, 512)
  // width w from 256 to 1024 by 64: height = min(1024, ((262144 // w) // 64) * 64), kept if >= 256
  //   256: 1024//64=16 -> 1024      320: 819//64=12 -> 768     384: 682//64=10 -> 640
  //   448: 585//64=9 -> 576         512: 512//64=8 -> 512      576: 455//64=7 -> 448
  //   640: 409//64=6 -> 384         704: 372//64=5 -> 320      768: 341//64=5 -> 320
  //   832: 315//64=4 -> 256         896: 292//64=4 -> 256      960: 273//64=4 -> 256
  //   1024: 256//64=4 -> 256
  // each added with its transpose, as a set, sorted as tuples
  assert.deepEqual(makeBucketResolutions(sd15), [
    [256, 832], [256, 896], [256, 960], [256, 1024], [320, 704], [320, 768], [384, 640], [448, 576], [512, 512],
    [576, 448], [640, 384], [704, 320], [768, 320], [832, 256], [896, 256], [960, 256], [1024, 256],
  ]);
});

test("512x768 (Kohya's own example in model_util's __main__): the predefined buckets", () => {
  // max_area = 393216; square: int(627.06 // 64) * 64 = 9*64 = 576
  //   256: 1536//64=24 -> 1536, capped 1024    320: 1228//64=19 -> 1216, capped 1024    384: 1024//64=16 -> 1024
  //   448: 877//64=13 -> 832    512: 768//64=12 -> 768    576: 682//64=10 -> 640    640: 614//64=9 -> 576
  //   704: 558//64=8 -> 512     768: 512//64=8 -> 512     832: 472//64=7 -> 448     896: 438//64=6 -> 384
  //   960: 409//64=6 -> 384     1024: 384//64=6 -> 384
  assert.deepEqual(makeBucketResolutions({ ...sd15, resolution: [512, 768] }), [
    [256, 1024], [320, 1024], [384, 896], [384, 960], [384, 1024], [448, 832], [512, 704], [512, 768], [576, 576],
    [576, 640], [640, 576], [704, 512], [768, 512], [832, 448], [896, 384], [960, 384], [1024, 256], [1024, 320], [1024, 384],
  ]);
});

test('a 1920x1080 frame goes to 640x384', () => {
  // aspect 1920/1080 = 1.7778; nearest bucket aspect: 640/384 = 1.6667 (error 0.1111),
  // next 704/320 = 2.2 (0.4222). 1.7778 > 1.6667, so heights match: scale = 384/1080,
  // resized = (int(1920*384/1080 + 0.5), int(384 + 0.5)) = (int(683.17), 384) = (683, 384)
  const buckets = makeBucketResolutions(sd15);
  const choice = selectBucket(sd15, buckets, 1920, 1080);
  assert.deepEqual(choice.bucket, [640, 384]);
  assert.deepEqual(choice.resizedSize, [683, 384]);
  close(choice.aspectError, 640 / 384 - 1920 / 1080); // -0.1111
});

test('a 1080x1920 frame goes to 384x640', () => {
  // aspect 0.5625; 384/640 = 0.6 (error 0.0375), 320/704 = 0.4545 (0.1080).
  // 0.5625 < 0.6, so widths match: scale = 384/1080, resized = (384, int(1920*384/1080 + 0.5)) = (384, 683)
  const choice = selectBucket(sd15, makeBucketResolutions(sd15), 1080, 1920);
  assert.deepEqual(choice.bucket, [384, 640]);
  assert.deepEqual(choice.resizedSize, [384, 683]);
  close(choice.aspectError, 384 / 640 - 1080 / 1920); // +0.0375
});

test('a 1440x1080 (4:3) frame goes to 576x448', () => {
  // aspect 1.3333; 576/448 = 1.2857 (error 0.0476), 640/384 = 1.6667 (0.3333), 512/512 = 1 (0.3333).
  // 1.3333 > 1.2857: scale = 448/1080, resized = (int(1440*448/1080 + 0.5), 448) = (int(597.83), 448) = (597, 448)
  const choice = selectBucket(sd15, makeBucketResolutions(sd15), 1440, 1080);
  assert.deepEqual(choice.bucket, [576, 448]);
  assert.deepEqual(choice.resizedSize, [597, 448]);
  close(choice.aspectError, 576 / 448 - 1440 / 1080); // -0.0476
});

test('a 512x512 image is at a bucket size and keeps it', () => {
  // (512, 512) is in the predefined set: reso = (512, 512); aspect 1 is not > 1, scale = 512/512 = 1
  const choice = selectBucket(sd15, makeBucketResolutions(sd15), 512, 512);
  assert.deepEqual(choice, { bucket: [512, 512], resizedSize: [512, 512], aspectError: 0 });
  // So is 704x320, although 768x320 is the only other bucket near its aspect: the exact size wins.
  assert.deepEqual(selectBucket(sd15, makeBucketResolutions(sd15), 704, 320).bucket, [704, 320]);
});

test('bucket_no_upscale: buckets from the image size, never larger', () => {
  const noUpscale = { ...sd15, noUpscale: true };
  // 1920x1080: area 2073600 > 262144. resized_width = sqrt(262144 * 16/9) = 682.67, resized_height = 384.
  //   width rounded: int(683.17) = 683 -> 683 - 683%64 = 640; height for it: 640/1.7778 = 360 -> int(360.5) = 360 -> 320; aspect 2.0
  //   height rounded: 384 -> 384; width for it: 384*1.7778 = 682.67 -> 683 -> 640; aspect 1.6667
  //   |2.0 - 1.7778| = 0.2222 is not < |1.6667 - 1.7778| = 0.1111: resized = (int(683.17), 384) = (683, 384)
  //   bucket = (683 - 683%64, 384 - 384%64) = (640, 384)
  const wide = selectBucket(noUpscale, [], 1920, 1080);
  assert.deepEqual(wide.bucket, [640, 384]);
  assert.deepEqual(wide.resizedSize, [683, 384]);
  // 1080x1920: resized_width = sqrt(262144 * 0.5625) = 384, resized_height = 682.67.
  //   width rounded 384; height for it: 384/0.5625 = 682.67 -> 683 -> 640; aspect 0.6 (error 0.0375)
  //   height rounded 640; width for it: 640*0.5625 = 360 -> 320; aspect 0.5 (error 0.0625)
  //   0.0375 < 0.0625: resized = (384, int(682.67 + 0.5)) = (384, 683); bucket (384, 640)
  const tall = selectBucket(noUpscale, [], 1080, 1920);
  assert.deepEqual(tall.bucket, [384, 640]);
  assert.deepEqual(tall.resizedSize, [384, 683]);
  // 300x200: area 60000 <= 262144, not resized; bucket (300 - 300%64, 200 - 200%64) = (256, 192)
  const small = selectBucket(noUpscale, [], 300, 200);
  assert.deepEqual(small.bucket, [256, 192]);
  assert.deepEqual(small.resizedSize, [300, 200]);
  close(small.aspectError, 256 / 192 - 300 / 200); // -0.1667
});

test('the bucket report counts images per bucket, sorted, with the mean absolute aspect error', () => {
  const report = bucketReport(sd15, [
    { width: 1920, height: 1080 }, { width: 1920, height: 1080 }, { width: 1080, height: 1920 },
    { width: 1440, height: 1080 }, { width: 512, height: 512 },
  ]);
  assert.deepEqual(report.buckets, [
    { resolution: [384, 640], count: 1 },
    { resolution: [512, 512], count: 1 },
    { resolution: [576, 448], count: 1 },
    { resolution: [640, 384], count: 2 },
  ]);
  // (2 * 0.11111 + 0.0375 + 0.04762 + 0) / 5 = 0.06147
  close(report.meanAspectError, (2 * (1920 / 1080 - 640 / 384) + (384 / 640 - 1080 / 1920) + (1440 / 1080 - 576 / 448)) / 5);
  assert.deepEqual(bucketReport(sd15, []), { buckets: [], meanAspectError: 0 });
});

test('settings Kohya would refuse or adjust are refused', () => {
  const invalid = (settings: BucketSettings, pattern: RegExp) =>
    assert.throws(() => makeBucketResolutions(settings), (error: unknown) => error instanceof CelforgeError && error.code === 'CONFIG_INVALID' && pattern.test(error.message));
  invalid({ ...sd15, minBucketReso: 576 }, /minBucketReso \(576\) must be at most the smaller side/);
  invalid({ ...sd15, maxBucketReso: 448 }, /maxBucketReso \(448\) must be at least the larger side/);
  invalid({ ...sd15, minBucketReso: 250 }, /multiples of bucketResoSteps \(64\)/);
  invalid({ ...sd15, bucketResoSteps: 0 }, /bucketResoSteps must be a positive integer/);
});
