/**
 * The `metadata_props` of an ONNX model file (key/value strings, where
 * ultralytics' exporter records `imgsz`, `stride` and `names`), which
 * onnxruntime-node does not expose. Read straight from the protobuf: in
 * onnx/onnx.proto, `ModelProto.metadata_props` is field 14, a repeated
 * `StringStringEntryProto { string key = 1; string value = 2; }`. Every other
 * field is skipped by its wire type, so a model's graph is never decoded.
 */
import { readFile } from 'node:fs/promises';
import { CelforgeError } from '../errors.ts';

const METADATA_PROPS = 14;
const [VARINT, FIXED64, LENGTH_DELIMITED, FIXED32] = [0, 1, 2, 5];

export async function readOnnxMetadata(file: string): Promise<Record<string, string>> {
  const bytes = await readFile(file);
  try {
    return parseOnnxMetadata(bytes);
  } catch (error) {
    throw new CelforgeError('FILE_NOT_FOUND', `${file}: not a readable ONNX model (${(error as Error).message}); fetch it again with "celforge models fetch"`, { file, cause: error });
  }
}

export function parseOnnxMetadata(bytes: Uint8Array): Record<string, string> {
  const metadata: Record<string, string> = {};
  for (const field of fields(bytes, 0, bytes.length)) {
    if (field.number !== METADATA_PROPS || field.wireType !== LENGTH_DELIMITED) continue;
    let key = '';
    let value = '';
    for (const entry of fields(bytes, field.start, field.end)) {
      if (entry.wireType !== LENGTH_DELIMITED) continue;
      const text = Buffer.from(bytes.buffer, bytes.byteOffset + entry.start, entry.end - entry.start).toString('utf8');
      if (entry.number === 1) key = text;
      else if (entry.number === 2) value = text;
    }
    metadata[key] = value;
  }
  return metadata;
}

interface Field {
  number: number;
  wireType: number;
  /** Where a length-delimited field's bytes are; empty for the others. */
  start: number;
  end: number;
}

function* fields(bytes: Uint8Array, from: number, to: number): Generator<Field> {
  let at = from;
  const varint = (): number => {
    let result = 0;
    let factor = 1;
    for (;;) {
      if (at >= to) throw new Error('the protobuf ends inside a number');
      const byte = bytes[at++]!;
      result += (byte & 0x7f) * factor;
      if (byte < 0x80) return result;
      factor *= 128;
      if (factor > 2 ** 63) throw new Error('a protobuf number is too long');
    }
  };
  while (at < to) {
    const key = varint();
    const [number, wireType] = [Math.floor(key / 8), key % 8];
    if (wireType === VARINT) varint();
    else if (wireType === FIXED64) at += 8;
    else if (wireType === FIXED32) at += 4;
    else if (wireType === LENGTH_DELIMITED) {
      const length = varint();
      if (at + length > to) throw new Error(`field ${number} runs past the end of the file`);
      yield { number, wireType, start: at, end: at + length };
      at += length;
      continue;
    } else throw new Error(`wire type ${wireType} of field ${number} is not one ONNX uses`);
    if (at > to) throw new Error(`field ${number} runs past the end of the file`);
  }
}
