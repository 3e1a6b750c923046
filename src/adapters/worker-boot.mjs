// Starts a TypeScript worker: a worker thread does not inherit the loader
// hooks tsx registered in the main thread, so it registers them itself.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.module);
