import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { inspect } from 'node:util';
import sharp from 'sharp';
import { ComfyUIGenerator } from '../../src/adapters/comfyui-generator.ts';
import { createImageGenerator, GeneratorUnavailable, type ComfyUIConfig, type RenderRequest } from '../../src/adapters/image-generator.ts';
import { validateConfig } from '../../src/config/load.ts';
import { CelforgeError } from '../../src/errors.ts';
import { FakeComfyUI } from '../fixtures/fake-comfyui.ts';
import { closedPortUrl, modelColour, seedSpot } from '../fixtures/generator-picture.ts';
import { tempDir } from '../helpers.ts';

const API_KEY = 'sk-test-0123456789abcdef';

/** ComfyUI's default workflow in API format (script_examples/basic_api_example.py), with a LoraLoader "10" between the checkpoint and the sampler. */
function defaultWorkflow(withLora = false) {
  const model = withLora ? ['10', 0] : ['4', 0];
  const clip = withLora ? ['10', 1] : ['4', 1];
  return {
    '3': { class_type: 'KSampler', inputs: { cfg: 8, denoise: 1, latent_image: ['5', 0], model, negative: ['7', 0], positive: ['6', 0], sampler_name: 'euler', scheduler: 'normal', seed: 8566257, steps: 20 } },
    '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'base.safetensors' } },
    '5': { class_type: 'EmptyLatentImage', inputs: { batch_size: 1, height: 512, width: 512 } },
    '6': { class_type: 'CLIPTextEncode', inputs: { clip, text: 'masterpiece best quality girl' } },
    '7': { class_type: 'CLIPTextEncode', inputs: { clip, text: 'bad hands' } },
    '8': { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['4', 2] } },
    '9': { class_type: 'SaveImage', inputs: { filename_prefix: 'ComfyUI', images: ['8', 0] } },
    ...(withLora ? { '10': { class_type: 'LoraLoader', inputs: { lora_name: 'x.safetensors', strength_model: 1, strength_clip: 1, model: ['4', 0], clip: ['4', 1] } } } : {}),
  };
}

const base: Omit<RenderRequest, 'checkpoint'> = { prompt: 'circle, triangle', negativePrompt: 'lowres', seed: 42, steps: 12, cfgScale: 6.5, sampler: 'dpmpp_2m', width: 64, height: 48 };

interface Setup {
  workflow?: unknown;
  generator?: Record<string, unknown>;
  fake?: Parameters<typeof FakeComfyUI.start>[0];
}

/** A fake server, a workflow file in a temp folder, and the adapter built from a validated config (paths resolved). */
async function comfy(t: TestContext, setup: Setup = {}) {
  const fake = await FakeComfyUI.start({ checkpoints: ['base.safetensors', 'celforge-v1.safetensors', 'celforge-v2.safetensors'], loras: ['celforge-000001.safetensors'], ...setup.fake });
  t.after(() => fake.stop());
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'workflow.json'), JSON.stringify(setup.workflow ?? defaultWorkflow()));
  const config = validateConfig({ review: { generator: { kind: 'comfyui', url: fake.url, workflow: 'workflow.json', timeoutSeconds: 10, ...setup.generator } } }, 'test config', dir);
  const settings = config.review.generator as ComfyUIConfig;
  const generator = createImageGenerator(settings, { pollMs: 10 });
  return { fake, generator, dir, settings };
}

async function pixel(png: Buffer, x: number, y: number): Promise<[number, number, number]> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const at = (y * info.width + x) * 3;
  return [data[at]!, data[at + 1]!, data[at + 2]!];
}

function assertHidden(error: unknown, secret: string) {
  const shown = [String(error), (error as Error).stack ?? '', inspect(error, { depth: 8 }), JSON.stringify(error)].join('\n');
  assert.ok(!shown.includes(secret), `the secret leaked into: ${shown}`);
}

test('the config resolves the workflow against its folder and defaults the nodes to ComfyUI\'s default workflow', async (t) => {
  const { generator, dir, settings } = await comfy(t);
  assert.ok(generator instanceof ComfyUIGenerator);
  assert.equal(settings.workflow, path.join(dir, 'workflow.json'));
  assert.deepEqual(settings.nodes.checkpoint, { node: '4', input: 'ckpt_name' });
  assert.deepEqual(settings.nodes.seed, { node: '3', input: 'seed' });
  assert.deepEqual(settings.nodes.width, { node: '5', input: 'width' });
  assert.equal(settings.nodes.lora, undefined);
  assert.throws(() => validateConfig({ review: { generator: { kind: 'comfyui', url: 'http://127.0.0.1:8188' } } }, 'test config', dir), /review\.generator\.workflow/);
  assert.throws(
    () => validateConfig({ review: { generator: { kind: 'comfyui', url: 'http://127.0.0.1:8188', workflow: 'w.json', nodes: { seed: { input: 'noise_seed' } } } } }, 'test config', dir),
    /review\.generator\.nodes\.seed/,
  );
  assert.throws(
    () => validateConfig({ review: { generator: { kind: 'comfyui', url: 'http://127.0.0.1:8188', workflow: 'w.json', user: 'admin', password: API_KEY, apiKey: API_KEY } } }, 'test config', dir),
    (error: Error) => /review\.generator\.apiKey = \(hidden\) is not allowed: give either user and password or apiKey/.test(error.message) && !error.message.includes(API_KEY),
  );
});

test('each render fills the named nodes: the checkpoint, prompts, seed, steps, cfg, sampler and size', async (t) => {
  const { fake, generator } = await comfy(t);
  const first = await generator.render({ ...base, checkpoint: { kind: 'checkpoint', name: 'celforge-v1.safetensors' } });
  const second = await generator.render({ ...base, checkpoint: { kind: 'checkpoint', name: 'celforge-v2.safetensors' } });
  const [one, two] = fake.prompts;
  assert.equal(one!['4']!.inputs.ckpt_name, 'celforge-v1.safetensors');
  assert.equal(two!['4']!.inputs.ckpt_name, 'celforge-v2.safetensors');
  assert.equal(one!['6']!.inputs.text, 'circle, triangle');
  assert.equal(one!['7']!.inputs.text, 'lowres');
  assert.deepEqual(
    { seed: one!['3']!.inputs.seed, steps: one!['3']!.inputs.steps, cfg: one!['3']!.inputs.cfg, sampler: one!['3']!.inputs.sampler_name, scheduler: one!['3']!.inputs.scheduler },
    { seed: 42, steps: 12, cfg: 6.5, sampler: 'dpmpp_2m', scheduler: 'normal' },
  );
  assert.deepEqual({ width: one!['5']!.inputs.width, height: one!['5']!.inputs.height }, { width: 64, height: 48 });
  const posted = fake.requests.find((request) => request.path === '/prompt')!.json as { client_id?: unknown };
  assert.equal(typeof posted.client_id, 'string');
  // The picture fetched with /view is the one history named, of that checkpoint.
  const views = fake.requests.filter((request) => request.path === '/view');
  assert.deepEqual([...views[0]!.query.entries()], [['filename', 'ComfyUI_00001_.png'], ['subfolder', ''], ['type', 'output']]);
  assert.equal((await sharp(first).metadata()).format, 'png');
  assert.deepEqual(await pixel(first, 1, 47), modelColour('celforge-v1.safetensors'));
  assert.deepEqual(await pixel(second, 1, 47), modelColour('celforge-v2.safetensors'));
  const [sx, sy] = seedSpot(42, 64, 48);
  assert.deepEqual(await pixel(first, sx + 2, sy + 2), [0, 0, 0]);
});

test('seeds are honoured: the same request gives the same bytes, another seed other bytes', async (t) => {
  const { generator } = await comfy(t);
  const request: RenderRequest = { ...base, checkpoint: { kind: 'checkpoint', name: 'celforge-v1.safetensors' } };
  const a = await generator.render(request);
  const b = await generator.render(request);
  const c = await generator.render({ ...request, seed: 43 });
  assert.ok(a.equals(b));
  assert.ok(!a.equals(c));
});

test('a LoRA run fills the LoraLoader node named in the config, weight into both strengths, base checkpoint kept', async (t) => {
  const { fake, generator } = await comfy(t, { workflow: defaultWorkflow(true), generator: { nodes: { lora: '10' } } });
  const withLora = await generator.render({ ...base, checkpoint: { kind: 'lora', name: 'celforge-000001.safetensors', weight: 0.7 } });
  const lighter = await generator.render({ ...base, checkpoint: { kind: 'lora', name: 'celforge-000001.safetensors', weight: 0.3 } });
  const sent = fake.prompts[0]!;
  assert.deepEqual(
    { name: sent['10']!.inputs.lora_name, model: sent['10']!.inputs.strength_model, clip: sent['10']!.inputs.strength_clip, ckpt: sent['4']!.inputs.ckpt_name },
    { name: 'celforge-000001.safetensors', model: 0.7, clip: 0.7, ckpt: 'base.safetensors' },
  );
  assert.ok(!lighter.equals(withLora), 'the weight reached the server');
  assert.equal(fake.prompts[1]!['10']!.inputs.strength_model, 0.3);
  // Without a LoRA node in the config, a LoRA cannot be rendered.
  const { generator: noLora } = await comfy(t, { workflow: defaultWorkflow(true) });
  await assert.rejects(noLora.render({ ...base, checkpoint: { kind: 'lora', name: 'celforge-000001.safetensors' } }), /review\.generator\.nodes\.lora: not set/);
});

test('checkpoints and LoRAs are listed from /object_info; refresh asks the server', async (t) => {
  const { fake, generator } = await comfy(t);
  assert.deepEqual(await generator.listCheckpoints(), ['base.safetensors', 'celforge-v1.safetensors', 'celforge-v2.safetensors']);
  assert.deepEqual(await generator.listCheckpoints('lora'), ['celforge-000001.safetensors']);
  fake.checkpoints.push('celforge-v3.safetensors');
  await generator.refresh();
  assert.equal(fake.requests.at(-1)!.path, '/object_info/CheckpointLoaderSimple');
  assert.ok((await generator.listCheckpoints()).includes('celforge-v3.safetensors'));
});

test('an unknown checkpoint is refused with ComfyUI\'s validation message', async (t) => {
  const { fake, generator } = await comfy(t);
  await assert.rejects(generator.render({ ...base, checkpoint: { kind: 'checkpoint', name: 'celforge-v9.safetensors' } }), (error: Error) => {
    assert.ok(error instanceof CelforgeError && error.code === 'GENERATOR_REFUSED', String(error));
    assert.ok(error.message.includes(fake.url));
    assert.match(error.message, /node "4" \(CheckpointLoaderSimple\): Value not in list: ckpt_name: 'celforge-v9\.safetensors' not in/);
    return true;
  });
});

test('a node the config names that the workflow lacks is an error naming the file and the node', async (t) => {
  const workflow = defaultWorkflow();
  delete (workflow as Record<string, unknown>)['5'];
  const { fake, generator, settings } = await comfy(t, { workflow });
  await assert.rejects(generator.render({ ...base, checkpoint: { kind: 'checkpoint', name: 'base.safetensors' } }), (error: Error) => {
    assert.ok(error instanceof CelforgeError && error.code === 'CONFIG_INVALID', String(error));
    assert.ok(error.message.includes(settings.workflow), error.message);
    assert.match(error.message, /review\.generator\.nodes\.width: .* has no node "5"/);
    assert.match(error.message, /"4" CheckpointLoaderSimple/);
    return true;
  });
  // A named input that is a link, and an input the node does not have, are refused too.
  const { generator: linked } = await comfy(t, { generator: { nodes: { seed: { node: '3', input: 'model' } } } });
  await assert.rejects(linked.render({ ...base, checkpoint: { kind: 'checkpoint', name: 'base.safetensors' } }), /nodes\.seed: input "model" of node "3" .* is a link from node "4"/);
  const { generator: missing } = await comfy(t, { generator: { nodes: { seed: { node: '3', input: 'noise_seed' } } } });
  await assert.rejects(missing.render({ ...base, checkpoint: { kind: 'checkpoint', name: 'base.safetensors' } }), /nodes\.seed: node "3" \(KSampler\) .* has no input "noise_seed"/);
  const { generator: uiFormat } = await comfy(t, { workflow: { nodes: [], links: [] } });
  await assert.rejects(uiFormat.render({ ...base, checkpoint: { kind: 'checkpoint', name: 'base.safetensors' } }), /UI format.*Export \(API\)/);
  const { generator: noFile, dir } = await comfy(t, { generator: { workflow: 'gone.json' } });
  await assert.rejects(noFile.render({ ...base, checkpoint: { kind: 'checkpoint', name: 'base.safetensors' } }), (error: Error) => {
    assert.ok(error instanceof CelforgeError && error.code === 'FILE_NOT_FOUND');
    assert.ok(error.message.includes(path.join(dir, 'gone.json')), error.message);
    return true;
  });
  assert.equal(fake.prompts.length, 0);
});

test('an API key is sent as a Bearer header and never shows in errors', async (t) => {
  const { fake, generator, settings } = await comfy(t, { fake: { apiKey: API_KEY }, generator: { apiKey: API_KEY } });
  await generator.render({ ...base, checkpoint: { kind: 'checkpoint', name: 'base.safetensors' } });
  assert.ok(fake.requests.length >= 3);
  for (const request of fake.requests) assert.equal(request.headers.authorization, `Bearer ${API_KEY}`);
  const wrong = new ComfyUIGenerator({ ...settings, apiKey: `${API_KEY}x` });
  await assert.rejects(wrong.listCheckpoints(), (error: Error) => {
    assert.ok(error instanceof CelforgeError && error.code === 'CONFIG_INVALID');
    assert.match(error.message, /401/);
    assertHidden(error, API_KEY);
    return true;
  });
});

test('down, busy, 500, a queue that does not move and running out of GPU memory are GeneratorUnavailable; a malformed answer is a clear error', async (t) => {
  const { fake, generator, settings } = await comfy(t, { generator: { timeoutSeconds: 0.5, user: 'admin', password: API_KEY } });
  const request: RenderRequest = { ...base, checkpoint: { kind: 'checkpoint', name: 'base.safetensors' } };
  const down = new ComfyUIGenerator({ ...settings, url: await closedPortUrl() });
  await assert.rejects(down.render(request), (error: Error) => error instanceof GeneratorUnavailable && /ECONNREFUSED/.test(error.message) && error.message.includes(down.url));

  fake.mode = 'slow';
  await assert.rejects(generator.render(request), (error: Error) => {
    assert.ok(error instanceof GeneratorUnavailable, String(error));
    assert.match(error.message, /no picture within 0\.5 s/);
    return true;
  });
  assert.equal(fake.deleted.length, 1, 'the abandoned prompt was taken off the queue');
  assert.ok(fake.requests.some((item) => item.path === '/interrupt'));
  // The last poll cut short by the render's deadline is that deadline, not a server that stopped answering.
  fake.historyDelayMs = 2_000;
  await assert.rejects(generator.render(request), (error: Error) => {
    assert.ok(error instanceof GeneratorUnavailable, String(error));
    assert.match(error.message, /no picture within 0\.5 s/);
    return true;
  });
  assert.equal(fake.deleted.length, 2, 'taken off the queue as well');
  fake.historyDelayMs = 0;

  // The other failures are told by the answer, not by a deadline: a patient generator, so a busy machine cannot turn them into timeouts.
  const patient = createImageGenerator({ ...settings, timeoutSeconds: 30 }, { pollMs: 10 });
  fake.mode = 'oom';
  await assert.rejects(patient.render(request), (error: Error) => error instanceof GeneratorUnavailable && /OutOfMemoryError/.test(error.message));
  fake.mode = 'busy';
  await assert.rejects(patient.render(request), (error: Error) => error instanceof GeneratorUnavailable && /503/.test(error.message) && error.message.includes(fake.url));
  fake.mode = 'error';
  await assert.rejects(patient.listCheckpoints(), (error: Error) => error instanceof GeneratorUnavailable && /500/.test(error.message));
  fake.mode = 'malformed';
  await assert.rejects(patient.listCheckpoints(), (error: Error) => {
    assert.ok(error instanceof CelforgeError && error.code === 'GENERATOR_REFUSED', String(error));
    assert.match(error.message, /not JSON/);
    assertHidden(error, API_KEY);
    return true;
  });
  for (const item of fake.requests) assert.equal(item.headers.authorization, `Basic ${Buffer.from(`admin:${API_KEY}`).toString('base64')}`);
});

test('unload() posts /free {unload_models, free_memory}, which empties the GPU; the next prompt loads its checkpoint again', async (t) => {
  const { fake, generator } = await comfy(t);
  const v1 = { ...base, checkpoint: { kind: 'checkpoint' as const, name: 'celforge-v1.safetensors' } };
  const before = await generator.render(v1);
  await generator.render(v1);
  assert.deepEqual([fake.gpuModel, fake.loads], ['celforge-v1.safetensors', 1], 'loaded once for two renders');
  await generator.unload();
  const free = fake.requests.filter((request) => request.path === '/free');
  assert.equal(free.length, 1);
  assert.equal(free[0]!.method, 'POST');
  assert.deepEqual(free[0]!.json, { unload_models: true, free_memory: true });
  assert.equal(free[0]!.headers['content-type'], 'application/json', 'ComfyUI reads the body with request.json()');
  assert.equal(fake.gpuModel, null, 'the GPU is free');
  const after = await generator.render(v1);
  assert.deepEqual([fake.gpuModel, fake.loads], ['celforge-v1.safetensors', 2], 'the render after /free loaded the checkpoint again');
  assert.ok(after.equals(before));

  fake.mode = 'busy';
  await assert.rejects(generator.unload(), (error: Error) => error instanceof GeneratorUnavailable && /\/free answered 503/.test(error.message));
  await fake.stop();
  await assert.rejects(generator.unload(), GeneratorUnavailable);
});
