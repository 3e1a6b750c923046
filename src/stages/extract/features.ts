/**
 * What dedup looks at in a frame: the mean luma of every 8x8-pixel block and
 * the mean chroma of every 16x16-pixel block, computed from the decoded RGB
 * frame. Averaging a block cancels most film grain (it is zero-mean noise)
 * while a blink or a mouth flap still moves the blocks it touches.
 */
export const LUMA_BLOCK = 8;
export const CHROMA_BLOCK = 16;

export interface FrameFeatures {
  width: number;
  height: number;
  lumaCols: number;
  lumaRows: number;
  /** Block means of luma, 0..255, row-major. */
  luma: Float32Array;
  chromaCols: number;
  chromaRows: number;
  /** Block means of (B - Y) and (R - Y), interleaved per block. */
  chroma: Float32Array;
  /** Mean luma of the whole frame. */
  mean: number;
}

/**
 * Features of one rgb24 frame. A row is read in runs of one luma block's
 * width, summed in locals and added to its blocks once per run: the same
 * integer sums as pixel by pixel, several times faster (this pass over every
 * pixel is most of the dedup's cost). Luma and chroma are linear in R, G and
 * B, so a run sums the three and weighs the sums once.
 * Integer sums of luma x 256 fit easily in 32 bits per block.
 */
export function computeFeatures(rgb: Uint8Array, width: number, height: number): FrameFeatures {
  const lumaCols = Math.ceil(width / LUMA_BLOCK);
  const lumaRows = Math.ceil(height / LUMA_BLOCK);
  const chromaCols = Math.ceil(width / CHROMA_BLOCK);
  const chromaRows = Math.ceil(height / CHROMA_BLOCK);
  const lumaSum = new Int32Array(lumaCols * lumaRows);
  const chromaSum = new Int32Array(chromaCols * chromaRows * 2);
  const chromaOfLumaColumn = new Int32Array(lumaCols);
  for (let col = 0; col < lumaCols; col += 1) chromaOfLumaColumn[col] = (((col * LUMA_BLOCK) / CHROMA_BLOCK) | 0) * 2;
  const words = wordsOf(rgb, width);
  // Runs read as words: whole 8-pixel runs, when rows start on a word.
  const wordRuns = words ? (width / LUMA_BLOCK) | 0 : 0;
  let total = 0;
  for (let y = 0; y < height; y += 1) {
    const lumaRow = ((y / LUMA_BLOCK) | 0) * lumaCols;
    const chromaRow = ((y / CHROMA_BLOCK) | 0) * chromaCols * 2;
    let offset = y * width * 3;
    let word = offset >> 2;
    for (let col = 0; col < lumaCols; col += 1) {
      let red = 0;
      let green = 0;
      let blue = 0;
      if (col < wordRuns) {
        // 8 pixels are 6 little-endian words laid out R G B R | G B R G | B R G B, twice. Adding the
        // even and the odd bytes of words 3 apart in 16-bit lanes (at most 510 each) sums two
        // pixels' worth of each lane at once; each lane then goes to its channel.
        const w = words!;
        const even0 = (w[word]! & 0xff00ff) + (w[word + 3]! & 0xff00ff);
        const odd0 = ((w[word]! >>> 8) & 0xff00ff) + ((w[word + 3]! >>> 8) & 0xff00ff);
        const even1 = (w[word + 1]! & 0xff00ff) + (w[word + 4]! & 0xff00ff);
        const odd1 = ((w[word + 1]! >>> 8) & 0xff00ff) + ((w[word + 4]! >>> 8) & 0xff00ff);
        const even2 = (w[word + 2]! & 0xff00ff) + (w[word + 5]! & 0xff00ff);
        const odd2 = ((w[word + 2]! >>> 8) & 0xff00ff) + ((w[word + 5]! >>> 8) & 0xff00ff);
        red = (even0 & 0xffff) + (odd0 >>> 16) + (even1 >>> 16) + (odd2 & 0xffff);
        green = (odd0 & 0xffff) + (even1 & 0xffff) + (odd1 >>> 16) + (even2 >>> 16);
        blue = (even0 >>> 16) + (odd1 & 0xffff) + (even2 & 0xffff) + (odd2 >>> 16);
        word += 6;
        offset += LUMA_BLOCK * 3;
      } else {
        const runEnd = offset + Math.min(LUMA_BLOCK, width - col * LUMA_BLOCK) * 3;
        for (; offset < runEnd; offset += 3) {
          red += rgb[offset]!;
          green += rgb[offset + 1]!;
          blue += rgb[offset + 2]!;
        }
      }
      // BT.601 luma weights scaled by 256 (luma is linear: the weights apply to the run's sums).
      const luma = 77 * red + 150 * green + 29 * blue;
      lumaSum[lumaRow + col]! += luma;
      const chroma = chromaRow + chromaOfLumaColumn[col]!;
      chromaSum[chroma]! += (blue << 8) - luma;
      chromaSum[chroma + 1]! += (red << 8) - luma;
      total += luma;
    }
  }
  return {
    width, height, lumaCols, lumaRows, chromaCols, chromaRows,
    luma: blockMeans(lumaSum, lumaCols, lumaRows, width, height, LUMA_BLOCK, 1),
    chroma: blockMeans(chromaSum, chromaCols, chromaRows, width, height, CHROMA_BLOCK, 2),
    mean: total / 256 / (width * height),
  };
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The frame as 32-bit words when every row starts on a word of a little-endian machine, else null (read byte by byte). */
function wordsOf(rgb: Uint8Array, width: number): Uint32Array | null {
  if (!LITTLE_ENDIAN || rgb.byteOffset % 4 !== 0 || (width * 3) % 4 !== 0) return null;
  return new Uint32Array(rgb.buffer, rgb.byteOffset, rgb.byteLength >> 2);
}

function blockMeans(sums: Int32Array, cols: number, rows: number, width: number, height: number, block: number, perBlock: number): Float32Array {
  const means = new Float32Array(sums.length);
  for (let row = 0; row < rows; row += 1) {
    const blockHeight = Math.min(block, height - row * block);
    for (let col = 0; col < cols; col += 1) {
      const pixels = blockHeight * Math.min(block, width - col * block);
      for (let k = 0; k < perBlock; k += 1) {
        const index = (row * cols + col) * perBlock + k;
        means[index] = sums[index]! / 256 / pixels;
      }
    }
  }
  return means;
}

/** A few numbers that locate a frame cheaply: mean luma of a coarse grid of regions. */
export const COARSE_COLS = 8;
export const COARSE_ROWS = 4;

export function coarseSignature(features: FrameFeatures): Float32Array {
  const { luma, lumaCols, lumaRows } = features;
  const sums = new Float64Array(COARSE_COLS * COARSE_ROWS);
  const counts = new Uint32Array(COARSE_COLS * COARSE_ROWS);
  for (let row = 0; row < lumaRows; row += 1) {
    const coarseRow = Math.min(COARSE_ROWS - 1, Math.floor((row * COARSE_ROWS) / lumaRows));
    for (let col = 0; col < lumaCols; col += 1) {
      const cell = coarseRow * COARSE_COLS + Math.min(COARSE_COLS - 1, Math.floor((col * COARSE_COLS) / lumaCols));
      sums[cell]! += luma[row * lumaCols + col]!;
      counts[cell]! += 1;
    }
  }
  return Float32Array.from(sums, (sum, cell) => sum / Math.max(1, counts[cell]!));
}
