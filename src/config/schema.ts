/**
 * The daemon's configuration: every key, its default and what is allowed.
 * `ConfigInput` is what a user writes in daemon.config.ts; `Config` is the
 * validated, defaulted result the rest of the code reads.
 */
import os from 'node:os';
import cron from 'node-cron';
import { z } from 'zod';
import { DEFAULT_THRESHOLDS } from '../stages/extract/compare.ts';
import { defaultFeatureThreads } from '../stages/extract/feature-pipeline.ts';
import { DEFAULT_SUBJECT_TAGS } from '../stages/tags/subject-gate.ts';
import { isLoopbackHost } from './loopback-host.ts';
import { redisUrlProblem } from './redis-url.ts';
import { parseSize } from './size.ts';
import { refusedTrainerArgs } from '../training/trainer-args.ts';

const sizeSchema = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const bytes = typeof value === 'number' ? value : parseSize(value);
  if (bytes === undefined || !Number.isFinite(bytes) || bytes < 0) {
    ctx.addIssue({ code: 'custom', message: 'expected a size such as "10GiB", "500 MB" or a number of bytes >= 0' });
    return z.NEVER;
  }
  return bytes;
});

const extensionSchema = z
  .string()
  .regex(/^\.[A-Za-z0-9]+$/, 'expected a file extension with its dot, such as ".m2ts"')
  .transform((ext) => ext.toLowerCase());

const regexSchema = z.string().refine((source) => {
  try {
    new RegExp(source, 'iu');
    return true;
  } catch {
    return false;
  }
}, 'expected a valid JavaScript regular expression');

/** A ComfyUI workflow node to fill: its id in the API-format workflow, or the id and the input's name. */
const nodeRefSchema = (input: string) =>
  z.union([z.string().min(1).transform((node) => ({ node, input })), z.strictObject({ node: z.string().min(1), input: z.string().min(1).default(input) })]);

const generatorCommon = {
  url: z.string().url('expected the server address, such as "http://127.0.0.1:7860"').refine((url) => /^https?:/i.test(url), 'expected an http:// or https:// address'),
  /** HTTP Basic auth (A1111's --api-auth user:password, or a proxy in front); never logged. */
  user: z.string().min(1).optional(),
  password: z.string().min(1).optional(),
  /** Sent as "Authorization: Bearer <apiKey>", for a proxy in front of the server; never logged. */
  apiKey: z.string().min(1).optional(),
  /** The longest one request (ComfyUI: one render, queue and polling included) may take before the server counts as unavailable. */
  timeoutSeconds: z.number().positive().max(3_600).default(300),
  /**
   * The folder the server loads the reviewed model from (A1111/Forge: models/Lora for a LoRA run, models/Stable-diffusion
   * for a full checkpoint; ComfyUI: models/loras or models/checkpoints). The checkpoint review hard-links (or copies) each
   * version there as `<train.outputName>-v<n>.<ext>`. Relative to the config file's folder; required for the review to run.
   */
  modelFolder: z.string().min(1).optional(),
};

/**
 * The node ids default to ComfyUI's default workflow exported in API format
 * (Comfy-Org/ComfyUI@a125cd8 script_examples/basic_api_example.py:11-93: KSampler "3",
 * CheckpointLoaderSimple "4", EmptyLatentImage "5", CLIPTextEncode "6" and "7").
 */
const comfyNodesSchema = z.strictObject({
  checkpoint: nodeRefSchema('ckpt_name').default({ node: '4', input: 'ckpt_name' }),
  /** A LoraLoader node, for a LoRA review: the LoRA's file into `lora_name`, its weight into `strength_model` and `strength_clip`. */
  lora: z.union([
    z.string().min(1).transform((node) => ({ node, input: 'lora_name', strengths: ['strength_model', 'strength_clip'] })),
    z.strictObject({ node: z.string().min(1), input: z.string().min(1).default('lora_name'), strengths: z.array(z.string().min(1)).default(['strength_model', 'strength_clip']) }),
  ]).optional(),
  positive: nodeRefSchema('text').default({ node: '6', input: 'text' }),
  negative: nodeRefSchema('text').default({ node: '7', input: 'text' }),
  seed: nodeRefSchema('seed').default({ node: '3', input: 'seed' }),
  steps: nodeRefSchema('steps').default({ node: '3', input: 'steps' }),
  cfg: nodeRefSchema('cfg').default({ node: '3', input: 'cfg' }),
  sampler: nodeRefSchema('sampler_name').default({ node: '3', input: 'sampler_name' }),
  width: nodeRefSchema('width').default({ node: '5', input: 'width' }),
  height: nodeRefSchema('height').default({ node: '5', input: 'height' }),
  /** The output node (SaveImage) whose picture is the render; default: the first picture of any output node. */
  output: z.string().min(1).optional(),
});

const generatorSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('a1111'), ...generatorCommon }),
  z.strictObject({
    kind: z.literal('comfyui'),
    ...generatorCommon,
    /** A workflow in ComfyUI's API format (Export (API)); relative to the config file's folder. */
    workflow: z.string().min(1),
    nodes: comfyNodesSchema.prefault({}),
  }),
], { error: 'expected kind "a1111" (AUTOMATIC1111 or Forge) or "comfyui"' }).superRefine((generator, ctx) => {
  if ((generator.user === undefined) !== (generator.password === undefined)) {
    ctx.addIssue({ code: 'custom', path: [generator.user === undefined ? 'user' : 'password'], message: 'user and password go together (HTTP Basic auth)' });
  }
  if (generator.apiKey !== undefined && generator.user !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['apiKey'], message: 'give either user and password or apiKey, not both (both would use the Authorization header)' });
  }
});

/**
 * What a checkpoint-review template (and each line of review.wildPrompts) gets unless it says otherwise:
 * A1111's own txt2img defaults for cfg_scale and size (AUTOMATIC1111/stable-diffusion-webui@0027ce1
 * modules/processing.py, the StableDiffusionProcessing dataclass: cfg_scale 7.0, width 512, height 512);
 * 28 steps instead of its 50, enough for detail at half the GPU time. The sampler is the server's name
 * for it: "Euler a" in A1111/Forge, "euler_ancestral" in ComfyUI.
 */
export const REVIEW_TEMPLATE_DEFAULTS = { negativePrompt: '', steps: 28, cfgScale: 7, sampler: 'Euler a', width: 512, height: 512 } as const;

const reviewSeedSchema = z.number().int().min(0).max(4_294_967_295, 'expected a seed from 0 to 4294967295');
const reviewSizeSchema = z.number().int().min(64).max(4096).multipleOf(8, 'expected a multiple of 8 (the latent is 1/8 of the picture)');

const reviewTemplateSchema = z.strictObject({
  name: z.string().min(1).max(100),
  prompt: z.string().min(1),
  negativePrompt: z.string().default(REVIEW_TEMPLATE_DEFAULTS.negativePrompt),
  seeds: z.array(reviewSeedSchema).min(1, 'expected at least one seed'),
  steps: z.number().int().min(1).max(150).default(REVIEW_TEMPLATE_DEFAULTS.steps),
  cfgScale: z.number().positive().max(30).default(REVIEW_TEMPLATE_DEFAULTS.cfgScale),
  sampler: z.string().min(1).default(REVIEW_TEMPLATE_DEFAULTS.sampler),
  width: reviewSizeSchema.default(REVIEW_TEMPLATE_DEFAULTS.width),
  height: reviewSizeSchema.default(REVIEW_TEMPLATE_DEFAULTS.height),
  /**
   * The character the prompt should draw, as its reference folder <library>/characters/<series>/<name>/ is named
   * (compared as the tag `character:<name>` spells it): each render is scored by its CCIP difference to those
   * pictures (src/stages/checkpoint-review/character-score.ts).
   */
  character: z.string().min(1).optional(),
  /** The series folder of `character`; needed only when several series have a folder of that name. */
  series: z.string().min(1).optional(),
}).superRefine((template, ctx) => {
  if (template.series !== undefined && template.character === undefined) ctx.addIssue({ code: 'custom', path: ['series'], message: 'names the series of a character; set "character" too, or remove it' });
});

export const HWACCELS = ['none', 'auto', 'cuda', 'vaapi', 'qsv', 'videotoolbox', 'd3d11va', 'dxva2'] as const;

export const configSchema = z.strictObject({
  inbox: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)], { error: 'expected a folder path or a non-empty list of folder paths' })
    .default('./inbox')
    .transform((value) => (Array.isArray(value) ? value : [value])),
  library: z.string().min(1).default('./library'),
  watch: z.strictObject({
    extensions: z.array(extensionSchema).min(1).default(['.m2ts']),
    settleSeconds: z.number().min(0).max(86_400).default(30),
    rescanMinutes: z.number().positive().max(10_080).default(10),
    polling: z.boolean().default(false),
    pollIntervalSeconds: z.number().positive().max(3_600).default(5),
    /** The inbox is on a network share: wait until it is mounted (a different file system from /) instead of reading an empty mount point. */
    waitForMount: z.boolean().default(false),
  }).prefault({}),
  naming: z.strictObject({
    /** Tried before the built-in reading of release names (src/daemon/naming.ts); none by default. */
    patterns: z.array(regexSchema).default([]),
  }).prefault({}),
  probe: z.strictObject({
    checkTail: z.boolean().default(true),
    tailSeconds: z.number().positive().max(600).default(2),
  }).prefault({}),
  disk: z.strictObject({
    reserve: sizeSchema.default(10 * 2 ** 30),
    recheckSeconds: z.number().positive().max(86_400).default(60),
    checkIntervalSeconds: z.number().positive().max(3_600).default(5),
    sampleFrames: z.number().int().min(1).max(100).default(5),
    estimateMargin: z.number().min(0).max(10).default(0.1),
    /** Share of frames expected to be new drawings (anime is mostly held on 2s and 3s). */
    expectedKeptFraction: z.number().min(0.01).max(1).default(0.5),
  }).prefault({}),
  extract: z.strictObject({
    hwaccel: z.enum(HWACCELS).default('none'),
    /** `fast`: unfiltered PNG; `small`: adaptive filtering, ~26% smaller files, ~40% slower to write. */
    pngCompression: z.enum(['fast', 'small']).default('fast'),
    /** Worker threads that measure decoded frames for dedup; 0 measures them on the main thread. */
    threads: z.number().int().min(0).max(64).default(defaultFeatureThreads()),
  }).prefault({}),
  dedup: z.strictObject({
    /** `reference`: duplicates are recorded with a preview and restored on request; `move`: written in full under duplicates/. */
    policy: z.enum(['reference', 'move']).default('reference'),
    previewWidth: z.number().int().min(32).max(1920).default(320),
    thresholds: z.strictObject({
      global: z.number().positive().default(DEFAULT_THRESHOLDS.global),
      block: z.number().positive().default(DEFAULT_THRESHOLDS.block),
      area: z.number().positive().default(DEFAULT_THRESHOLDS.area),
      chroma: z.number().positive().default(DEFAULT_THRESHOLDS.chroma),
      sigmas: z.number().positive().default(DEFAULT_THRESHOLDS.sigmas),
    }).prefault({}),
  }).prefault({}),
  ffmpeg: z.strictObject({
    ffmpegPath: z.string().min(1).optional(),
    ffprobePath: z.string().min(1).optional(),
  }).prefault({}),
  export: z.strictObject({
    /** Written first in every caption, e.g. the character's trigger word. */
    triggerWords: z.array(z.string().min(1)).default([]),
    /** Tokens Kohya keeps in place when shuffling captions; at least the number of trigger words. */
    keepTokens: z.number().int().min(0).default(0),
    underscoresToSpaces: z.boolean().default(true),
    resolution: z.union([z.number().int().positive(), z.tuple([z.number().int().positive(), z.number().int().positive()])]).default(1024)
      .transform((value): [number, number] => (Array.isArray(value) ? value : [value, value])),
    minBucketReso: z.number().int().positive().default(256),
    maxBucketReso: z.number().int().positive().default(2048),
    bucketResoSteps: z.number().int().positive().default(64),
    bucketNoUpscale: z.boolean().default(false),
    numRepeats: z.number().int().positive().default(1),
    batchSize: z.number().int().positive().default(1),
    link: z.enum(['auto', 'hardlink', 'copy']).default('auto'),
    fineTuneMetadata: z.boolean().default(false),
    /** flat: one images/ folder; per-character: a Kohya subset per character or group of characters, num_repeats balanced. */
    layout: z.enum(['flat', 'per-character']).default('flat'),
    balance: z.strictObject({
      /** Each character's steps (images x repeats) as a fraction of the mean over the characters: [min, max]. */
      band: z.tuple([z.number().positive().max(1), z.number().min(1)]).default([0.8, 1.25]),
      /** The most of all steps scenery (images without a character) may take. */
      sceneryShare: z.number().min(0).max(1).default(0.1),
      /** The most repeats the balance gives a subset, before numRepeats multiplies them. */
      maxRepeats: z.number().int().min(1).default(100),
    }).prefault({}),
    /** Prune each character's tags found on at least this share of the images where it is alone (the name absorbs them); null keeps them. */
    pruneCoreTags: z.number().positive().max(1).nullable().default(null),
  }).prefault({}),
  models: z.strictObject({
    /** Downloaded model files land here, one folder per model. */
    dir: z.string().min(1).default('./models'),
    /** The manifest to read; the one shipped in models/ by default. */
    manifest: z.string().min(1).optional(),
    /** A downloadable model that a stage needs and the folder lacks is downloaded then (once; a failed download makes the job wait and is tried again); false: only `celforge models fetch` downloads. */
    autoFetch: z.boolean().default(true),
  }).prefault({}),
  inference: z.strictObject({
    /**
     * ONNX Runtime execution providers in order of preference, e.g. ['cuda', 'cpu'] or ['dml', 'cpu'];
     * one that cannot load falls back to CPU. 'auto': CUDA where it loads, else the CPU (one log line says which).
     * Read as a list: 'auto' becomes ['auto'].
     */
    providers: z.union([z.literal('auto').transform(() => ['auto']), z.array(z.string().min(1)).min(1)]).default(['auto']),
    /** Pictures per model run. */
    batchSize: z.number().int().min(1).max(256).default(8),
    /** Worker threads that read and prepare pictures; 0 prepares them on the main thread. */
    workers: z.number().int().min(0).max(64).default(Math.max(1, Math.min(4, os.availableParallelism() - 1))),
  }).prefault({}),
  faces: z.strictObject({
    /** `faceboxes`: FaceBoxes-anime (shipped) on the whole frame and on zoomed views where the cascade proposes small faces (bench/faces-detector.bench.ts); `cascade`: nagadomi's LBP cascade alone (shipped); `yolo`: deepghs's YOLOv8 face detector (a download); `none`: no faces stage and no subject gate. */
    detector: z.enum(['faceboxes', 'cascade', 'yolo', 'none']).default('faceboxes'),
    /** The manifest id of the detector's model; by default the shipped one for the detector. */
    model: z.string().min(1).optional(),
    /** FaceBoxes and YOLO: the lowest face score kept, and the overlap above which the weaker box is dropped (NMS); by default each model's own (FaceBoxes 0.5 and 0.3, YOLO 0.25 and 0.7). */
    score: z.number().min(0).max(1).optional(),
    iou: z.number().min(0).max(1).optional(),
    /** YOLO: how a picture reaches the model's input size: `letterbox` (aspect kept, as ultralytics) or `stretch` (as imgutils); bench/yolo-resize.bench.ts measures both. */
    resize: z.enum(['letterbox', 'stretch']).default('letterbox'),
  }).prefault({}),
  crops: z.strictObject({
    /** Crops of the faces found on kept frames, written as images of their own (after `faces`; nothing without a face detector). */
    enabled: z.boolean().default(true),
    /** `face`: a square close-up, the kind the seed workflow adds to fix faces; `upper_body`: head and shoulders down to about the waist. */
    kinds: z.array(z.enum(['face', 'upper_body'])).min(1).default(['face', 'upper_body']),
    face: z.strictObject({
      /**
       * Added on every side, as a share of the face box's larger side: 0.5 makes the square twice the face,
       * room for the hair and the chin that detector boxes (forehead to chin) leave out.
       */
      margin: z.number().min(0).max(5).default(0.5),
    }).prefault({}),
    /**
     * In face sizes (the face box's larger side). Anime figures are drawn 5 to 7 heads tall with shoulders
     * about 2.5 heads across: 3 faces wide holds the shoulders, a top half a face above the box keeps the
     * hair, and 4 faces down reaches about the waist (Danbooru's `upper_body`).
     */
    upperBody: z.strictObject({
      width: z.number().min(1).max(20).default(3),
      height: z.number().min(1).max(20).default(4),
      above: z.number().min(0).max(5).default(0.5),
    }).prefault({}),
    /**
     * A crop whose shorter side is below this many frame pixels is not written: crops are never scaled up,
     * and 256 is export.minBucketReso's default: no Kohya bucket has a shorter side, so a smaller crop would only train upscaled.
     */
    minSize: z.number().int().min(16).max(4096).default(256),
  }).prefault({}),
  characters: z.strictObject({
    /**
     * Who is in each crop (after `crops`): CCIP features of the crops, clustered per series, clusters named from
     * reference pictures in <library>/characters/<series>/<name>/ and on the review page, `character:<name>` on crops
     * and their frames. false: no characters stage (and no CCIP model needed).
     */
    enabled: z.boolean().default(true),
    /** The manifest id of the CCIP model (deepghs/ccip_onnx); its metrics.json threshold decides "same character". */
    model: z.string().min(1).default('ccip-caformer-24-randaug-pruned'),
    /**
     * How crops are clustered, as imgutils' ccip_clustering with its default parameters (src/stages/characters/clustering.ts):
     * `optics` (imgutils' default; max_eps 0.5, min_samples 5: a character seen in fewer than 5 crops stays unclustered)
     * or `dbscan` (eps = the model's threshold, min_samples 2: smaller clusters, more split or joined by look-alikes).
     */
    method: z.enum(['optics', 'dbscan']).default('optics'),
    /** Crop kinds whose features are clustered; each crop of these kinds joins a cluster and carries its name. */
    cropKinds: z.array(z.enum(['face', 'upper_body'])).min(1).default(['face', 'upper_body']),
    /**
     * A cluster takes a reference folder's name when at least this share of its crops (a sample of up to 32) is the same
     * character as one of the folder's pictures (CCIP difference <= the model's threshold): a majority, so that a few
     * look-alike crops do not give a cluster a name that most of it does not match.
     */
    referenceShare: z.number().min(0).max(1).default(0.5),
  }).prefault({}),
  tags: z.strictObject({
    /** Manifest ids of the taggers averaged together; an empty list turns tagging off. */
    taggers: z.array(z.string().min(1)).default(['wd-swinv2-tagger-v3', 'wd-vit-tagger-v3', 'wd-convnext-tagger-v3']),
    thresholds: z.strictObject({
      general: z.number().min(0).max(1).default(0.35),
      character: z.number().min(0).max(1).default(0.85),
    }).prefault({}),
    /** Per-picture thresholds by Maximum Cut instead of the fixed ones. */
    mcut: z.boolean().default(false),
    /** Tags never written (booru spelling, e.g. "watermark"). Copyright tags are always dropped. */
    blacklist: z.array(z.string().min(1)).default([]),
    /** Tags kept only on frames where a face was found. */
    subjectTags: z.array(z.string().min(1)).default(DEFAULT_SUBJECT_TAGS),
    /**
     * Composition tags kept only where the largest face box's height, as a share of the picture's height, lies in
     * [min, max] (src/stages/tags/composition-gate.ts); dropped on every picture without a face. The tags listed
     * replace these; {} turns the gate off. A detector's box runs forehead to chin, about 3/4 of an anime head, and
     * figures are drawn 5 to 7 heads tall, so a frame's height holding a whole figure (full_body) leaves the face at
     * most ~0.75/5 = 0.15 of it; from mid-thigh up (cowboy_shot, ~4 heads) ~0.19, from the waist up (upper_body,
     * ~2.5-3 heads) ~0.25-0.3, head and shoulders (portrait, ~1.5-2 heads) ~0.4-0.5, and a close-up crops into the
     * head itself (a face box cut by the frame's edge can exceed the height, hence the open top of 10). Each range
     * reaches a neighbour's, as figures do not always fill the frame's height; a face crop with the default margin
     * (face ~0.5 of it) keeps close-up and portrait, an upper-body crop (~0.25) upper_body and cowboy_shot.
     */
    composition: z.record(z.string().min(1), z.tuple([z.number().min(0), z.number().min(0)]).refine(([min, max]) => min <= max, 'expected [min, max] with min <= max'))
      .default({ 'close-up': [0.45, 10], portrait: [0.3, 10], upper_body: [0.15, 0.45], cowboy_shot: [0.1, 0.3], full_body: [0, 0.2] })
      .transform((ranges) => Object.fromEntries(Object.entries(ranges).map(([tag, range]) => [tag.trim().replace(/\s+/g, '_'), range]))),
    /** In the .txt sidecars and command output: "long hair" rather than "long_hair" (kaomoji keep theirs). */
    underscoresToSpaces: z.boolean().default(true),
    /** Write a .txt caption next to every kept frame. */
    sidecars: z.boolean().default(true),
  }).prefault({}),
  train: z.strictObject({
    /** The Kohya sd-scripts folder (the trainer runs there). */
    sdScripts: z.string().min(1),
    /** The command the script is started with, e.g. ['accelerate', 'launch', '--num_cpu_threads_per_process', '1'] or ['/path/to/venv/bin/python']. */
    launcher: z.array(z.string().min(1)).min(1).default(['accelerate', 'launch']),
    /** The training script, relative to sdScripts. */
    script: z.string().min(1).default('train_network.py'),
    /** Further arguments for the script: `{ learning_rate: 1e-4, xformers: true }` becomes `--learning_rate 0.0001 --xformers`, or give a list as it is. */
    args: z.union([z.array(z.string()), z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]))]).default([]).superRefine((args, ctx) => {
      for (const { key, message } of refusedTrainerArgs(args)) ctx.addIssue({ code: 'custom', path: [key], message });
    }),
    /** Which images to train on (a catalog query; "" is every image). */
    query: z.string().default(''),
    /** Steps in all, across every night: celforge counts them and tells each resumed run where it stands, as its sd-scripts version expects. Set this, not --max_train_epochs. */
    maxTrainSteps: z.number().int().positive(),
    saveEveryNSteps: z.number().int().positive().default(500),
    outputName: z.string().regex(/^[\w.-]+$/, 'a plain file name').default('celforge'),
    /** Where runs, states and checkpoints go; default <library>/training. */
    dir: z.string().min(1).optional(),
    windows: z.array(z.strictObject({
      /** When the window opens: a cron expression (minute hour day month weekday), e.g. "0 1 * * *" for 01:00 every day. */
      start: z.string().refine((expression) => cron.validate(expression), 'expected a cron expression such as "0 1 * * *"'),
      hours: z.number().positive().max(168),
    })).default([{ start: '0 1 * * *', hours: 6 }]),
    /** Time zone of the windows (IANA name); default the system's. */
    timezone: z.string().refine((zone) => {
      try {
        new Intl.DateTimeFormat('en', { timeZone: zone });
        return true;
      } catch {
        return false;
      }
    }, 'expected an IANA time zone such as "Europe/Berlin"').optional(),
    idle: z.strictObject({
      /** Most GPU utilisation (%) before a run starts. */
      gpuUtilization: z.number().min(0).max(100).default(15),
      /** Most GPU memory (MiB) other processes may use, before and during a run. */
      gpuMemoryMiB: z.number().min(0).default(1024),
      /** Most share (0 to 1) of all CPU time in use, since the previous check, before a run starts (systeminformation's currentLoad, every platform). */
      cpuLoad: z.number().min(0).default(0.8),
      /** Minutes without keyboard or mouse input before a run starts (Windows, macOS, X11, GNOME on Wayland; see src/adapters/input-idle.ts); unset: not checked. */
      noInputMinutes: z.number().positive().optional(),
    }).prefault({}),
    /** After a window ends (or the GPU is wanted), how long to wait for the next state save before stopping anyway. */
    stopWaitMinutes: z.number().min(0).default(15),
    checkSeconds: z.number().positive().default(30),
  }).optional(),
  notify: z.strictObject({
    /** Desktop notifications (node-notifier); skipped with one log line where there is no desktop session. */
    desktop: z.boolean().default(true),
    ntfy: z.strictObject({
      url: z.string().url('expected the ntfy server, such as "https://ntfy.sh"').default('https://ntfy.sh'),
      topic: z.string().regex(/^[\w-]{1,64}$/, 'expected an ntfy topic name (letters, digits, _ and -)'),
      /** An access token, for a protected topic; never logged. */
      token: z.string().min(1).optional(),
    }).optional(),
    webhook: z.strictObject({
      url: z.string().url('expected the address to POST events to'),
      /** Signs each body (HMAC-SHA256, header X-Celforge-Signature: sha256=<hex>); never logged. */
      secret: z.string().min(1).optional(),
    }).optional(),
    /** Events this close together go out as one notification. */
    groupSeconds: z.number().min(0).max(3600).default(20),
  }).prefault({}),
  review: z.strictObject({
    port: z.number().int().min(0).max(65_535).default(8642),
    /** Loopback only unless set, e.g. to "0.0.0.0" on a headless box; beyond loopback, allowedHosts and password are required. */
    host: z.string().min(1).default('127.0.0.1'),
    /** Beyond loopback: the host names or addresses the page is opened by (the browser's Host header); any other is refused (DNS rebinding). */
    allowedHosts: z.array(z.string().regex(/^[a-z0-9.-]+$|^\[?[0-9a-f:.]+\]?$/i, 'expected a host name or address without scheme or port, such as "nas.local" or "192.168.1.20"')).min(1).optional(),
    /** Beyond loopback: the password the login form asks for. A secret: never logged; only its scrypt hash is kept in memory. */
    password: z.string().min(12, 'expected a password of at least 12 characters').optional(),
    enabled: z.boolean().default(true),
    /** The image generator that renders checkpoint comparisons (src/adapters/image-generator.ts); unset: no checkpoint review. */
    generator: generatorSchema.optional(),
    /**
     * A checkpoint review flags a template whose share of prompted tags found in its renders (averaged over its
     * seeds) fell by more than this against the previous version (src/stages/checkpoint-review/scores.ts). With 4
     * seeds and ~10 taggable tags one tag lost on one seed moves the share by ~0.025; 0.1 asks for about four such
     * losses before a person is bothered, above the seed-to-seed noise of a tagger near its threshold.
     */
    scoreMargin: z.number().min(0).max(1).default(0.1),
    /**
     * A template that names a character is flagged when the share of its seeds drawn as that character fell by more
     * than this, or fell below half (src/stages/checkpoint-review/scores.ts). The share moves a whole seed at a
     * time (0.25 with 4 seeds): 0.25 lets one seed of four lose the character, which a checkpoint mid-training does
     * from seed to seed, and flags two.
     */
    characterMargin: z.number().min(0).max(1).default(0.25),
    /** Prompts rendered with fixed seeds on every checkpoint and compared side by side (src/stages/checkpoint-review/templates.ts). */
    templates: z.array(reviewTemplateSchema).default([]).superRefine((templates, ctx) => {
      const seen = new Set<string>();
      templates.forEach((template, index) => {
        if (seen.has(template.name.toLowerCase())) ctx.addIssue({ code: 'custom', path: [index, 'name'], message: `"${template.name}" is used by an earlier template (names are compared without case)` });
        seen.add(template.name.toLowerCase());
      });
    }),
    /** A text file of prompts seen in the wild, one per line (blank lines and # comments skipped); each renders as template wild-<n> with the defaults. */
    wildPrompts: z.string().min(1).optional(),
    /** The seeds every wild prompt is rendered with. */
    wildSeeds: z.array(reviewSeedSchema).min(1).default([1]),
    /** A queued checkpoint review whose generator was down or busy is tried again after this long (inside a training window). */
    retryMinutes: z.number().min(0).max(1_440).default(10),
    /**
     * Training steps (cumulative, as `celforge status` counts them) whose intermediate checkpoints are reviewed too,
     * each as its own version before the final one; [] reviews the final checkpoint only. Each must be a multiple of
     * train.saveEveryNSteps and below train.maxTrainSteps: sd-scripts writes a checkpoint only every saveEveryNSteps
     * steps, and the final checkpoint is always reviewed. The file is hard-linked (or copied) into reviews/<version>/
     * when queued, so --save_last_n_steps removing it later loses nothing.
     */
    atSteps: z.array(z.number().int().positive()).default([]),
  }).superRefine((review, ctx) => {
    if (!review.enabled || isLoopbackHost(review.host)) return;
    const beyond = `required when review.host is "${review.host}", which reaches beyond this machine`;
    if (!review.allowedHosts) ctx.addIssue({ code: 'custom', path: ['allowedHosts'], message: `${beyond}: list the names the page is opened by, such as ["nas.local", "192.168.1.20"]` });
    if (!review.password) ctx.addIssue({ code: 'custom', path: ['password'], message: `${beyond}: the password (12 characters or more) that the page's login asks for` });
  }).prefault({}),
  catalog: z.strictObject({
    /** `reject` asks first (or needs --yes) when its query takes more than this share of the library's images. */
    rejectConfirmShare: z.number().min(0).max(1).default(0.2),
  }).prefault({}),
  hydrus: z.strictObject({
    url: z.string().url('expected the Client API address, such as "http://127.0.0.1:45869"'),
    accessKey: z.string().regex(/^[0-9a-f]{64}$/i, 'expected the 64-hex-digit access key from Hydrus (services > review services > client api)'),
    tagService: z.string().min(1).default('my tags'),
    pullBeforeExport: z.boolean().default(true),
  }).optional(),
  queue: z.strictObject({
    /**
     * Unset (the default): one process does every stage. Set: the daemon is a coordinator that enqueues extraction on
     * this Redis (BullMQ) and `celforge worker` processes run it: redis://[user][:password]@host[:port][/db], rediss://
     * for TLS. Redis must keep its data (appendonly yes) and must not be reachable beyond the LAN. The password is never logged.
     */
    redis: z.string().refine((url) => redisUrlProblem(url) === null, { error: (issue) => redisUrlProblem(String(issue.input)) ?? 'expected a Redis address' }).optional(),
    /**
     * On a worker: where the coordinator's paths are found here, longest prefix first, e.g.
     * { "/srv/anime": "/mnt/nas/anime" } for a library and inbox the coordinator sees under /srv/anime.
     */
    pathMap: z.record(z.string().min(1), z.string().min(1)).default({}),
    /** Tries of a job before it lands in the failed set, the next one after backoffSeconds, doubling each time (BullMQ's exponential backoff). */
    attempts: z.number().int().min(1).max(100).default(3),
    backoffSeconds: z.number().positive().max(86_400).default(30),
    /**
     * A worker holds its job's lock this long and renews it at half; a worker that stops renewing (killed, or the
     * machine gone) has its job handed to another after the lock runs out and the next stalled check (every
     * stalledSeconds). BullMQ's defaults (30 s and 30 s).
     */
    lockSeconds: z.number().positive().max(3_600).default(30),
    stalledSeconds: z.number().positive().max(3_600).default(30),
    /** Times a job may be taken back from a worker that stopped answering before it fails; BullMQ's default is 1, 2 allows one more lost machine. */
    maxStalled: z.number().int().min(0).max(100).default(2),
    /**
     * Kept frames per faces job: big enough that a job's queue round trip (a few ms) and the worker's first model
     * load are small beside its detection, small enough that a lost worker costs little and progress moves.
     */
    batchFrames: z.number().int().min(1).max(10_000).default(256),
  }).prefault({}),
  log: z.strictObject({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
  }).prefault({}),
}).superRefine((config, ctx) => {
  config.review.atSteps.forEach((step, index) => {
    const problem = !config.train
      ? 'names a training step, but there is no train section'
      : step % config.train.saveEveryNSteps !== 0
        ? `not a multiple of train.saveEveryNSteps (${config.train.saveEveryNSteps}): sd-scripts writes a checkpoint only at those steps`
        : step >= config.train.maxTrainSteps
          ? `not below train.maxTrainSteps (${config.train.maxTrainSteps}): the final checkpoint is reviewed anyway`
          : null;
    if (problem) ctx.addIssue({ code: 'custom', path: ['review', 'atSteps', index], message: problem });
  });
});

export type ConfigInput = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;

/** A validated configuration with every path made absolute. */
export interface Config extends ParsedConfig {
  /** The file it was loaded from, or null when built from defaults. */
  source: string | null;
}
