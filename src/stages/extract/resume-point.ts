/**
 * Where an interrupted extraction can continue without decoding the video
 * from frame 0 again: the dedup state after the first n frames (its drawings
 * are the feature file's first records), saved every few seconds once those
 * n frames are in the frame map, and at a stop. A frame is decided before its
 * files are written, so the state of each decided frame is kept until the
 * frame map catches up with it.
 */
import { readFile, rm } from 'node:fs/promises';
import v8 from 'node:v8';
import { replaceFileDurably } from '../../adapters/durable-file.ts';
import type { DedupState } from './deduplicator.ts';
import type { FeatureFile } from './feature-file.ts';

const FORMAT = 1;

interface SavedPoint {
  format: number;
  /** The job (the video's content fingerprint) and frame size the state belongs to. */
  video: string;
  width: number;
  height: number;
  state: DedupState;
}

export interface ResumeVideo {
  video: string;
  width: number;
  height: number;
}

export class ResumePoints {
  readonly path: string;
  readonly #features: FeatureFile;
  readonly #video: ResumeVideo;
  /** States of decided frames, oldest first, from the newest one the frame map covers. */
  #captured: DedupState[] = [];
  #recorded = 0;
  #savedFrame = -1;
  /** Saves run one after another (a timer and a stop may ask at once). */
  #saving: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(path: string, features: FeatureFile, video: ResumeVideo) {
    this.path = path;
    this.#features = features;
    this.#video = video;
  }

  capture(state: DedupState): void {
    this.#captured.push(state);
  }

  /** Frames 0 to `count - 1` are in the frame map. */
  recorded(count: number): void {
    this.#recorded = count;
    let newest = -1;
    for (let i = 0; i < this.#captured.length && this.#captured[i]!.frame <= count; i += 1) newest = i;
    if (newest > 0) this.#captured.splice(0, newest);
  }

  /** Saves the newest state the frame map covers, unless it is saved already. */
  save(): Promise<void> {
    const next = this.#saving.then(() => this.#write());
    this.#saving = next.catch(() => undefined);
    return next;
  }

  /** Waits for a save under way; saves nothing after. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#saving;
  }

  async #write(): Promise<void> {
    const state = this.#captured[0];
    if (this.#closed || !state || state.frame > this.#recorded || state.frame === this.#savedFrame) return;
    // The drawings the state counts must be on disk before the state that counts on them.
    this.#features.sync();
    const point: SavedPoint = { format: FORMAT, ...this.#video, state };
    await replaceFileDurably(this.path, v8.serialize(point));
    this.#savedFrame = state.frame;
  }

  /** The saved state for this video, or why there is none to use. */
  static async load(path: string, video: ResumeVideo): Promise<DedupState | string> {
    let point: SavedPoint;
    try {
      point = v8.deserialize(await readFile(path)) as SavedPoint;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      return code === 'ENOENT' ? 'no resume point was saved' : `the resume point cannot be read (${code ?? (error as Error).message})`;
    }
    if (point?.format !== FORMAT) return 'the resume point is of another format';
    if (point.video !== video.video || point.width !== video.width || point.height !== video.height) return 'the resume point is of another video';
    return point.state;
  }

  static async remove(path: string): Promise<void> {
    await rm(path, { force: true });
  }
}

