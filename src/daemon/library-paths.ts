/** Where things live inside the library folder. */
import path from 'node:path';
import type { Job } from './job.ts';

export function stateDir(library: string): string {
  return path.join(library, '.celforge');
}

export function ledgerPath(library: string): string {
  return path.join(stateDir(library), 'jobs.json');
}

export function lockPath(library: string): string {
  return path.join(stateDir(library), 'daemon.lock');
}

/** In the library's root, where a person can find and back it up. */
export function catalogPath(library: string): string {
  return path.join(library, 'catalog.sqlite');
}

export function trashDir(library: string): string {
  return path.join(library, 'trash');
}

export function tempDir(library: string): string {
  return path.join(stateDir(library), 'tmp');
}

/**
 * One video's output: kept frames by scene, duplicates (policy `move`) or
 * their previews (policy `reference`), the frame map and the report. Paths in
 * the frame map are relative to the library, so a library can be moved.
 */
export interface VideoLayout {
  library: string;
  /** Relative to the library. */
  dir: string;
  frameMap: string;
  /** Face detections per kept frame. */
  faces: string;
  report: string;
  /** Held while extraction or a restore writes this video's output. */
  lock: string;
  /** Names the one source (by fingerprint) whose frames this folder holds. */
  owner: string;
  /** Relative to the library. */
  keptFile(scene: number, frame: number): string;
  duplicateFile(scene: number, frame: number): string;
  previewFile(scene: number, frame: number): string;
}

export function videoLayout(library: string, series: string, episode: string): VideoLayout {
  const dir = path.join(series, episode);
  const frameName = (frame: number, ext: string) => `${series}_${episode}_${String(frame).padStart(6, '0')}.${ext}`;
  return {
    library,
    dir,
    frameMap: path.join(library, dir, 'frame-map.jsonl'),
    faces: path.join(library, dir, 'faces.jsonl'),
    report: path.join(library, dir, 'report.json'),
    lock: path.join(library, dir, '.lock'),
    owner: path.join(library, dir, '.owner.json'),
    keptFile: (scene, frame) => path.join(dir, 'frames', sceneFolder(scene), frameName(frame, 'png')),
    duplicateFile: (scene, frame) => path.join(dir, 'duplicates', sceneFolder(scene), frameName(frame, 'png')),
    previewFile: (scene, frame) => path.join(dir, 'previews', sceneFolder(scene), frameName(frame, 'jpg')),
  };
}

export function videoLayoutOf(job: Pick<Job, 'series' | 'episode' | 'folder'>, library: string): VideoLayout {
  return videoLayout(library, job.series, episodeFolderOf(job));
}

/** The job's episode folder: as recorded at intake, or (ledgers of older versions) the episode. */
export function episodeFolderOf(job: Pick<Job, 'episode' | 'folder'>): string {
  return job.folder ?? job.episode;
}

export function sceneFolder(scene: number): string {
  return `scene-${String(scene).padStart(4, '0')}`;
}
