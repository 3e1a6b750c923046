/**
 * Writes what each decided frame needs (a kept frame in full; a duplicate in
 * full under duplicates/ or as a preview, by policy) with a few writes in
 * flight, and appends the frame map strictly in frame order, each line only
 * after its files are complete. Once another process owns the output
 * (stopRecording), nothing more is appended.
 */
import path from 'node:path';
import { FrameMapWriter, type FrameRecord } from '../../adapters/frame-map-file.ts';
import { writeFramePng, writePreview, type PngCompression, type RawImage } from '../../adapters/image-writer.ts';
import type { VideoLayout } from '../../daemon/library-paths.ts';
import type { FrameDecision } from './deduplicator.ts';

/** Frames whose writes may be in flight after `submit` returns. */
export const WRITES_IN_FLIGHT = 4;
const SYNC_EVERY_MS = 2000;

export interface OutputTotals {
  kept: number;
  duplicates: number;
  scenes: number;
  bytes: { frames: number; duplicates: number; previews: number };
}

export interface FrameOutputOptions {
  layout: VideoLayout;
  policy: 'reference' | 'move';
  previewWidth: number;
  pngCompression: PngCompression;
  /** Frames already recorded (resuming): their totals carry over. */
  totals: OutputTotals;
}

interface Pending {
  record: FrameRecord;
  written: Promise<{ kind: keyof OutputTotals['bytes']; bytes: number }>;
}

export class FrameOutput {
  readonly totals: OutputTotals;
  readonly #options: FrameOutputOptions;
  readonly #map: FrameMapWriter;
  readonly #queue: Pending[] = [];
  #lastSync = Date.now();
  #committed = 0;
  #recording = true;

  constructor(options: FrameOutputOptions) {
    this.#options = options;
    this.totals = structuredClone(options.totals);
    this.#map = new FrameMapWriter(options.layout.frameMap);
  }

  /** Frames recorded in the map by this output so far. */
  get committed(): number {
    return this.#committed;
  }

  /**
   * Starts the writes for one frame; waits while too many are in flight. Throws the first write error.
   * `done` is called once nothing reads `image` any more (its writes ended, well or not).
   */
  async submit(decision: FrameDecision, image: RawImage, done?: () => void): Promise<void> {
    const { layout, policy, previewWidth, pngCompression } = this.#options;
    const absolute = (relative: string) => path.join(layout.library, relative);
    let record: FrameRecord;
    let written: Pending['written'];
    if (decision.status === 'kept' || policy === 'move') {
      const kind = decision.status === 'kept' ? 'frames' : 'duplicates';
      const file = kind === 'frames' ? layout.keptFile(decision.scene, decision.frame) : layout.duplicateFile(decision.scene, decision.frame);
      record = { ...decision, file, preview: null };
      written = writeFramePng(image, absolute(file), pngCompression).then(({ bytes, sha256 }) => {
        record.sha256 = sha256; // before #commit appends the record, which waits for this write
        return { kind, bytes };
      });
    } else {
      const preview = layout.previewFile(decision.scene, decision.frame);
      record = { ...decision, file: null, preview };
      written = writePreview(image, absolute(preview), previewWidth).then((bytes) => ({ kind: 'previews', bytes }));
    }
    if (done) void written.then(done, done);
    written.catch(() => undefined); // awaited in order by #commit; this only silences the early rejection
    this.#queue.push({ record, written });
    if (this.#queue.length >= WRITES_IN_FLIGHT) await this.#commit(1);
    else await this.#commitSettled();
  }

  /** Waits for every write, records them, and makes the map durable. */
  async finish(): Promise<void> {
    try {
      await this.#commit(this.#queue.length);
    } finally {
      await this.#map.close();
    }
  }

  /** After a failure or a stop: records the frames whose writes completed, up to the first that did not. */
  async salvage(): Promise<void> {
    while (this.#queue.length) {
      try {
        await this.#commit(1);
      } catch {
        break;
      }
    }
    this.#queue.length = 0;
    await this.#map.close();
  }

  /** Another process owns the video now: from this moment no record is appended, not even of a write under way. */
  stopRecording(): void {
    this.#recording = false;
  }

  /** After stopRecording: waits for the writes under way (their files are the same bytes the new owner writes) and closes the map. */
  async abandon(): Promise<void> {
    this.#recording = false;
    await Promise.allSettled(this.#queue.map((pending) => pending.written));
    this.#queue.length = 0;
    await this.#map.close();
  }

  async #commitSettled(): Promise<void> {
    let settled = 0;
    for (const pending of this.#queue) {
      if (!(await isSettled(pending.written))) break;
      settled += 1;
    }
    if (settled) await this.#commit(settled);
  }

  /** Records the oldest `count` frames; a failed write stops it there, after recording the ones before. */
  async #commit(count: number): Promise<void> {
    const records: FrameRecord[] = [];
    try {
      for (let i = 0; i < count; i += 1) {
        const pending = this.#queue[0]!;
        const { kind, bytes } = await pending.written;
        this.#queue.shift();
        this.totals.bytes[kind] += bytes;
        countRecord(this.totals, pending.record);
        records.push(pending.record);
      }
    } finally {
      if (this.#recording) {
        await this.#map.append(records);
        this.#committed += records.length;
      }
    }
    if (Date.now() - this.#lastSync >= SYNC_EVERY_MS) {
      await this.#map.sync();
      this.#lastSync = Date.now();
    }
  }
}

/** Counts one recorded frame into the totals (frames being written, and those a resumed run finds recorded). */
export function countRecord(totals: OutputTotals, record: FrameRecord): void {
  if (record.status === 'kept') totals.kept += 1;
  else totals.duplicates += 1;
  totals.scenes = Math.max(totals.scenes, record.scene);
}

async function isSettled(promise: Promise<unknown>): Promise<boolean> {
  const marker = Symbol('pending');
  const winner = await Promise.race([promise.then(() => true, () => true), Promise.resolve(marker)]);
  return winner !== marker;
}
