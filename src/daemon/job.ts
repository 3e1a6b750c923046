/**
 * The job: one video moving through the pipeline, as stored in the ledger.
 * `stage` is the stage the job is in (or ended in); `state` says what it is
 * doing there.
 */
export const STAGES = ['probe', 'diskgate', 'extract', 'catalog'] as const;
export type StageName = (typeof STAGES)[number];

export type JobState =
  | 'queued'
  | 'running'
  | 'waiting-for-disk'
  | 'paused-disk-low'
  | 'failed'
  | 'done';

export interface VideoInfo {
  /** Video frames counted by ffprobe (packets of the first video stream). */
  frameCount: number;
  fps: number;
  /** The exact rate as ffprobe gives it, e.g. "24000/1001". */
  frameRate: string;
  durationSeconds: number;
  width: number;
  height: number;
  codec: string;
  streams: { index: number; type: string; codec: string }[];
}

export interface DiskCheck {
  neededBytes: number;
  freeBytes: number;
  reserveBytes: number;
  bytesPerFrame: number;
  checkedAt: string;
}

export interface ExtractState {
  /** The video's output folder. */
  dir: string;
  /** Frames decided and recorded in the frame map (0..framesDone-1). */
  framesDone: number;
  kept: number;
  duplicates: number;
  scenes: number;
  bytesWritten: number;
  /** The ffmpeg process decoding now, so that a restarted daemon can stop an orphan. */
  pid: number | null;
  hwaccel: string;
}

export interface StageTiming {
  startedAt: string;
  finishedAt?: string;
}

export interface JobError {
  code: string;
  message: string;
  at: string;
}

export interface Job {
  /** Content fingerprint: size plus a hash of the file's head and tail. */
  id: string;
  source: string;
  /** Every path this content was seen under (the same rip dropped twice or renamed). */
  seenAs: string[];
  sizeBytes: number;
  series: string;
  episode: string;
  stage: StageName;
  state: JobState;
  progress: { done: number; total: number } | null;
  probe?: VideoInfo;
  disk?: DiskCheck;
  extract?: ExtractState;
  /** Kept frames entered in the catalog so far, in frame order. */
  catalog?: { imagesDone: number };
  timings: Partial<Record<StageName, StageTiming>>;
  error?: JobError;
  createdAt: string;
  updatedAt: string;
}

export function isFinished(job: Job): boolean {
  return job.state === 'done' || job.state === 'failed';
}
