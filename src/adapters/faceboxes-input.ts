/**
 * FaceBoxes-anime's input for one picture, built in an image worker: the
 * picture decoded once; the LBP cascade, on a grey copy and with few
 * neighbours, proposes where small faces may be; the whole picture and a
 * zoomed cell around each proposal are packed into S x S inputs
 * (face-mosaic.ts). The network finds faces from about 100 px in its input
 * (models/anime-faceboxes/README.md): the whole picture letterboxed to 1024
 * shows a 1080p frame at 0.53 (at 1536, 0.8), so faces under about 190 px
 * (130 px) need the zoom.
 */
import sharp from 'sharp';
import { detectCascadeFaces } from './face-cascade.ts';
import { fillMosaic, layoutMosaic, type CellRequest, type FaceMosaic } from './face-mosaic.ts';

export interface FaceBoxesInputTask {
  image: string;
  /** The network's input side, S. */
  size: number;
  cascade: string;
}

/**
 * Measured with bench/faces-detector.bench.ts on 1080p frames: the cascade
 * on a grey copy whose long side is 1152 (a 40 px face is 24 px there, the
 * cascade's smallest window) with 2 neighbours proposes 98% of faces, at
 * about a third of the time of 1536 and 5 neighbours (which proposes 89%).
 */
export const PROPOSAL_MAX_SIDE = 1152;
export const PROPOSAL_NEIGHBOURS = 2;
/** A cell is CELL input pixels and the proposed face CELL_FACE of it: measured on the 48 faces (40-250 px) of 24 bench frames, a face of 200 found 47 where one of 150 found 42 and one of 120 found 38 (the network was trained on pictures where the face is large). */
export const CELL = 336;
const CELL_FACE = 200;
/** Proposals whose face the whole-picture view already shows this large (input pixels) need no cell. */
const WHOLE_VIEW_ENOUGH = 150;
/** At most so many cells a picture, smallest proposals first: a busy frame costs at most two more inputs. */
const MAX_CELLS = 8 + 2 * 16;

export async function faceBoxesInput(task: FaceBoxesInputTask): Promise<FaceMosaic> {
  const { data: rgb, info } = await sharp(task.image).flatten({ background: '#ffffff' }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const { width, height } = info;
  const greyScale = Math.max(1, Math.max(width, height) / PROPOSAL_MAX_SIDE);
  const greyWidth = Math.round(width / greyScale);
  const greyHeight = Math.round(height / greyScale);
  const grey = await sharp(rgb, { raw: { width, height, channels: 3 } }).resize(greyWidth, greyHeight).greyscale().raw().toBuffer();
  const proposals = await detectCascadeFaces(task.cascade, { data: new Uint8Array(grey.buffer, grey.byteOffset, grey.length), width: greyWidth, height: greyHeight, scale: greyScale }, PROPOSAL_NEIGHBOURS);
  const wholeScale = Math.min(task.size / width, task.size / height);
  const cells: CellRequest[] = proposals
    .filter((rect) => rect.height * wholeScale < WHOLE_VIEW_ENOUGH)
    .sort((a, b) => a.height - b.height)
    .slice(0, MAX_CELLS)
    .map((rect) => ({ x: rect.x + rect.width / 2, y: rect.y + rect.height / 2, side: (Math.max(rect.width, rect.height) * CELL) / CELL_FACE }));
  return fillMosaic(rgb, layoutMosaic(width, height, task.size, CELL, cells));
}
