/**
 * The V8 flag every way of starting celforge passes to node: the shebang of
 * bin/celforge.js (so `npx celforge` and the npm bin link), `npm start`, and
 * the service units. Kept in step by test/cli/node-heap-flag.test.ts.
 * `env -S` splits the shebang's arguments (coreutils 8.30+, which every
 * system Node 20 runs on has; macOS), and npm's Windows shims read the same
 * line (cmd-shim 8.0.0, lib/index.js line 24: shebangExpr accepts
 * `/usr/bin/env -S <prog> <args>`).
 *
 * Why: V8 counts ArrayBuffer memory allocated since the last full collection
 * against the old generation's limit (src/heap/heap.h,
 * Heap::OldGenerationSpaceAvailable: OldGenerationSizeOfObjects() +
 * AllocatedExternalMemorySinceMarkCompact()). A decode streams every byte of
 * raw video through such buffers (ffmpeg's pipe chunks, 50 MB/s at 320x180
 * and more at 1080p), and once the first full collection had set the limit
 * near celforge's ~28 MB live heap, the slack left was used up every few
 * hundred milliseconds: 4 to 5 full mark-compacts a second from about 25k
 * frames on (bench/long-clip.bench.ts, --trace-gc), and frames/s fell by a
 * third. The initial old-space size is also the floor V8 keeps the limit at
 * (min_old_generation_size_, set when the heap is configured), so it can
 * only be given on node's command line: set at run time it changes nothing,
 * and NODE_OPTIONS refuses it. 128 MB: no mark-compact in the same stretch,
 * and at most ~100 MB more memory before one runs.
 */
export const NODE_HEAP_FLAG = '--initial-old-space-size=128';
