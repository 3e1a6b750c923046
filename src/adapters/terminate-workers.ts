/** Stopping worker threads, waiting until each has exited. */
import type { Worker } from 'node:worker_threads';

export async function terminateWorkers(workers: readonly Worker[]): Promise<void> {
  // A worker terminated while it is still starting holds nothing open until it exits (seen on Node 20:
  // the process ran out of work with terminate() pending and quit), so a timer holds the process meanwhile.
  const hold = setInterval(() => {}, 1000);
  try {
    await Promise.all(workers.map((worker) => worker.terminate()));
  } finally {
    clearInterval(hold);
  }
}
