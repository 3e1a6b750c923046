/**
 * The kept frames of a video, in frame order, as the later stages see them:
 * from the frame map, with each file's SHA-256 (taken when it was written;
 * older maps have none, then the file is read). Frames whose file is gone
 * (a person rejected it into the trash) are left out.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { sha256Of } from '../adapters/file-hash.ts';
import { readFrameMap } from '../adapters/frame-map-file.ts';
import type { VideoLayout } from '../daemon/library-paths.ts';

export interface KeptFrame {
  frame: number;
  scene: number;
  /** Relative to the library. */
  file: string;
  absolute: string;
  /** Known when the frame map has it; see hashOf. */
  sha256: string | undefined;
}

export async function keptFrames(layout: VideoLayout): Promise<KeptFrame[]> {
  return (await readFrameMap(layout.frameMap))
    .filter((record) => record.status === 'kept' && record.file)
    .map((record) => ({ frame: record.frame, scene: record.scene, file: record.file!, absolute: path.join(layout.library, record.file!), sha256: record.sha256 }))
    .filter((frame) => existsSync(frame.absolute));
}

export async function hashOf(frame: KeptFrame): Promise<string> {
  return frame.sha256 ?? (await sha256Of(frame.absolute));
}
