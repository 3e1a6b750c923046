/**
 * CelforgeError: an error that says what failed, on which file or key, and
 * what to do. The CLI prints `message` without a stack unless --verbose.
 */
export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'CONFIG_NOT_FOUND'
  | 'PROBE_FAILED'
  | 'VIDEO_TRUNCATED'
  | 'NO_VIDEO_STREAM'
  | 'EXTRACT_FAILED'
  | 'OUTPUT_FOLDER_TAKEN'
  | 'DISK_FULL'
  | 'LEDGER_CORRUPT'
  | 'LIBRARY_LOCKED'
  | 'FOLDER_READ_ONLY'
  | 'FFMPEG_NOT_FOUND'
  | 'FILE_NOT_FOUND'
  | 'IMAGE_UNREADABLE'
  | 'EXPORT_CONFLICT'
  | 'GENERATOR_REFUSED'
  | 'QUEUE_UNREACHABLE'
  | 'CLAIM_LOST'
  | 'INTERNAL';

export class CelforgeError extends Error {
  readonly code: ErrorCode;
  readonly file: string | undefined;

  constructor(code: ErrorCode, message: string, options: { file?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'CelforgeError';
    this.code = code;
    this.file = options.file;
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
