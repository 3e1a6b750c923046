/** A feature worker thread: measures the frames it is sent and sends each back with its features. */
import { parentPort } from 'node:worker_threads';
import { CelforgeError, errorMessage } from '../../errors.ts';
import { computeFeatures } from './features.ts';

interface FrameMessage {
  id: number;
  rgb: ArrayBuffer;
  width: number;
  height: number;
}

parentPort!.on('message', ({ id, rgb, width, height }: FrameMessage) => {
  try {
    if (rgb.byteLength !== width * height * 3) {
      throw new CelforgeError('INTERNAL', `a ${width}x${height} frame needs ${width * height * 3} bytes, got ${rgb.byteLength}`);
    }
    const features = computeFeatures(new Uint8Array(rgb), width, height);
    parentPort!.postMessage({ id, rgb, features }, [rgb, features.luma.buffer as ArrayBuffer, features.chroma.buffer as ArrayBuffer]);
  } catch (error) {
    const code = error instanceof CelforgeError ? error.code : 'INTERNAL';
    parentPort!.postMessage({ id, error: { code, message: errorMessage(error) } });
  }
});
