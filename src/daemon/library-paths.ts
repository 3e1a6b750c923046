/** Where things live inside the library folder. */
import path from 'node:path';

export function stateDir(library: string): string {
  return path.join(library, '.celforge');
}

export function ledgerPath(library: string): string {
  return path.join(stateDir(library), 'jobs.json');
}

export function lockPath(library: string): string {
  return path.join(stateDir(library), 'daemon.lock');
}

export function tempDir(library: string): string {
  return path.join(stateDir(library), 'tmp');
}

export function framesDir(library: string, series: string, episode: string): string {
  return path.join(library, series, episode, 'frames');
}
