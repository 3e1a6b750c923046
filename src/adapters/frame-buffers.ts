/**
 * A fixed set of frame-sized buffers that a decode fills again and again,
 * instead of a new 6 MB buffer per 1080p frame. Fresh large buffers that
 * live past a scavenge are promoted and count toward V8's old-space limit:
 * on a 1080p film they caused some 300 full mark-compacts per 600 frames on
 * the main thread. The buffers live in SharedArrayBuffers, so feature
 * workers read a frame where it is (they get the set once, then a slot number)
 * and nothing is moved back and forth.
 *
 * A frame's holder gives its buffer back with `release` once nothing reads
 * it any more (its PNG and preview written). When every slot is taken,
 * `take` hands out a fresh, unshared buffer rather than wait: a holder that
 * never releases costs memory, never a stall or a frame overwritten.
 */
import { CelforgeError } from '../errors.ts';

export class FrameBuffers {
  readonly frameBytes: number;
  /** The slots' memory, in slot order, to hand to a worker once. */
  readonly shared: readonly SharedArrayBuffer[];
  readonly #buffers: Buffer[];
  readonly #slotOf = new Map<ArrayBufferLike, number>();
  readonly #free: number[];
  readonly #inUse: boolean[];

  constructor(frameBytes: number, slots: number) {
    this.frameBytes = frameBytes;
    this.shared = Array.from({ length: slots }, () => new SharedArrayBuffer(frameBytes));
    this.#buffers = this.shared.map((memory) => Buffer.from(memory));
    this.shared.forEach((memory, slot) => this.#slotOf.set(memory, slot));
    // Taken from the end: slot 0 first, so a short clip touches few slots.
    this.#free = this.shared.map((_, slot) => slots - 1 - slot);
    this.#inUse = this.shared.map(() => false);
  }

  /** A buffer for the next frame: a free slot, or a fresh unshared buffer when all are in use. */
  take(): Buffer {
    const slot = this.#free.pop();
    if (slot === undefined) return Buffer.allocUnsafe(this.frameBytes);
    this.#inUse[slot] = true;
    return this.#buffers[slot]!;
  }

  /** The slot `rgb` lives in, or undefined for a buffer that is not one of the set's. */
  slotOf(rgb: Uint8Array): number | undefined {
    const slot = this.#slotOf.get(rgb.buffer);
    return slot !== undefined && rgb.byteOffset === 0 && rgb.byteLength === this.frameBytes ? slot : undefined;
  }

  /** Gives a taken buffer back for a later frame; a buffer not from the set is left to the collector. */
  release(rgb: Uint8Array): void {
    const slot = this.slotOf(rgb);
    if (slot === undefined) return;
    // Released twice, a slot would be handed to two frames at once: one would overwrite the other.
    if (!this.#inUse[slot]) throw new CelforgeError('INTERNAL', `frame buffer ${slot} was released twice`);
    this.#inUse[slot] = false;
    this.#free.push(slot);
  }

  /** Slots handed out and not yet released. */
  get taken(): number {
    return this.shared.length - this.#free.length;
  }
}
