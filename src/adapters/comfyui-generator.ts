/**
 * ComfyUI's HTTP API as an ImageGenerator: a workflow in API format (File >
 * Export (API)) read from review.generator.workflow, the request's model,
 * prompts, seed, steps, CFG, sampler and size filled into the nodes
 * review.generator.nodes names, queued, polled, and its picture fetched.
 *
 * Checked against Comfy-Org/ComfyUI@a125cd8 (cited as server.py, execution.py, nodes.py):
 * - POST /prompt {prompt, client_id} -> {prompt_id, number, node_errors}; an invalid prompt -> 400
 *   {error: {type, message, details, extra_info}, node_errors} (server.py:674-720). A model name the
 *   server does not list fails validation as "value_not_in_list" (execution.py:909-920), so an unknown
 *   checkpoint is refused, never swapped for another.
 * - GET /history/{prompt_id} -> {} until the prompt is done, then {prompt_id: {prompt, outputs, status:
 *   {status_str, completed, messages}, meta}} (server.py:661-664, execution.py:1112-1135, :1173-1198);
 *   outputs are {node_id: {images: [{filename, subfolder, type}]}} (execution.py:708-719, nodes.py:1604-1614).
 *   A failed run has status_str "error" and an "execution_error" message with exception_message and
 *   exception_type (execution.py:620-646, main.py:197-202).
 * - GET /view?filename=&subfolder=&type= -> the file (server.py:416-500).
 * - GET /object_info/{node_class} -> {node_class: {input: {required: {name: [choices, options]}}}}
 *   (server.py:592-645); a V3 node sends ["COMBO", {options: [...]}] instead (comfy_api/latest/_io.py:370).
 *   Inputs: CheckpointLoaderSimple ckpt_name (nodes.py:564), LoraLoader lora_name, strength_model,
 *   strength_clip (nodes.py:649-651).
 * - POST /queue {delete: [prompt_id]} and POST /interrupt {prompt_id} (server.py:722-770): a render past
 *   its deadline is taken off the queue, so that it does not hold the GPU later.
 * - unload(): POST /free {unload_models: true, free_memory: true} -> 200, empty (server.py:768-777). It only
 *   sets flags; the prompt worker then unloads every model and, for free_memory, empties the cache of
 *   node outputs (main.py:216-226; set_flag wakes an idle worker, execution.py:1208-1211), so the next
 *   prompt loads its models again. A flag is read after the running prompt, so a render still going
 *   finishes first.
 * - ComfyUI lists model files afresh when a folder's modification time changed (folder_paths.py:325-359),
 *   so refresh() only asks for the list, which also shows the server answers.
 * ComfyUI has no login of its own; user/password or apiKey are for a proxy in front of it.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import sharp from 'sharp';
import { CelforgeError } from '../errors.ts';
import { GeneratorHttp, GeneratorUnavailable } from './generator-http.ts';
import type { ComfyUIConfig, GeneratorOptions, ImageGenerator, ModelKind, RenderRequest } from './image-generator.ts';

const OUT_OF_TIME = Symbol('out of time');

type Workflow = Record<string, { class_type?: unknown; inputs?: Record<string, unknown> }>;
type NodeRef = { node: string; input: string };

const LOADER_CLASS: Record<ModelKind, { nodeClass: string; input: string }> = {
  checkpoint: { nodeClass: 'CheckpointLoaderSimple', input: 'ckpt_name' },
  lora: { nodeClass: 'LoraLoader', input: 'lora_name' },
};
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const DEFAULT_POLL_MS = 500;
/** POST /free answers at once (it only sets flags); a server that does not is not freeing anything, and the review should not wait for it. */
const UNLOAD_TIMEOUT_MS = 30_000;

export class ComfyUIGenerator implements ImageGenerator {
  readonly url: string;
  readonly #http: GeneratorHttp;
  readonly #config: Omit<ComfyUIConfig, 'kind'>;
  readonly #pollMs: number;
  readonly #clientId = randomUUID();

  constructor(config: Omit<ComfyUIConfig, 'kind'>, options: GeneratorOptions = {}) {
    this.#http = new GeneratorHttp('ComfyUI', config);
    this.url = this.#http.url;
    this.#config = config;
    this.#pollMs = options.pollMs ?? DEFAULT_POLL_MS;
  }

  async listCheckpoints(kind: ModelKind = 'checkpoint'): Promise<string[]> {
    const { nodeClass, input } = LOADER_CLASS[kind];
    const reply = (await this.#http.json('GET', `/object_info/${nodeClass}`)) as Record<string, { input?: { required?: Record<string, unknown> } }> | null;
    const spec = reply?.[nodeClass]?.input?.required?.[input];
    const choices = Array.isArray(spec) ? (Array.isArray(spec[0]) ? spec[0] : spec[0] === 'COMBO' ? (spec[1] as { options?: unknown } | undefined)?.options : undefined) : undefined;
    if (!Array.isArray(choices)) {
      throw this.#http.refused(`GET /object_info/${nodeClass} answered without the choices of "${input}" (is the ${nodeClass} node installed?): ${this.#http.excerpt(JSON.stringify(reply))}`);
    }
    return choices.filter((choice): choice is string => typeof choice === 'string');
  }

  async refresh(): Promise<void> {
    await this.listCheckpoints('checkpoint');
  }

  async unload(): Promise<void> {
    const timeoutMs = Math.min(this.#config.timeoutSeconds * 1000, UNLOAD_TIMEOUT_MS);
    this.#http.check(await this.#http.call('POST', '/free', { json: { unload_models: true, free_memory: true }, timeoutMs }));
  }

  async render(request: RenderRequest): Promise<Buffer> {
    const prompt = this.#fill(await this.#readWorkflow(), request);
    const about = `${request.checkpoint.kind} ${request.checkpoint.name}, seed ${request.seed}`;
    const queued = await this.#http.call('POST', '/prompt', { json: { prompt, client_id: this.#clientId }, about });
    if (queued.status === 400) throw this.#http.refused(`POST /prompt (${about}) was refused: ${describeInvalidPrompt(this.#http.parse(queued))}`);
    this.#http.check(queued);
    const promptId = (this.#http.parse(queued) as { prompt_id?: unknown } | null)?.prompt_id;
    if (typeof promptId !== 'string') throw this.#http.refused(`POST /prompt (${about}) answered without a prompt_id`);
    const entry = await this.#waitFor(promptId, about);
    const picture = this.#picture(entry, about);
    const view = await this.#http.call('GET', '/view', { query: picture, about });
    this.#http.check(view);
    if (view.body.subarray(0, 8).equals(PNG_SIGNATURE)) return view.body;
    try {
      return await sharp(view.body).png().toBuffer();
    } catch {
      throw this.#http.refused(`GET /view (${about}) answered with something that is not a picture`);
    }
  }

  async #readWorkflow(): Promise<Workflow> {
    const file = this.#config.workflow;
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      throw new CelforgeError('FILE_NOT_FOUND', `review.generator.workflow: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { file, cause: error });
    }
    let workflow: unknown;
    try {
      workflow = JSON.parse(text);
    } catch (error) {
      throw new CelforgeError('CONFIG_INVALID', `review.generator.workflow: ${file} is not JSON: ${(error as Error).message}`, { file });
    }
    if (workflow === null || typeof workflow !== 'object' || Array.isArray(workflow)) {
      throw new CelforgeError('CONFIG_INVALID', `review.generator.workflow: ${file} is not a ComfyUI workflow (expected an object of nodes)`, { file });
    }
    if (Array.isArray((workflow as { nodes?: unknown }).nodes)) {
      throw new CelforgeError('CONFIG_INVALID', `review.generator.workflow: ${file} is in ComfyUI's UI format; save it with Workflow > Export (API) instead`, { file });
    }
    return workflow as Workflow;
  }

  /** A copy of the workflow with the request's values in the configured nodes. */
  #fill(workflow: Workflow, request: RenderRequest): Workflow {
    const prompt = structuredClone(workflow);
    const { nodes } = this.#config;
    const set = (key: string, ref: NodeRef, value: unknown) => {
      const inputs = this.#inputsOf(prompt, key, ref.node);
      if (!(ref.input in inputs)) {
        throw new CelforgeError('CONFIG_INVALID', `review.generator.nodes.${key}: node "${ref.node}" (${String(prompt[ref.node]!.class_type)}) in ${this.#config.workflow} has no input "${ref.input}"; its inputs: ${Object.keys(inputs).join(', ')}`, { file: this.#config.workflow });
      }
      if (Array.isArray(inputs[ref.input])) {
        throw new CelforgeError('CONFIG_INVALID', `review.generator.nodes.${key}: input "${ref.input}" of node "${ref.node}" in ${this.#config.workflow} is a link from node "${String((inputs[ref.input] as unknown[])[0])}"; name the node that holds the value`, { file: this.#config.workflow });
      }
      inputs[ref.input] = value;
    };
    const { kind, name, weight = 1 } = request.checkpoint;
    if (kind === 'checkpoint') {
      set('checkpoint', nodes.checkpoint, name);
    } else {
      if (!nodes.lora) throw new CelforgeError('CONFIG_INVALID', `review.generator.nodes.lora: not set, so ${this.#config.workflow} cannot render the LoRA "${name}"; name its LoraLoader node`);
      set('lora', nodes.lora, name);
      const inputs = this.#inputsOf(prompt, 'lora', nodes.lora.node);
      for (const strength of nodes.lora.strengths) if (strength in inputs) inputs[strength] = weight;
    }
    set('positive', nodes.positive, request.prompt);
    set('negative', nodes.negative, request.negativePrompt);
    set('seed', nodes.seed, request.seed);
    set('steps', nodes.steps, request.steps);
    set('cfg', nodes.cfg, request.cfgScale);
    set('sampler', nodes.sampler, request.sampler);
    set('width', nodes.width, request.width);
    set('height', nodes.height, request.height);
    if (nodes.output !== undefined) this.#inputsOf(prompt, 'output', nodes.output);
    return prompt;
  }

  #inputsOf(workflow: Workflow, key: string, node: string): Record<string, unknown> {
    const found = workflow[node];
    if (!found || typeof found !== 'object') {
      const present = Object.entries(workflow).map(([id, item]) => `"${id}" ${String(item?.class_type)}`).join(', ');
      throw new CelforgeError('CONFIG_INVALID', `review.generator.nodes.${key}: ${this.#config.workflow} has no node "${node}" (its nodes: ${present || 'none'})`, { file: this.#config.workflow });
    }
    found.inputs ??= {};
    return found.inputs;
  }

  async #waitFor(promptId: string, about: string): Promise<HistoryEntry> {
    const deadline = Date.now() + this.#config.timeoutSeconds * 1000;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      const reply = (await this.#http.json('GET', `/history/${encodeURIComponent(promptId)}`, { about, timeoutMs: left }).catch(async (error: unknown) => {
        // A poll cut short by the render's own deadline is that deadline, not a server that stopped answering.
        if (error instanceof GeneratorUnavailable && Date.now() >= deadline) return OUT_OF_TIME;
        if (error instanceof GeneratorUnavailable) await this.#abandon(promptId);
        throw error;
      })) as Record<string, HistoryEntry> | null | typeof OUT_OF_TIME;
      if (reply === OUT_OF_TIME) break;
      const entry = reply?.[promptId];
      if (entry && (entry.status?.completed || entry.status?.status_str === 'error' || (entry.outputs && Object.keys(entry.outputs).length > 0))) return entry;
      await sleep(Math.min(this.#pollMs, Math.max(0, deadline - Date.now())));
    }
    await this.#abandon(promptId);
    throw new GeneratorUnavailable(this.url, `The ComfyUI server at ${this.url} is unavailable: prompt ${promptId} (${about}) gave no picture within ${this.#config.timeoutSeconds} s (queued behind other work, or slow); it was taken off the queue. The review waits and tries again.`);
  }

  /** Best effort: a server that stopped answering cannot be told. */
  async #abandon(promptId: string): Promise<void> {
    const quick = { timeoutMs: 5_000 };
    await this.#http.call('POST', '/queue', { json: { delete: [promptId] }, ...quick }).catch(() => undefined);
    await this.#http.call('POST', '/interrupt', { json: { prompt_id: promptId }, ...quick }).catch(() => undefined);
  }

  #picture(entry: HistoryEntry, about: string): Record<string, string> {
    if (entry.status?.status_str === 'error') {
      const failure = entry.status.messages?.find((message) => Array.isArray(message) && message[0] === 'execution_error')?.[1] as ExecutionError | undefined;
      const what = failure ? `node "${failure.node_id}" (${failure.node_type}) failed: ${failure.exception_type ?? ''} ${failure.exception_message ?? ''}`.trim() : 'the run failed';
      // Out of GPU memory (torch.OutOfMemoryError) passes once the GPU is free: worth another try later.
      if (/OutOfMemory|out of memory/i.test(`${failure?.exception_type} ${failure?.exception_message}`)) {
        throw new GeneratorUnavailable(this.url, `The ComfyUI server at ${this.url} is unavailable: ${about}: ${this.#http.excerpt(what)}. The review waits and tries again.`);
      }
      throw this.#http.refused(`${about}: ${what}`);
    }
    const outputs = Object.entries(entry.outputs ?? {}).sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }));
    const chosen = this.#config.nodes.output === undefined ? outputs.find(([, output]) => output?.images?.length) : outputs.find(([id]) => id === this.#config.nodes.output);
    const image = chosen?.[1]?.images?.[0];
    if (!image || typeof image.filename !== 'string') {
      const which = this.#config.nodes.output === undefined ? 'no output node' : `output node "${this.#config.nodes.output}"`;
      throw this.#http.refused(`${about}: ${which} of ${this.#config.workflow} produced a picture (outputs: ${this.#http.excerpt(JSON.stringify(entry.outputs ?? {}))})`);
    }
    return { filename: image.filename, subfolder: image.subfolder ?? '', type: image.type ?? 'output' };
  }
}

interface HistoryEntry {
  outputs?: Record<string, { images?: Array<{ filename?: string; subfolder?: string; type?: string }> }>;
  status?: { status_str?: string; completed?: boolean; messages?: unknown[][] };
}

interface ExecutionError {
  node_id?: string;
  node_type?: string;
  exception_message?: string;
  exception_type?: string;
}

/** server.py:712: {error: {message, details}, node_errors: {id: {errors: [{message, details}], class_type}}}. */
function describeInvalidPrompt(reply: unknown): string {
  const { error, node_errors: nodeErrors } = (reply ?? {}) as { error?: { message?: string; details?: string } | string; node_errors?: Record<string, { class_type?: string; errors?: Array<{ message?: string; details?: string }> }> };
  const parts = Object.entries(nodeErrors ?? {}).flatMap(([id, node]) =>
    (node.errors ?? []).map((item) => `node "${id}" (${node.class_type}): ${item.message}${item.details ? `: ${item.details}` : ''}`),
  );
  const headline = typeof error === 'string' ? error : [error?.message, parts.length ? '' : error?.details].filter(Boolean).join(': ');
  return [headline, ...parts].filter(Boolean).join('; ');
}
