import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { inspect } from 'node:util';
import sharp from 'sharp';
import { A1111Generator } from '../../src/adapters/a1111-generator.ts';
import { createImageGenerator, GeneratorUnavailable, type RenderRequest } from '../../src/adapters/image-generator.ts';
import { validateConfig } from '../../src/config/load.ts';
import { CelforgeError } from '../../src/errors.ts';
import { FakeA1111 } from '../fixtures/fake-a1111.ts';
import { closedPortUrl, modelColour, seedSpot } from '../fixtures/generator-picture.ts';

const PASSWORD = 'pa55-w0rd-Zq9!';

const base: Omit<RenderRequest, 'checkpoint'> = { prompt: 'circle, square', negativePrompt: 'lowres', seed: 1234, steps: 20, cfgScale: 7, sampler: 'Euler a', width: 64, height: 48 };

async function a1111(t: TestContext, options: Parameters<typeof FakeA1111.start>[0] = {}, config: { user?: string; password?: string; timeoutSeconds?: number; url?: string } = {}) {
  const fake = await FakeA1111.start({ checkpoints: ['base.safetensors', 'celforge-v1.safetensors'], loras: ['celforge-000001.safetensors'], ...options });
  t.after(() => fake.stop());
  const generator = new A1111Generator({ url: config.url ?? fake.url, timeoutSeconds: config.timeoutSeconds ?? 20, user: config.user, password: config.password });
  return { fake, generator };
}

async function pixel(png: Buffer, x: number, y: number): Promise<[number, number, number]> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const at = (y * info.width + x) * 3;
  return [data[at]!, data[at + 1]!, data[at + 2]!];
}

/** Nothing a log line or a printed error could carry may hold the secret. */
function assertHidden(error: unknown, secret: string) {
  const shown = [String(error), (error as Error).stack ?? '', inspect(error, { depth: 8 }), JSON.stringify(error)].join('\n');
  assert.ok(!shown.includes(secret), `the secret leaked into: ${shown}`);
  assert.ok(!shown.includes(Buffer.from(`admin:${secret}`).toString('base64')), `the Basic header leaked into: ${shown}`);
}

test('the factory builds the A1111 adapter from a validated config, and the config names a bad key', async (t) => {
  const { fake } = await a1111(t);
  const config = validateConfig({ review: { generator: { kind: 'a1111', url: fake.url } } }, 'test config', '/tmp');
  assert.equal(config.review.generator?.timeoutSeconds, 300);
  const generator = createImageGenerator(config.review.generator!);
  assert.ok(generator instanceof A1111Generator);
  assert.deepEqual(await generator.listCheckpoints(), ['base.safetensors', 'celforge-v1.safetensors']);
  assert.throws(
    () => validateConfig({ review: { generator: { kind: 'a1111', url: fake.url, user: 'admin' } } }, 'test config', '/tmp'),
    (error: Error) => /review\.generator\.password/.test(error.message) && /go together/.test(error.message),
  );
  assert.throws(() => validateConfig({ review: { generator: { kind: 'invoke', url: fake.url } } }, 'test config', '/tmp'), /review\.generator\.kind/);
  assert.throws(
    () => validateConfig({ review: { generator: { kind: 'a1111', url: 'ftp://x', password: PASSWORD, user: 'admin' } } }, 'test config', '/tmp'),
    (error: Error) => /review\.generator\.url/.test(error.message) && !error.message.includes(PASSWORD),
  );
});

test('each render selects its checkpoint with override_settings, restored afterwards, and the picture is that model\'s', async (t) => {
  const { fake, generator } = await a1111(t);
  const first = await generator.render({ ...base, checkpoint: { kind: 'checkpoint', name: 'celforge-v1.safetensors' } });
  const second = await generator.render({ ...base, checkpoint: { kind: 'checkpoint', name: 'base.safetensors' } });
  const [one, two] = fake.renders;
  assert.deepEqual(one!.override_settings, { sd_model_checkpoint: 'celforge-v1.safetensors' });
  assert.equal(one!.override_settings_restore_afterwards, true);
  assert.deepEqual(two!.override_settings, { sd_model_checkpoint: 'base.safetensors' });
  for (const [field, value] of Object.entries({ prompt: 'circle, square', negative_prompt: 'lowres', seed: 1234, steps: 20, cfg_scale: 7, sampler_name: 'Euler a', width: 64, height: 48 })) {
    assert.deepEqual(one![field], value, field);
  }
  assert.deepEqual((await sharp(first).metadata()).format, 'png');
  assert.deepEqual(await pixel(first, 1, 47), modelColour('celforge-v1.safetensors'));
  assert.deepEqual(await pixel(second, 1, 47), modelColour('base.safetensors'));
  const [sx, sy] = seedSpot(1234, 64, 48);
  assert.deepEqual(await pixel(first, sx + 2, sy + 2), [0, 0, 0]);
});

test('a checkpoint is found by its title or model name too, and sent by its name', async (t) => {
  const { fake, generator } = await a1111(t);
  await generator.render({ ...base, checkpoint: { kind: 'checkpoint', name: 'celforge-v1' } });
  assert.deepEqual(fake.renders[0]!.override_settings, { sd_model_checkpoint: 'celforge-v1.safetensors' });
});

test('seeds are honoured: the same request gives the same bytes, another seed other bytes', async (t) => {
  const { generator } = await a1111(t);
  const request: RenderRequest = { ...base, checkpoint: { kind: 'checkpoint', name: 'celforge-v1.safetensors' } };
  const a = await generator.render(request);
  const b = await generator.render(request);
  const c = await generator.render({ ...request, seed: 99 });
  assert.ok(a.equals(b));
  assert.ok(!a.equals(c));
});

test('a LoRA run appends <lora:name:weight> to the prompt and sends no checkpoint override', async (t) => {
  const { fake, generator } = await a1111(t);
  const plain = await generator.render({ ...base, checkpoint: { kind: 'checkpoint', name: 'base.safetensors' } });
  const withLora = await generator.render({ ...base, checkpoint: { kind: 'lora', name: 'celforge-000001.safetensors', weight: 0.8 } });
  const sent = fake.renders[1]!;
  assert.equal(sent.prompt, 'circle, square <lora:celforge-000001:0.8>');
  assert.equal(sent.override_settings, undefined);
  assert.ok(!plain.equals(withLora), 'the LoRA changed the picture');
  await generator.render({ ...base, checkpoint: { kind: 'lora', name: 'celforge-000001' } });
  assert.equal(fake.renders[2]!.prompt, 'circle, square <lora:celforge-000001:1>');
  assert.deepEqual(await generator.listCheckpoints('lora'), ['celforge-000001']);
});

test('a new checkpoint is listed after refresh, which calls refresh-checkpoints and refresh-loras', async (t) => {
  const { fake, generator } = await a1111(t);
  fake.addCheckpoint('celforge-v2.safetensors');
  fake.addLora('celforge-000002.safetensors');
  assert.ok(!(await generator.listCheckpoints()).includes('celforge-v2.safetensors'));
  await generator.refresh();
  const posts = fake.requests.filter((request) => request.method === 'POST').map((request) => request.path);
  assert.deepEqual(posts, ['/sdapi/v1/refresh-checkpoints', '/sdapi/v1/refresh-loras']);
  assert.deepEqual(await generator.listCheckpoints(), ['base.safetensors', 'celforge-v1.safetensors', 'celforge-v2.safetensors']);
  assert.deepEqual(await generator.listCheckpoints('lora'), ['celforge-000001', 'celforge-000002']);
  await generator.render({ ...base, checkpoint: { kind: 'checkpoint', name: 'celforge-v2.safetensors' } });
  assert.deepEqual(fake.renders[0]!.override_settings, { sd_model_checkpoint: 'celforge-v2.safetensors' });
  // With the Lora extension off (no refresh-loras route), checkpoints still refresh.
  fake.loraRoutes = false;
  await generator.refresh();
  await assert.rejects(generator.listCheckpoints('lora'), /GET .*\/sdapi\/v1\/loras answered 404/);
});

test('an unknown checkpoint or LoRA is refused before txt2img, which would render with the loaded model instead', async (t) => {
  const { fake, generator } = await a1111(t);
  await assert.rejects(generator.render({ ...base, checkpoint: { kind: 'checkpoint', name: 'celforge-v9.safetensors' } }), (error: Error) => {
    assert.ok(error instanceof CelforgeError && error.code === 'GENERATOR_REFUSED', String(error));
    assert.match(error.message, /celforge-v9\.safetensors/);
    assert.ok(error.message.includes(fake.url));
    assert.match(error.message, /"base\.safetensors", "celforge-v1\.safetensors"/);
    return true;
  });
  await assert.rejects(generator.render({ ...base, checkpoint: { kind: 'lora', name: 'nobody' } }), /LoRA "nobody"/);
  assert.equal(fake.renders.length, 0);
  // What the check prevents: the real API drops an unknown override and renders with the loaded model.
  const response = await fetch(`${fake.url}/sdapi/v1/txt2img`, { method: 'POST', body: JSON.stringify({ ...base, override_settings: { sd_model_checkpoint: 'celforge-v9' } }) });
  assert.equal(response.status, 200);
});

test('basic auth is sent, and neither the password nor the header shows in any error', async (t) => {
  const { fake, generator } = await a1111(t, { auth: { user: 'admin', password: PASSWORD } }, { user: 'admin', password: PASSWORD });
  await generator.render({ ...base, checkpoint: { kind: 'checkpoint', name: 'base.safetensors' } });
  const expected = `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}`;
  assert.ok(fake.requests.length >= 2);
  for (const request of fake.requests) assert.equal(request.headers.authorization, expected);

  const wrong = new A1111Generator({ url: fake.url, timeoutSeconds: 5, user: 'admin', password: `${PASSWORD}-old` });
  await assert.rejects(wrong.listCheckpoints(), (error: Error) => {
    assert.ok(error instanceof CelforgeError && error.code === 'CONFIG_INVALID');
    assert.match(error.message, /401/);
    assert.ok(error.message.includes(fake.url));
    assertHidden(error, `${PASSWORD}-old`);
    return true;
  });
  await assert.rejects(new A1111Generator({ url: fake.url, timeoutSeconds: 5 }).listCheckpoints(), /wants credentials/);

  // Credentials in the URL are used as Basic auth and left out of the URL shown.
  const inUrl = new A1111Generator({ url: fake.url.replace('http://', `http://admin:${encodeURIComponent(PASSWORD)}@`), timeoutSeconds: 5 });
  assert.equal(inUrl.url, fake.url);
  assert.deepEqual(await inUrl.listCheckpoints(), ['base.safetensors', 'celforge-v1.safetensors']);
  fake.mode = 'error';
  await assert.rejects(inUrl.listCheckpoints(), (error: Error) => {
    assert.ok(error instanceof GeneratorUnavailable);
    assertHidden(error, PASSWORD);
    assertHidden(error, encodeURIComponent(PASSWORD));
    return true;
  });
});

test('down, slow, 500 and 503 are GeneratorUnavailable naming the server; a malformed answer is a clear error', async (t) => {
  const down = new A1111Generator({ url: await closedPortUrl(), timeoutSeconds: 5, user: 'admin', password: PASSWORD });
  await assert.rejects(down.render({ ...base, checkpoint: { kind: 'checkpoint', name: 'base.safetensors' } }), (error: Error) => {
    assert.ok(error instanceof GeneratorUnavailable, String(error));
    assert.ok(error.message.includes(down.url));
    assert.match(error.message, /ECONNREFUSED/);
    assertHidden(error, PASSWORD);
    return true;
  });

  const { fake, generator } = await a1111(t, {}, { timeoutSeconds: 0.5, user: 'admin', password: PASSWORD });
  fake.mode = 'slow';
  await assert.rejects(generator.listCheckpoints(), (error: Error) => error instanceof GeneratorUnavailable && /no answer within 0\.5 s/.test(error.message));
  // The other failures are told by the answer, not by a deadline: a patient generator, so a busy machine cannot turn them into timeouts.
  const patient = new A1111Generator({ url: fake.url, timeoutSeconds: 30, user: 'admin', password: PASSWORD });
  fake.mode = 'busy';
  await assert.rejects(patient.refresh(), (error: Error) => error instanceof GeneratorUnavailable && /503/.test(error.message) && error.message.includes(fake.url));
  fake.mode = 'error';
  await assert.rejects(patient.listCheckpoints(), (error: Error) => error instanceof GeneratorUnavailable && /500/.test(error.message) && /CUDA out of memory/.test(error.message));
  fake.mode = 'malformed';
  await assert.rejects(patient.listCheckpoints(), (error: Error) => {
    assert.ok(error instanceof CelforgeError && error.code === 'GENERATOR_REFUSED', String(error));
    assert.match(error.message, /not JSON/);
    assert.ok(error.message.includes(fake.url));
    assertHidden(error, PASSWORD);
    return true;
  });
});

test('a sampler the server does not have is a clear error with its answer', async (t) => {
  const { generator } = await a1111(t);
  await assert.rejects(generator.render({ ...base, sampler: 'euler_ancestral', checkpoint: { kind: 'checkpoint', name: 'base.safetensors' } }), (error: Error) => {
    assert.ok(error instanceof CelforgeError && error.code === 'GENERATOR_REFUSED');
    assert.match(error.message, /404 .*Sampler not found/);
    return true;
  });
});

test('unload() takes the model off the GPU (unload-checkpoint); the next render moves it back first (reload-checkpoint), as does a new adapter\'s first', async (t) => {
  const { fake, generator } = await a1111(t);
  const v1 = { ...base, checkpoint: { kind: 'checkpoint' as const, name: 'celforge-v1.safetensors' } };
  const before = await generator.render(v1);
  assert.equal(fake.gpuModel, 'celforge-v1.safetensors');
  await generator.unload();
  assert.equal(fake.gpuModel, null, 'the GPU is free');
  const loads = fake.loads;
  const after = await generator.render(v1);
  assert.equal(fake.gpuModel, 'celforge-v1.safetensors', 'the render loaded the model again');
  assert.ok(fake.loads > loads);
  assert.ok(after.equals(before), 'the same picture as before the unload');
  await generator.render(v1);
  const posts = fake.requests.filter((request) => request.method === 'POST').map((request) => request.path.replace('/sdapi/v1/', ''));
  assert.deepEqual(posts, ['reload-checkpoint', 'txt2img', 'unload-checkpoint', 'reload-checkpoint', 'txt2img', 'txt2img'], 'reload only before the first render and the first after unload');
  assert.deepEqual(fake.requests.find((request) => request.path === '/sdapi/v1/unload-checkpoint')!.body, '', 'no body, as the route takes none');

  // Another adapter (the next review) cannot know the model was unloaded: it moves it back before its first render.
  await generator.unload();
  const next = new A1111Generator({ url: fake.url, timeoutSeconds: 20 });
  await next.render(v1);
  assert.deepEqual(fake.requests.slice(-2).map((request) => request.path), ['/sdapi/v1/reload-checkpoint', '/sdapi/v1/txt2img']);
  assert.equal(fake.gpuModel, 'celforge-v1.safetensors');

  fake.failUnload = true;
  await assert.rejects(next.unload(), (error: Error) => error instanceof GeneratorUnavailable && /unload-checkpoint answered 500/.test(error.message));
  fake.mode = 'busy';
  await assert.rejects(next.unload(), GeneratorUnavailable);
});
