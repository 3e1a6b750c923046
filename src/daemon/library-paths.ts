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
  /** Crops written from the kept frames' faces (src/adapters/crops-file.ts). */
  crops: string;
  report: string;
  /** Held while extraction or a restore writes this video's output. */
  lock: string;
  /** Names the one source (by fingerprint) whose frames this folder holds. */
  owner: string;
  /** Relative to the library. */
  keptFile(scene: number, frame: number): string;
  duplicateFile(scene: number, frame: number): string;
  previewFile(scene: number, frame: number): string;
  /** Relative to the library: `crops/<kind>/<scene folder>/<frame name>_<faceIndex>.png`. */
  cropFile(kind: string, scene: number, frame: number, faceIndex: number): string;
}

export function videoLayout(library: string, series: string, episode: string): VideoLayout {
  const dir = path.join(series, episode);
  const frameStem = (frame: number) => `${series}_${episode}_${String(frame).padStart(6, '0')}`;
  const frameName = (frame: number, ext: string) => `${frameStem(frame)}.${ext}`;
  return {
    library,
    dir,
    frameMap: path.join(library, dir, 'frame-map.jsonl'),
    faces: path.join(library, dir, 'faces.jsonl'),
    crops: path.join(library, dir, 'crops.jsonl'),
    report: path.join(library, dir, 'report.json'),
    lock: path.join(library, dir, '.lock'),
    owner: path.join(library, dir, '.owner.json'),
    keptFile: (scene, frame) => path.join(dir, 'frames', sceneFolder(scene), frameName(frame, 'png')),
    duplicateFile: (scene, frame) => path.join(dir, 'duplicates', sceneFolder(scene), frameName(frame, 'png')),
    previewFile: (scene, frame) => path.join(dir, 'previews', sceneFolder(scene), frameName(frame, 'jpg')),
    cropFile: (kind, scene, frame, faceIndex) => path.join(dir, 'crops', kind, sceneFolder(scene), `${frameStem(frame)}_${faceIndex}.png`),
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
