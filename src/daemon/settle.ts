/**
 * Decides when a file is completely written: its size and mtime have not
 * changed for the settle time. Each file is reported once per version (a file
 * that changes after being taken is reported again).
 */
import { stat } from 'node:fs/promises';

interface Signature {
  size: number;
  mtimeMs: number;
}

export class SettleTracker {
  readonly #settleMs: number;
  readonly #onSettled: (file: string) => void;
  readonly #pending = new Map<string, NodeJS.Timeout>();
  readonly #taken = new Map<string, Signature>();

  constructor(settleMs: number, onSettled: (file: string) => void) {
    this.#settleMs = settleMs;
    this.#onSettled = onSettled;
  }

  /** A file appeared or changed: watch it until it settles. */
  async touch(file: string): Promise<void> {
    if (this.#pending.has(file)) return;
    const first = await signatureOf(file);
    if (!first || sameSignature(first, this.#taken.get(file))) return;
    this.#schedule(file, first);
  }

  forget(file: string): void {
    clearTimeout(this.#pending.get(file));
    this.#pending.delete(file);
    this.#taken.delete(file);
  }

  close(): void {
    for (const timer of this.#pending.values()) clearTimeout(timer);
    this.#pending.clear();
  }

  get pendingCount(): number {
    return this.#pending.size;
  }

  #schedule(file: string, seen: Signature): void {
    const timer = setTimeout(async () => {
      const now = await signatureOf(file);
      if (!now) {
        this.#pending.delete(file);
        return;
      }
      if (!sameSignature(now, seen)) {
        this.#schedule(file, now);
        return;
      }
      this.#pending.delete(file);
      this.#taken.set(file, now);
      this.#onSettled(file);
    }, this.#settleMs);
    this.#pending.set(file, timer);
  }
}

async function signatureOf(file: string): Promise<Signature | null> {
  try {
    const info = await stat(file);
    return info.isFile() ? { size: info.size, mtimeMs: info.mtimeMs } : null;
  } catch {
    return null;
  }
}

function sameSignature(a: Signature, b: Signature | undefined): boolean {
  return b !== undefined && a.size === b.size && a.mtimeMs === b.mtimeMs;
}
