/**
 * How a model download reports progress: one interface, shown as a bar by
 * the CLI (`models fetch`, `process`) and as log lines by the daemon.
 */
import { displayUrl, type DownloadResult } from '../adapters/downloader.ts';
import { formatSize } from '../config/size.ts';
import type { Logger } from '../log.ts';

export interface DownloadProgress {
  /** A file's download begins (or resumes); `name` is `<model>/<file>`, `size` the pinned one. */
  start(name: string, url: string, size: number | null): void;
  update(name: string, received: number, total: number | null): void;
  /** The file is whole, checked and in place. */
  done(name: string, result: DownloadResult): void;
  /** The download stopped (failed or interrupted); its part stays for a resume. */
  failed(name: string, error: unknown): void;
}

/** "wd-vit-tagger-v3/model.onnx: 361.0 MiB, sha256 ab12..., resumed from 12.0 MiB" */
export function describeDownload(name: string, result: DownloadResult): string {
  const resumed = result.resumedFrom ? `, resumed from ${formatSize(result.resumedFrom)}` : '';
  return `${name}: ${formatSize(result.bytes)}, sha256 ${result.sha256}${resumed}`;
}

/** The daemon's log: a line when a file starts, at each quarter, and when it is in place. */
export function downloadLog(log: Logger): DownloadProgress {
  const quarters = new Map<string, number>();
  // Offline, a wait re-tries every minute: after a failure the next start is a debug line, not one an hour of info.
  const failedBefore = new Set<string>();
  return {
    start(name, url, size) {
      quarters.set(name, 0);
      const line = `downloading ${name}${size ? ` (${formatSize(size)})` : ''} from ${displayUrl(url)}`;
      if (failedBefore.has(name)) log.debug({ model: name }, line);
      else log.info({ model: name }, line);
    },
    update(name, received, total) {
      if (!total) return;
      const quarter = Math.floor((4 * received) / total);
      if (quarter <= (quarters.get(name) ?? 0) || quarter >= 4) return;
      quarters.set(name, quarter);
      log.info({ model: name }, `${name}: ${formatSize(received)} of ${formatSize(total)}`);
    },
    done(name, result) {
      failedBefore.delete(name);
      log.info({ model: name }, `downloaded ${describeDownload(name, result)}`);
    },
    failed(name) {
      failedBefore.add(name);
    },
  };
}
