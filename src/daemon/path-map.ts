/**
 * queue.pathMap: a path as the coordinator names it (a video in its inbox,
 * its library) to where this machine finds it, by the longest matching
 * prefix; a path no prefix matches is used as it is. The rest of the path is
 * joined with this machine's separator, so a coordinator on Linux and a
 * worker on Windows can share a NAS.
 *
 * API: mapPath(file, pathMap).
 */
import path from 'node:path';

export function mapPath(file: string, pathMap: Readonly<Record<string, string>>): string {
  const prefixes = Object.keys(pathMap).sort((a, b) => b.length - a.length);
  for (const prefix of prefixes) {
    const bare = prefix.replace(/[\\/]+$/, '');
    if (file !== bare && !file.startsWith(`${bare}/`) && !file.startsWith(`${bare}\\`)) continue;
    const rest = file.slice(bare.length).split(/[\\/]+/).filter(Boolean);
    return path.join(pathMap[prefix]!, ...rest);
  }
  return file;
}
