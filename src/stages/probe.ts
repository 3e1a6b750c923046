/**
 * probe: what the video is (frames, fps, duration, resolution, streams), and
 * whether it is whole. A truncated rip passes ffprobe, so the last seconds are
 * decoded too. The file itself is only read.
 */
import path from 'node:path';
import { FfmpegFailure } from '../adapters/media.ts';
import { CelforgeError } from '../errors.ts';
import type { Stage } from './stage.ts';

const BDAV_PACKET_BYTES = 192;

export const probeStage: Stage = async (job, { media, config }) => {
  const file = job.source;
  let info;
  try {
    info = await media.probe(file);
  } catch (error) {
    const said = error instanceof FfmpegFailure ? error.message : String(error);
    throw new CelforgeError('PROBE_FAILED', `${file}: ffprobe cannot read it (${said}). The file was left untouched.`, { file });
  }
  if (!info.streams.some((stream) => stream.type === 'video')) {
    throw new CelforgeError('NO_VIDEO_STREAM', `${file}: it has no video stream (streams: ${describeStreams(info.streams)}).`, { file });
  }
  if (info.frameCount === 0) {
    throw new CelforgeError('PROBE_FAILED', `${file}: ffprobe finds no video frames in it. The file was left untouched.`, { file });
  }
  if (path.extname(file).toLowerCase() === '.m2ts' && job.sizeBytes % BDAV_PACKET_BYTES !== 0) {
    throw new CelforgeError(
      'VIDEO_TRUNCATED',
      `${file}: it is truncated: ${job.sizeBytes} bytes is not a whole number of ${BDAV_PACKET_BYTES}-byte BDAV packets, so the rip or copy stopped early. The file was left untouched.`,
      { file },
    );
  }
  const { checkTail, tailSeconds } = config().probe;
  if (checkTail) {
    const errors = await media.tailErrors(file, tailSeconds, info.durationSeconds).catch((error: unknown) => [String(error)]);
    if (errors.length > 0) {
      throw new CelforgeError(
        'VIDEO_TRUNCATED',
        `${file}: its last ${tailSeconds} s do not decode, so it is truncated or damaged (ffmpeg: ${errors[0]}). The file was left untouched.`,
        { file },
      );
    }
  }
  return { kind: 'done', change: (target) => void (target.probe = info) };
};

function describeStreams(streams: { type: string; codec: string }[]): string {
  return streams.length ? streams.map((stream) => `${stream.type}/${stream.codec}`).join(', ') : 'none';
}
