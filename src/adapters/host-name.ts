/**
 * This machine's name as celforge records it in locks and in the workers
 * list: CELFORGE_HOST_NAME when set, else the system's host name. Set it
 * where two machines share a host name (cloned images, containers all
 * named alike): a lock's pid is only checked on the host that wrote it.
 *
 * API: hostName().
 */
import { hostname } from 'node:os';

export function hostName(): string {
  return process.env.CELFORGE_HOST_NAME || hostname();
}
