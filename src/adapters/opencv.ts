/**
 * opencv.js (@techstark/opencv-js, pinned to a 4.x release), loaded once.
 * The module object is a thenable: resolving a promise with it, or returning
 * it from an async function, makes JavaScript call its `then` forever. So it
 * is handed out wrapped in an object, from a plain Promise.
 */
import { createRequire } from 'node:module';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type OpenCv = any;

const require = createRequire(import.meta.url);
let loading: Promise<{ cv: OpenCv }> | null = null;

export function loadOpenCv(): Promise<{ cv: OpenCv }> {
  loading ??= new Promise((resolve) => {
    const cv = require('@techstark/opencv-js') as OpenCv;
    if (cv.Mat) resolve({ cv });
    else cv.onRuntimeInitialized = () => resolve({ cv });
  });
  return loading;
}
