/**
 * nagadomi's LBP cascade (lbpcascade_animeface.xml) through opencv.js, with
 * the settings of nagadomi's example: histogram equalised grey, scale factor
 * 1.1, 5 neighbours, 24 px minimum. One loaded classifier per file and thread.
 */
import { readFile } from 'node:fs/promises';
import { CelforgeError } from '../errors.ts';
import type { GreyPicture } from './image-tensors.ts';
import { ModelCache } from '../models/model-cache.ts';
import { loadOpenCv, type OpenCv } from './opencv.ts';

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

const loaded = new ModelCache();
let files = 0;

function loadCascade(xmlFile: string): Promise<{ cv: OpenCv; classifier: OpenCv }> {
  return loaded.get(xmlFile, async () => {
    const { cv } = await loadOpenCv();
    const data = await readFile(xmlFile).catch(() => {
      throw new CelforgeError('FILE_NOT_FOUND', `${xmlFile}: cascade file missing; it ships with celforge in models/lbpcascade-animeface/: restore it (git checkout -- models/lbpcascade-animeface)`, { file: xmlFile });
    });
    const name = `cascade-${(files += 1)}.xml`;
    cv.FS_createDataFile('/', name, data, true, false, false);
    const classifier = new cv.CascadeClassifier();
    if (!classifier.load(name)) {
      classifier.delete();
      throw new CelforgeError('CONFIG_INVALID', `${xmlFile}: OpenCV cannot read this cascade`, { file: xmlFile });
    }
    return { cv, classifier };
  });
}

/**
 * Faces in picture pixels (the grey picture's scale undone). `neighbours`:
 * detectMultiScale's minNeighbors, 5 in nagadomi's example; fewer finds more
 * faces and more things that are not (for proposals that a network checks).
 */
export async function detectCascadeFaces(xmlFile: string, grey: GreyPicture, neighbours = 5): Promise<Rect[]> {
  const { cv, classifier } = await loadCascade(xmlFile);
  const mat = cv.matFromArray(grey.height, grey.width, cv.CV_8UC1, grey.data);
  const found = new cv.RectVector();
  try {
    cv.equalizeHist(mat, mat);
    classifier.detectMultiScale(mat, found, 1.1, neighbours, 0, new cv.Size(24, 24));
    const faces: Rect[] = [];
    for (let i = 0; i < found.size(); i += 1) {
      const rect = found.get(i);
      faces.push({ x: rect.x * grey.scale, y: rect.y * grey.scale, width: rect.width * grey.scale, height: rect.height * grey.scale });
    }
    return faces;
  } finally {
    mat.delete();
    found.delete();
  }
}
