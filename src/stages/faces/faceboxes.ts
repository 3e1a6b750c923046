/**
 * FaceBoxes-anime (models/anime-faceboxes, WynMew/AnimeFaceBoxes exported to
 * ONNX): the output contract is a one-class YOLOv8 head, [batch, 5, N] of
 * centre x, centre y, width, height in input pixels and a face score, with no
 * NMS inside, so the model loads and runs through yolo.ts. Each picture comes
 * as a mosaic (adapters/face-mosaic.ts: the whole picture and zoomed cells
 * where the cascade proposed small faces); the inputs of a whole batch of
 * pictures run together, every box goes back to picture pixels through the
 * region holding its centre, and the boxes of all views of a picture are
 * merged by NMS.
 */
import { boxToPicture, type FaceMosaic } from '../../adapters/face-mosaic.ts';
import { nonMaximumSuppression, type FaceBox } from './boxes.ts';
import { runYoloInputs, yoloCandidates, type YoloDetector, type YoloOptions } from './yolo.ts';

/** The model's README: score >= 0.5 and NMS at IoU 0.3 (at 0.7 duplicate boxes survive and precision falls to about 0.84). */
export const FACEBOXES_DEFAULTS: YoloOptions = { score: 0.5, iou: 0.3 };

export async function detectFaceBoxes(detector: YoloDetector, mosaics: readonly FaceMosaic[], options: YoloOptions, batchSize: number): Promise<FaceBox[][]> {
  const inputs: Float32Array[] = [];
  const owners: { picture: number; input: number }[] = [];
  const per = 3 * detector.width * detector.height;
  mosaics.forEach((mosaic, picture) => {
    if (mosaic.size !== detector.width || mosaic.size !== detector.height) {
      throw new Error(`a ${mosaic.size} px mosaic for a ${detector.width}x${detector.height} detector`);
    }
    for (let input = 0; input < mosaic.inputs; input += 1) {
      inputs.push(mosaic.data.subarray(input * per, (input + 1) * per));
      owners.push({ picture, input });
    }
  });
  const outputs = await runYoloInputs(detector, inputs, batchSize);
  const found: FaceBox[][] = mosaics.map(() => []);
  outputs.forEach((output, index) => {
    const { picture, input } = owners[index]!;
    for (const box of yoloCandidates(output.data, output.dims, options.score)) {
      const mapped = boxToPicture(mosaics[picture]!, input, box);
      if (mapped) found[picture]!.push({ ...mapped, score: box.score });
    }
  });
  return found.map((boxes) => nonMaximumSuppression(boxes, options.iou));
}
