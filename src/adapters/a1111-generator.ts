/**
 * The AUTOMATIC1111 / Forge web UI API (started with --api) as an
 * ImageGenerator: lists models, refreshes them, renders with txt2img.
 *
 * Checked against the sources, cited as A1111 = AUTOMATIC1111/stable-diffusion-webui@c8a5322
 * (2024-02-26, as carried in Forge's history) and Forge = lllyasviel/stable-diffusion-webui-forge@dfdcbab:
 * - routes: A1111 modules/api/api.py:211 (POST /sdapi/v1/txt2img), :226 (GET /sdapi/v1/sd-models),
 *   :234 (POST /sdapi/v1/refresh-checkpoints); Forge modules/api/api.py:211, :227, :235, the same.
 *   GET /sdapi/v1/loras and POST /sdapi/v1/refresh-loras come from the Lora extension:
 *   A1111 extensions-builtin/Lora/scripts/lora_script.py:62,66; Forge
 *   extensions-builtin/sd_forge_lora/scripts/lora_script.py:52,56.
 * - txt2img fields: A1111 modules/processing.py:144-177 (prompt, negative_prompt, seed, sampler_name,
 *   steps, cfg_scale, width, height, override_settings, override_settings_restore_afterwards = True);
 *   the answer {images: [base64], parameters, info}: A1111 modules/api/models.py:134-137,
 *   api.py:483-485 (Forge api.py:502 adds extra images after the first).
 * - --api-auth is HTTP Basic on every add_api_route route: A1111 api.py:278-283, Forge api.py:281-286.
 * - An unknown override_settings.sd_model_checkpoint is dropped and the picture is rendered with
 *   whatever model is loaded (A1111 modules/processing.py:770, Forge :825); an unknown
 *   `<lora:name:w>` only adds "Lora not found" to the infotext (A1111
 *   extensions-builtin/Lora/networks.py:318). So render() checks the name against the server's
 *   list first: a silent fallback would compare the wrong model.
 * - A checkpoint's title is `name [shorthash]`, or `name` while its sha256 is not cached; `name`
 *   (the file's path under the models folder), `model_name` and the title are all aliases the
 *   override accepts (A1111 modules/sd_models.py:87-90; Forge :101-104). A LoRA is named by its
 *   file name without extension (A1111 networks.py:581, Forge networks.py:135); its alias
 *   (ss_output_name) is the same for every save of one Kohya run, so the tag uses the name.
 * - Pictures come in opts.samples_format, PNG by default (A1111 modules/shared_options.py:34,
 *   api.py:102): another format is converted to PNG here.
 * - unload(): POST /sdapi/v1/unload-checkpoint -> {} (AUTOMATIC1111/stable-diffusion-webui@2fec947
 *   modules/api/api.py:242, unloadapi -> sd_models.unload_model_weights(); Forge api.py:240, :669-672,
 *   whose unload_model_weights frees every model, modules/sd_models.py:451-453 and
 *   backend/memory_management.py:1208; a render loads them again as it needs them). A1111's unload
 *   only moves the model to RAM (send_model_to_cpu), and POST /sdapi/v1/reload-checkpoint (A1111
 *   api.py:243, reloadapi -> send_model_to_device) moves it back; txt2img is not sure to
 *   (AUTOMATIC1111/stable-diffusion-webui#12971), so the first render of an adapter (which cannot
 *   know what an earlier one did) and the first after unload() ask for it; in Forge it does nothing
 *   (modules/sd_models.py:423). Neither takes the queue_lock: unload() is for when the renders are over.
 * A render past timeoutSeconds is left to finish: POST /sdapi/v1/interrupt stops whatever job
 * runs, which may be someone else's (A1111 holds one queue_lock for every request, api.py:462).
 */
import path from 'node:path';
import sharp from 'sharp';
import { GeneratorHttp } from './generator-http.ts';
import type { A1111Config, ImageGenerator, ModelKind, RenderRequest } from './image-generator.ts';

interface ModelEntry {
  /** The name callers use: a checkpoint's path under the models folder, a LoRA's name. */
  name: string;
  /** Every other name that means this model here. */
  aliases: string[];
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** Moving a model to RAM takes seconds; a server that takes longer is not freeing anything, and the review (or celforge stopping) should not wait for it. */
const UNLOAD_TIMEOUT_MS = 30_000;

export class A1111Generator implements ImageGenerator {
  readonly url: string;
  readonly #http: GeneratorHttp;
  readonly #known = new Map<ModelKind, ModelEntry[]>();
  readonly #unloadMs: number;
  #reloadBeforeRender = true;

  constructor(config: Omit<A1111Config, 'kind'>) {
    this.#http = new GeneratorHttp('AUTOMATIC1111', config);
    this.url = this.#http.url;
    this.#unloadMs = Math.min(config.timeoutSeconds * 1000, UNLOAD_TIMEOUT_MS);
  }

  async listCheckpoints(kind: ModelKind = 'checkpoint'): Promise<string[]> {
    return (await this.#models(kind, true)).map((entry) => entry.name);
  }

  async refresh(): Promise<void> {
    this.#known.clear();
    await this.#http.json('POST', '/sdapi/v1/refresh-checkpoints');
    // 404: the built-in Lora extension is turned off; checkpoints still work, and a LoRA render says so when it lists them.
    const loras = await this.#http.call('POST', '/sdapi/v1/refresh-loras');
    if (loras.status !== 404) this.#http.check(loras);
  }

  async unload(): Promise<void> {
    await this.#http.json('POST', '/sdapi/v1/unload-checkpoint', { timeoutMs: this.#unloadMs });
    this.#reloadBeforeRender = true;
  }

  async render(request: RenderRequest): Promise<Buffer> {
    const model = await this.#resolve(request.checkpoint.kind, request.checkpoint.name);
    if (this.#reloadBeforeRender) {
      // 404: a web UI without the route (an older one, or another fork) renders as it always did.
      const reload = await this.#http.call('POST', '/sdapi/v1/reload-checkpoint');
      if (reload.status !== 404) this.#http.check(reload);
      this.#reloadBeforeRender = false;
    }
    const lora = request.checkpoint.kind === 'lora' ? ` <lora:${model}:${request.checkpoint.weight ?? 1}>` : '';
    const body = {
      prompt: request.prompt + lora,
      negative_prompt: request.negativePrompt,
      seed: request.seed,
      steps: request.steps,
      cfg_scale: request.cfgScale,
      sampler_name: request.sampler,
      width: request.width,
      height: request.height,
      batch_size: 1,
      n_iter: 1,
      send_images: true,
      save_images: false,
      ...(request.checkpoint.kind === 'checkpoint' ? { override_settings: { sd_model_checkpoint: model }, override_settings_restore_afterwards: true } : {}),
    };
    const about = `${request.checkpoint.kind} ${request.checkpoint.name}, seed ${request.seed}`;
    const reply = (await this.#http.json('POST', '/sdapi/v1/txt2img', { json: body, about })) as { images?: unknown } | null;
    const first = Array.isArray(reply?.images) ? reply.images[0] : undefined;
    if (typeof first !== 'string' || first.length === 0) {
      throw this.#http.refused(`POST /sdapi/v1/txt2img (${about}) answered without a picture in "images"`);
    }
    const bytes = Buffer.from(first.replace(/^data:image\/\w+;base64,/, ''), 'base64');
    if (bytes.subarray(0, 8).equals(PNG_SIGNATURE)) return bytes;
    try {
      return await sharp(bytes).png().toBuffer();
    } catch {
      throw this.#http.refused(`POST /sdapi/v1/txt2img (${about}) answered with a picture that cannot be read`);
    }
  }

  /** The name to send for a model: as listed, or the file name the caller copied (a LoRA's with its extension). */
  async #resolve(kind: ModelKind, wanted: string): Promise<string> {
    const find = (entries: ModelEntry[]) => entries.find((entry) => entry.name === wanted || entry.aliases.includes(wanted));
    const found = find(await this.#models(kind, false)) ?? find(await this.#models(kind, true));
    if (found) return found.name;
    const known = (await this.#models(kind, false)).map((entry) => entry.name);
    throw this.#http.refused(
      `it does not know the ${kind === 'lora' ? 'LoRA' : 'checkpoint'} "${wanted}" (it knows ${known.length ? known.map((name) => `"${name}"`).join(', ') : 'none'}); ` +
        `copy the file into its ${kind === 'lora' ? 'Lora' : 'Stable-diffusion'} models folder and refresh. It would otherwise render with another model.`,
    );
  }

  async #models(kind: ModelKind, fresh: boolean): Promise<ModelEntry[]> {
    const cached = this.#known.get(kind);
    if (cached && !fresh) return cached;
    const entries = kind === 'checkpoint' ? await this.#checkpoints() : await this.#loras();
    this.#known.set(kind, entries);
    return entries;
  }

  async #checkpoints(): Promise<ModelEntry[]> {
    const reply = await this.#http.json('GET', '/sdapi/v1/sd-models');
    if (!Array.isArray(reply)) throw this.#http.refused(`GET /sdapi/v1/sd-models answered with something other than a list: ${this.#http.excerpt(JSON.stringify(reply))}`);
    return reply
      .filter((item): item is { title: string; model_name?: string } => typeof (item as { title?: unknown })?.title === 'string')
      .map((item) => {
        const name = item.title.replace(/ \[[0-9a-f]{8,64}\]$/, '');
        return { name, aliases: [item.title, ...(item.model_name ? [item.model_name] : [])] };
      });
  }

  async #loras(): Promise<ModelEntry[]> {
    const reply = await this.#http.json('GET', '/sdapi/v1/loras');
    if (!Array.isArray(reply)) throw this.#http.refused(`GET /sdapi/v1/loras answered with something other than a list: ${this.#http.excerpt(JSON.stringify(reply))}`);
    return reply
      .filter((item): item is { name: string; path?: string } => typeof (item as { name?: unknown })?.name === 'string')
      .map((item) => ({ name: item.name, aliases: item.path ? [path.basename(item.path.replace(/\\/g, '/'))] : [] }));
  }
}
