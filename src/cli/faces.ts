/**
 * `celforge faces <image...> [--json]`: the configured face detector on the
 * given pictures: boxes with scores, and whether each passes the subject
 * gate (at least one face). For checking a model, and for scripts.
 */
import { CelforgeError } from '../errors.ts';
import { roundBox, type FaceBox } from '../stages/faces/boxes.ts';
import { detectorModelId, DETECTOR_KINDS, finishFaces, loadFaceDetector, prepareFaces, type FaceDetector } from '../stages/faces/face-detector.ts';
import type { GlobalOptions } from './context.ts';
import { prepareEach, requireModels, withPictureRun, type PictureRun } from './picture-runner.ts';

export interface PictureFaces {
  image: string;
  detector: string;
  faces: FaceBox[];
  passed: boolean;
  error?: string;
}

export async function facesCommand(pictures: string[], options: GlobalOptions & { json?: boolean }): Promise<number> {
  const results = await withPictureRun(pictures, options, async (run) => {
    const modelId = detectorModelId(run.config);
    if (!modelId || run.config.faces.detector === 'none') {
      throw new CelforgeError('CONFIG_INVALID', `${run.config.source ?? 'the configuration'}: faces.detector is "none"; set it to "faceboxes" (the default), "cascade" or "yolo"`);
    }
    const [model] = await requireModels(run.config, [modelId], [DETECTOR_KINDS[run.config.faces.detector]]);
    return findFaces(await loadFaceDetector(run.config, model!, run), run);
  });
  for (const result of results) {
    if (options.json) continue;
    if (result.error) process.stdout.write(`${result.image}: ${result.error}\n`);
    else process.stdout.write(`${result.image}: ${result.faces.length} face(s)${result.faces.map((f) => `  [${f.x} ${f.y} ${f.width}x${f.height} ${f.score}]`).join('')}\n`);
  }
  if (options.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  return results.some((result) => result.error) ? 1 : 0;
}

/** Faces on each picture (used by `celforge tags` for its gate too). */
export async function findFaces(detector: FaceDetector, run: PictureRun): Promise<PictureFaces[]> {
  const prepared = await prepareEach(run.pictures, (picture) => prepareFaces(detector, [picture], run.images));
  const found = await Promise.all(prepared.map((entry) => (entry.ok ? finishFaces(detector, entry.value, run.config).then(([faces]) => faces!) : null)));
  return run.pictures.map((image, index) => {
    const entry = prepared[index]!;
    if (!entry.ok) return { image, detector: detector.id, faces: [], passed: false, error: entry.error };
    const faces = found[index]!.map(roundBox);
    return { image, detector: detector.id, faces, passed: faces.length > 0 };
  });
}
