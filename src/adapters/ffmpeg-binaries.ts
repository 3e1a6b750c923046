/**
 * Which ffmpeg and ffprobe to run: the configured paths, else the system's
 * (found on PATH), else the static binaries shipped in the
 * @ffmpeg-installer/@ffprobe-installer npm packages.
 */
import { accessSync, constants } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { CelforgeError } from '../errors.ts';

export type BinarySource = 'config' | 'system' | 'bundled';

export interface FfmpegBinaries {
  ffmpeg: string;
  ffprobe: string;
  source: { ffmpeg: BinarySource; ffprobe: BinarySource };
}

export interface BinaryPaths {
  ffmpegPath?: string | undefined;
  ffprobePath?: string | undefined;
}

const require = createRequire(import.meta.url);

export function resolveFfmpegBinaries(configured: BinaryPaths = {}): FfmpegBinaries {
  const ffmpeg = resolveOne('ffmpeg', configured.ffmpegPath, '@ffmpeg-installer/ffmpeg');
  const ffprobe = resolveOne('ffprobe', configured.ffprobePath, '@ffprobe-installer/ffprobe');
  if (ffmpeg.source === 'bundled' || ffprobe.source === 'bundled') avoidStaticGconvCrash();
  return { ffmpeg: ffmpeg.path, ffprobe: ffprobe.path, source: { ffmpeg: ffmpeg.source, ffprobe: ffprobe.source } };
}

function resolveOne(name: string, configured: string | undefined, installerPackage: string) {
  if (configured) {
    if (!isExecutable(configured)) {
      throw new CelforgeError('FFMPEG_NOT_FOUND', `${configured}: the configured ${name} is not an executable file`, {
        file: configured,
      });
    }
    return { path: configured, source: 'config' as const };
  }
  const system = findOnPath(name);
  if (system) return { path: system, source: 'system' as const };
  try {
    const installed = require(installerPackage) as { path: string };
    return { path: installed.path, source: 'bundled' as const };
  } catch (error) {
    throw new CelforgeError(
      'FFMPEG_NOT_FOUND',
      `${name} not found: not configured (ffmpeg.${name}Path), not on PATH, and ${installerPackage} has no binary for this platform (${String(error)})`,
    );
  }
}

function findOnPath(name: string): string | null {
  const extensions = process.platform === 'win32' ? ['.exe', '.cmd', ''] : [''];
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    for (const ext of extensions) {
      const candidate = path.join(dir, name + ext);
      if (isExecutable(candidate)) return candidate;
    }
  }
  return null;
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The bundled binaries are statically linked against glibc. When they decode
 * MPEG-TS service names through iconv, that glibc loads the system's gconv
 * modules, built for another glibc, and segfaults (every .m2ts crashed
 * ffprobe 5.x here). Pointing GCONV_PATH at nothing makes iconv fail cleanly
 * instead; ffmpeg then keeps the names as they are. Child processes inherit
 * it, and fluent-ffmpeg gives no per-spawn environment, hence process.env.
 */
function avoidStaticGconvCrash(): void {
  if (process.platform === 'linux' && process.env.GCONV_PATH === undefined) {
    process.env.GCONV_PATH = path.join(path.sep, 'nonexistent-celforge-gconv');
  }
}
