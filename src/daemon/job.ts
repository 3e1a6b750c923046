/**
 * The job: one video moving through the pipeline, as stored in the ledger.
 * `stage` is the stage the job is in (or ended in); `state` says what it is
 * doing there.
 */
export const STAGES = ['probe', 'diskgate', 'extract', 'catalog', 'faces', 'crops', 'characters', 'tags'] as const;
export type StageName = (typeof STAGES)[number];

export type JobState =
  | 'queued'
  | 'running'
  | 'waiting-for-disk'
  | 'paused-disk-low'
  | 'waiting-for-model'
  | 'failed'
  /** Every stage ran: frames, faces and tags are ready for a person to look at. */
  | 'ready-for-review'
  /** Reviewed. */
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

export interface FacesState {
  detector: string;
  /** Kept frames looked at so far, in frame order (as recorded in the video's faces file). */
  framesDone: number;
  framesWithFaces: number;
}

export interface CropsState {
  /** Kept frames looked at so far, in frame order. */
  framesDone: number;
  /** Crops written (as recorded in the video's crops.jsonl). */
  crops: number;
}

export interface CharactersState {
  /** The CCIP model the features are from. */
  model: string;
  /** The video's crops of the configured kinds, and how many have features so far. */
  crops: number;
  cropsDone: number;
  /** The series' clusters once clustered; null while features are computed. */
  clusters: number | null;
}

export interface TagsState {
  taggers: string[];
  /** Kept frames tagged so far, in frame order. */
  framesDone: number;
  /** Frames whose subject tags the face gate took away. */
  framesGated: number;
  /** Crops (crops.jsonl) tagged so far, in their order, after the frames. */
  cropsDone?: number;
  /** Frames and crops whose composition tags (portrait, full_body, ...) the face-size gate took away. */
  compositionGated?: number;
}

/** What a job waiting for a model needs: the models and the command that fetches them. */
export interface ModelWait {
  models: string[];
  reason: string;
  command: string | null;
  /** Why the automatic download failed (models.autoFetch), when it was tried. */
  downloadError?: string;
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

export interface JobNote {
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
  /**
   * The episode folder under the series folder, chosen at intake and kept for
   * the job's life: the episode, or the episode with a fingerprint suffix when
   * another video already owns that name. Absent in ledgers of older versions
   * (then it is the episode).
   */
  folder?: string;
  /** What a person should know about the job (shown by `status` and the review page). */
  notes?: JobNote[];
  stage: StageName;
  state: JobState;
  progress: { done: number; total: number } | null;
  probe?: VideoInfo;
  disk?: DiskCheck;
  extract?: ExtractState;
  /** Kept frames entered in the catalog so far, in frame order. */
  catalog?: { imagesDone: number };
  faces?: FacesState;
  crops?: CropsState;
  characters?: CharactersState;
  tags?: TagsState;
  waitingFor?: ModelWait;
  timings: Partial<Record<StageName, StageTiming>>;
  error?: JobError;
  createdAt: string;
  updatedAt: string;
}

export function isFinished(job: Job): boolean {
  return job.state === 'ready-for-review' || job.state === 'done' || job.state === 'failed';
}

export function isWaiting(job: Pick<Job, 'state'>): boolean {
  return job.state === 'waiting-for-disk' || job.state === 'paused-disk-low' || job.state === 'waiting-for-model';
}
