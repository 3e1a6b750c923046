/**
 * One interface over the image generators that render checkpoint
 * comparisons: AUTOMATIC1111 / Forge (a1111-generator.ts) and ComfyUI
 * (comfyui-generator.ts), chosen by `review.generator.kind`.
 *
 * API: `createImageGenerator(config.review.generator)`, then
 * `listCheckpoints(kind)`, `refresh()` after a model file was copied where
 * the server looks, `render(request)` -> PNG bytes, and `unload()` when the
 * review is done, so that the GPU is free for whatever runs next.
 *
 * A model is named by its file name as the server lists it
 * ("celforge-000002.safetensors", or "sub/name.safetensors" in a subfolder).
 *
 * Failures come in two kinds:
 * - GeneratorUnavailable: down, refused, no answer in time, busy (503) or a
 *   server error (5xx): the caller queues the work and tries again later.
 * - CelforgeError GENERATOR_REFUSED / CONFIG_INVALID: a request or a setting
 *   the server will refuse every time (unknown model, bad credentials, a
 *   workflow without a named node).
 * Every message names the server's URL without credentials; no message, and
 * nothing an error carries, holds the password or API key.
 */
import type { ParsedConfig } from '../config/schema.ts';
import { A1111Generator } from './a1111-generator.ts';
import { ComfyUIGenerator } from './comfyui-generator.ts';

export { GeneratorUnavailable } from './generator-http.ts';

export type ModelKind = 'checkpoint' | 'lora';

export interface RenderRequest {
  /** A full checkpoint, or a LoRA applied to the server's base model with `weight` (default 1). */
  checkpoint: { kind: ModelKind; name: string; weight?: number };
  prompt: string;
  negativePrompt: string;
  seed: number;
  steps: number;
  cfgScale: number;
  /** The server's own sampler name: "Euler a", "DPM++ 2M" in A1111; "euler_ancestral", "dpmpp_2m" in ComfyUI. */
  sampler: string;
  width: number;
  height: number;
}

export interface ImageGenerator {
  /** The server's URL, without credentials. */
  readonly url: string;
  /** The model files the server knows, as it names them. */
  listCheckpoints(kind?: ModelKind): Promise<string[]>;
  /** Makes the server look at its model folders again (a new checkpoint was copied there). */
  refresh(): Promise<void>;
  /** One picture, as PNG bytes. */
  render(request: RenderRequest): Promise<Buffer>;
  /** Asks the server to take its models out of GPU memory; a later render loads them again. Waits at most 30 s. */
  unload(): Promise<void>;
}

export type GeneratorConfig = NonNullable<ParsedConfig['review']['generator']>;
export type A1111Config = Extract<GeneratorConfig, { kind: 'a1111' }>;
export type ComfyUIConfig = Extract<GeneratorConfig, { kind: 'comfyui' }>;

export interface GeneratorOptions {
  /** ComfyUI: how often GET /history is asked while a render runs. */
  pollMs?: number;
}

export function createImageGenerator(config: GeneratorConfig, options: GeneratorOptions = {}): ImageGenerator {
  switch (config.kind) {
    case 'a1111':
      return new A1111Generator(config);
    case 'comfyui':
      return new ComfyUIGenerator(config, options);
  }
}
