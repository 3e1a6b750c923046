/** Face boxes in picture pixels, and the overlap arithmetic detectors share. */
export interface FaceBox {
  x: number;
  y: number;
  width: number;
  height: number;
  score: number;
}

/** Keeps the best-scoring box of every group overlapping by more than `iou`. */
export function nonMaximumSuppression(boxes: FaceBox[], iou: number): FaceBox[] {
  const kept: FaceBox[] = [];
  for (const box of [...boxes].sort((a, b) => b.score - a.score)) {
    if (kept.every((other) => intersectionOverUnion(box, other) <= iou)) kept.push(box);
  }
  return kept;
}

export function intersectionOverUnion(a: Omit<FaceBox, 'score'>, b: Omit<FaceBox, 'score'>): number {
  const width = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
  const height = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
  if (width <= 0 || height <= 0) return 0;
  const overlap = width * height;
  return overlap / (a.width * a.height + b.width * b.height - overlap);
}

/** Whole pixels, and scores to three places: what is recorded and printed. */
export function roundBox(box: FaceBox): FaceBox {
  return { x: Math.round(box.x), y: Math.round(box.y), width: Math.round(box.width), height: Math.round(box.height), score: Math.round(box.score * 1000) / 1000 };
}
