/** A worker thread of the image pool: runs the tasks it is sent, one message per answer. */
import { parentPort } from 'node:worker_threads';
import { CelforgeError, errorMessage } from '../errors.ts';
import { performImageTask, transferablesOf, type ImageTask } from './image-tasks.ts';

parentPort!.on('message', async ({ id, task }: { id: number; task: ImageTask }) => {
  try {
    const result = await performImageTask(task);
    parentPort!.postMessage({ id, result }, transferablesOf(result));
  } catch (error) {
    const code = error instanceof CelforgeError ? error.code : 'INTERNAL';
    parentPort!.postMessage({ id, error: { code, message: errorMessage(error) } });
  }
});
