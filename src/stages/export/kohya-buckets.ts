/**
 * Kohya sd-scripts' aspect-ratio bucketing, reimplemented exactly, so that an
 * export can say which bucket each image will train in before Kohya runs.
 *
 * Sources (kohya-ss/sd-scripts):
 * - `library/model_util.py` `make_bucket_resolutions`: the predefined buckets.
 * - `library/train_util.py` `BucketManager`: `select_bucket` (both branches),
 *   `round_to_steps`, `max_area = max_reso[0] * max_reso[1]`.
 * - `library/train_util.py` `BaseDataset.make_buckets`: predefined buckets only
 *   without `bucket_no_upscale`; `bucket_info` = buckets with images, sorted
 *   by resolution, and the mean absolute aspect error without repeats.
 * - `library/train_util.py` `DreamBoothDataset.__init__` and `BucketManager.__init__`:
 *   the checks on min/max bucket resolution.
 *
 * Every division and rounding follows the Python: `int(x)` of a positive
 * float is Math.floor, `//` of positive ints is Math.floor of the quotient,
 * and numpy's `argmin` keeps the first of equal errors. JavaScript numbers are
 * the same IEEE doubles as Python floats, so buckets and sizes match exactly
 * (the mean error may differ in its last bits: numpy sums pairwise).
 */
import { CelforgeError } from '../../errors.ts';

export type Resolution = [number, number];

export interface BucketSettings {
  /** `resolution` of the dataset, [width, height]: the bucket area is their product. */
  resolution: Resolution;
  minBucketReso: number;
  maxBucketReso: number;
  bucketResoSteps: number;
  /** `bucket_no_upscale`: buckets come from each image's own size, never larger. */
  noUpscale?: boolean;
}

export interface BucketChoice {
  bucket: Resolution;
  /** The size Kohya resizes the image to before cropping it to the bucket. */
  resizedSize: Resolution;
  /** bucket aspect ratio minus image aspect ratio, signed, as Kohya's `ar_error`. */
  aspectError: number;
}

export interface BucketReport {
  /** Buckets that hold at least one image, sorted by [width, height]; counts are images, without num_repeats. */
  buckets: { resolution: Resolution; count: number }[];
  /** Mean of |aspectError| over the images (Kohya's `mean_img_ar_error`); 0 for no images. */
  meanAspectError: number;
}

/** Throws CONFIG_INVALID for settings Kohya would reject or silently adjust. */
export function checkBucketSettings(settings: BucketSettings): void {
  const { resolution, minBucketReso, maxBucketReso, bucketResoSteps } = settings;
  const fail = (message: string) => {
    throw new CelforgeError('CONFIG_INVALID', `buckets: ${message}`);
  };
  const positiveInt = (name: string, value: number) => {
    if (!Number.isSafeInteger(value) || value <= 0) fail(`${name} must be a positive integer, got ${value}.`);
  };
  if (!Array.isArray(resolution) || resolution.length !== 2) fail(`resolution must be [width, height], got ${JSON.stringify(resolution)}.`);
  positiveInt('resolution width', resolution[0]);
  positiveInt('resolution height', resolution[1]);
  positiveInt('minBucketReso', minBucketReso);
  positiveInt('maxBucketReso', maxBucketReso);
  positiveInt('bucketResoSteps', bucketResoSteps);
  // Newer sd-scripts round min down and max up to a multiple of the steps
  // (`adjust_min_max_bucket_reso_by_steps`), older ones do not: asking for
  // multiples keeps every version on the same buckets.
  if (minBucketReso % bucketResoSteps !== 0 || maxBucketReso % bucketResoSteps !== 0) {
    fail(`minBucketReso (${minBucketReso}) and maxBucketReso (${maxBucketReso}) must be multiples of bucketResoSteps (${bucketResoSteps}).`);
  }
  // The asserts of DreamBoothDataset.__init__.
  if (Math.min(...resolution) < minBucketReso) {
    fail(`minBucketReso (${minBucketReso}) must be at most the smaller side of resolution ${resolution[0]}x${resolution[1]}.`);
  }
  if (Math.max(...resolution) > maxBucketReso) {
    fail(`maxBucketReso (${maxBucketReso}) must be at least the larger side of resolution ${resolution[0]}x${resolution[1]}.`);
  }
}

/**
 * `make_bucket_resolutions(max_reso, min_size, max_size, divisible)`: a square
 * bucket of the resolution's area, then for each width from min to max in
 * steps the tallest height (a multiple of the steps, at most max) whose area
 * fits, with its transpose. Sorted as Python sorts tuples. Kohya does not use
 * this list under `bucket_no_upscale`; it is returned all the same.
 */
export function makeBucketResolutions(settings: BucketSettings): Resolution[] {
  checkBucketSettings(settings);
  const { minBucketReso: minSize, maxBucketReso: maxSize, bucketResoSteps: divisible } = settings;
  const maxArea = settings.resolution[0] * settings.resolution[1];
  const resos = new Map<string, Resolution>();
  const add = (w: number, h: number) => resos.set(`${w}x${h}`, [w, h]);

  const square = Math.floor(Math.sqrt(maxArea) / divisible) * divisible;
  add(square, square);
  for (let width = minSize; width <= maxSize; width += divisible) {
    const height = Math.min(maxSize, Math.floor(Math.floor(maxArea / width) / divisible) * divisible);
    if (height >= minSize) {
      add(width, height);
      add(height, width);
    }
  }
  return [...resos.values()].sort(compareResolutions);
}

/**
 * `BucketManager.select_bucket(image_width, image_height)`. `buckets` is the
 * predefined list (makeBucketResolutions); it is not used under noUpscale.
 */
export function selectBucket(settings: BucketSettings, buckets: Resolution[], width: number, height: number): BucketChoice {
  if (!(width > 0 && height > 0)) {
    throw new CelforgeError('CONFIG_INVALID', `buckets: an image of ${width}x${height} has no aspect ratio.`);
  }
  const aspectRatio = width / height;
  let bucket: Resolution;
  let resizedSize: Resolution;

  if (!settings.noUpscale) {
    // An image already at a bucket's size keeps it, even where another bucket has the same aspect ratio.
    const exact = buckets.find(([w, h]) => w === width && h === height);
    if (exact) {
      bucket = exact;
    } else {
      if (buckets.length === 0) throw new CelforgeError('CONFIG_INVALID', 'buckets: no predefined buckets to choose from.');
      let best = 0;
      let bestError = Infinity;
      buckets.forEach(([w, h], index) => {
        const error = Math.abs(w / h - aspectRatio);
        if (error < bestError) {
          best = index;
          bestError = error;
        }
      });
      bucket = buckets[best]!;
    }
    // Wider than the bucket: match heights; otherwise match widths.
    const scale = aspectRatio > bucket[0] / bucket[1] ? bucket[1] / height : bucket[0] / width;
    resizedSize = [Math.floor(width * scale + 0.5), Math.floor(height * scale + 0.5)];
  } else {
    checkBucketSettings(settings);
    const steps = settings.bucketResoSteps;
    const maxArea = settings.resolution[0] * settings.resolution[1];
    const roundToSteps = (x: number) => {
      const rounded = Math.floor(x + 0.5);
      return rounded - (rounded % steps);
    };
    if (width * height > maxArea) {
      // Shrink to the area keeping the aspect ratio, then put whichever side
      // on the step grid gives the smaller aspect error.
      const resizedWidth = Math.sqrt(maxArea * aspectRatio);
      const resizedHeight = maxArea / resizedWidth;
      const widthRounded = roundToSteps(resizedWidth);
      const heightInWidthRounded = roundToSteps(widthRounded / aspectRatio);
      const arWidthRounded = widthRounded / heightInWidthRounded;
      const heightRounded = roundToSteps(resizedHeight);
      const widthInHeightRounded = roundToSteps(heightRounded * aspectRatio);
      const arHeightRounded = widthInHeightRounded / heightRounded;
      resizedSize = Math.abs(arWidthRounded - aspectRatio) < Math.abs(arHeightRounded - aspectRatio)
        ? [widthRounded, Math.floor(widthRounded / aspectRatio + 0.5)]
        : [Math.floor(heightRounded * aspectRatio + 0.5), heightRounded];
    } else {
      resizedSize = [width, height];
    }
    // Never larger than the image: the bucket crops, it does not pad.
    bucket = [resizedSize[0] - (resizedSize[0] % steps), resizedSize[1] - (resizedSize[1] % steps)];
    if (bucket[0] === 0 || bucket[1] === 0) {
      throw new CelforgeError('CONFIG_INVALID', `buckets: an image of ${width}x${height} is smaller than one bucket step (${steps}) on a side; Kohya cannot train it with bucket_no_upscale.`);
    }
  }
  return { bucket: [bucket[0], bucket[1]], resizedSize, aspectError: bucket[0] / bucket[1] - aspectRatio };
}

/** Which buckets the images fill, as Kohya logs it before training (without repeats). */
export function bucketReport(settings: BucketSettings, images: { width: number; height: number }[]): BucketReport {
  const buckets = settings.noUpscale ? [] : makeBucketResolutions(settings);
  const counts = new Map<string, { resolution: Resolution; count: number }>();
  let errorSum = 0;
  for (const image of images) {
    const choice = selectBucket(settings, buckets, image.width, image.height);
    const key = `${choice.bucket[0]}x${choice.bucket[1]}`;
    const entry = counts.get(key) ?? { resolution: choice.bucket, count: 0 };
    entry.count += 1;
    counts.set(key, entry);
    errorSum += Math.abs(choice.aspectError);
  }
  return {
    buckets: [...counts.values()].sort((a, b) => compareResolutions(a.resolution, b.resolution)),
    meanAspectError: images.length === 0 ? 0 : errorSum / images.length,
  };
}

function compareResolutions(a: Resolution, b: Resolution): number {
  return a[0] - b[0] || a[1] - b[1];
}
