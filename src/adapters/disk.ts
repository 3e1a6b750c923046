/** Free space on the volume holding a folder (check-disk-space). */
import { existsSync } from 'node:fs';
import path from 'node:path';
import checkDiskSpaceModule from 'check-disk-space';

// Its types are ESM in a CommonJS-typed package; at run time the default import is the function.
const checkDiskSpace = checkDiskSpaceModule as unknown as typeof checkDiskSpaceModule.default;

export interface DiskSpace {
  freeBytes(folder: string): Promise<number>;
}

export const realDiskSpace: DiskSpace = {
  async freeBytes(folder) {
    const { free } = await checkDiskSpace(nearestExisting(folder));
    return free;
  },
};

/** The library may not exist yet; its volume is the one of its nearest existing parent. */
function nearestExisting(folder: string): string {
  let current = path.resolve(folder);
  while (!existsSync(current)) {
    const parent = path.dirname(current);
    if (parent === current) break;
    current = parent;
  }
  return current;
}
