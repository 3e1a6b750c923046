/**
 * A feature worker thread: measures the frames it is sent and answers with
 * their features. A frame comes either as a slot of the shared frame buffers
 * (handed over once, in a `shared` message first), read in place, or as a
 * transferred buffer, sent back with the answer.
 */
import { parentPort } from 'node:worker_threads';
import { CelforgeError, errorMessage } from '../../errors.ts';
import { computeFeatures } from './features.ts';

type Message =
  | { shared: SharedArrayBuffer[] }
  | { id: number; rgb: ArrayBuffer; width: number; height: number }
  | { id: number; slot: number; width: number; height: number };

let shared: SharedArrayBuffer[] = [];

parentPort!.on('message', (message: Message) => {
  if ('shared' in message) {
    shared = message.shared;
    return;
  }
  const { id, width, height } = message;
  try {
    const rgb = 'slot' in message ? shared[message.slot] : message.rgb;
    if (!rgb) throw new CelforgeError('INTERNAL', `frame buffer ${(message as { slot: number }).slot} was never shared with this worker`);
    if (rgb.byteLength !== width * height * 3) {
      throw new CelforgeError('INTERNAL', `a ${width}x${height} frame needs ${width * height * 3} bytes, got ${rgb.byteLength}`);
    }
    const features = computeFeatures(new Uint8Array(rgb), width, height);
    const moved = [features.luma.buffer as ArrayBuffer, features.chroma.buffer as ArrayBuffer];
    if ('slot' in message) parentPort!.postMessage({ id, features }, moved);
    else parentPort!.postMessage({ id, rgb, features }, [message.rgb, ...moved]);
  } catch (error) {
    const code = error instanceof CelforgeError ? error.code : 'INTERNAL';
    parentPort!.postMessage({ id, error: { code, message: errorMessage(error) } });
  }
});
