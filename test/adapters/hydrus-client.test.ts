import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { HydrusClient, HydrusRefused, HydrusUnreachable, METADATA_BATCH, type HydrusConfig } from '../../src/adapters/hydrus-client.ts';
import { CelforgeError } from '../../src/errors.ts';
import { FakeHydrus, PERMISSION, type FakeHydrusOptions } from '../fixtures/fake-hydrus.ts';
import { tempDir } from '../helpers.ts';

const MY_TAGS = '6c6f63616c2074616773';
const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const otherKey = 'ab'.repeat(32);
const thisFile = fileURLToPath(import.meta.url);

async function hydrus(t: TestContext, options: FakeHydrusOptions = {}, config: Partial<HydrusConfig> = {}) {
  const fake = await FakeHydrus.start(options);
  t.after(() => fake.stop());
  const client = new HydrusClient({ url: fake.url, accessKey: fake.accessKey, tagService: 'my tags', ...config });
  return { fake, client };
}

function writeFile(dir: string, name: string, content: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, content);
  return file;
}

/** The key must not appear anywhere a log line or a printed error could carry it. */
function assertKeyAbsent(error: unknown, accessKey: string) {
  const shown = [String(error), (error as Error).stack ?? '', inspect(error, { depth: 5 }), JSON.stringify(error)].join('\n');
  assert.ok(!shown.toLowerCase().includes(accessKey.toLowerCase()), `the access key leaked into: ${shown}`);
}

test('the API version comes back, and the key is verified', async (t) => {
  const { client } = await hydrus(t);
  assert.deepEqual(await client.apiVersion(), { version: 81, hydrusVersion: 645 });
  const access = await client.verifyAccessKey();
  assert.equal(access.permitsEverything, true);
  assert.ok(access.basicPermissions.includes(PERMISSION.editTags));
});

test('an unknown key is refused for good, and never shown', async (t) => {
  const { fake } = await hydrus(t);
  const client = new HydrusClient({ url: fake.url, accessKey: otherKey, tagService: 'my tags' });
  const error = await client.tagServiceKey().catch((caught: unknown) => caught);
  assert.ok(error instanceof HydrusRefused, String(error));
  assert.equal(error.status, 403);
  assert.equal(error.retryable, false);
  assert.equal(error.url, `${fake.url}/get_services`);
  assert.match(error.message, /GET http:\/\/127\.0\.0\.1:\d+\/get_services/);
  assert.match(error.message, /Did not find an entry for that access key!/);
  assertKeyAbsent(error, otherKey);
  assert.ok(!inspect(client, { showHidden: true }).includes(otherKey), 'the client prints its key');
  assert.equal(fake.requests[0].headers['hydrus-client-api-access-key'], otherKey, 'the key goes in the header');
});

test('a key without the tag permission is refused with 403', async (t) => {
  const searchOnly = 'cd'.repeat(32);
  const { fake } = await hydrus(t, { keys: { [searchOnly]: [PERMISSION.searchFiles] } });
  const client = new HydrusClient({ url: fake.url, accessKey: searchOnly, tagService: 'my tags' });
  const error = await client.addTags([sha256('x')], ['1girl'], []).catch((caught: unknown) => caught);
  assert.ok(error instanceof HydrusRefused, String(error));
  assert.equal(error.status, 403);
  assert.equal(error.retryable, false);
  assert.match(error.message, /add_tags/);
});

test('a key that is not 64 hex characters is a configuration error that does not repeat it', () => {
  const typo = `${'ab'.repeat(31)}a\n`;
  assert.throws(
    () => new HydrusClient({ url: 'http://127.0.0.1:45869', accessKey: typo, tagService: 'my tags' }),
    (error: unknown) => error instanceof CelforgeError && error.code === 'CONFIG_INVALID' && !error.message.includes(typo.trim()),
  );
  assert.throws(
    () => new HydrusClient({ url: 'localhost:45869', accessKey: otherKey, tagService: 'my tags' }),
    (error: unknown) => error instanceof CelforgeError && error.code === 'CONFIG_INVALID' && /http/.test(error.message),
  );
});

test('the same file twice: imported, then already in the database', async (t) => {
  const { fake, client } = await hydrus(t);
  const file = writeFile(tempDir(t), 'frame.png', 'pixels of frame 1');
  const first = await client.addFile(file);
  assert.deepEqual(first, { hash: sha256('pixels of frame 1'), status: 'imported' });
  assert.equal(fake.files.get(first.hash!)?.bytes.toString(), 'pixels of frame 1');
  assert.equal(fake.requests.at(-1)?.headers['content-type'], 'application/octet-stream');
  assert.deepEqual(await client.addFile(file), { hash: first.hash, status: 'already' });
  assert.equal(fake.files.size, 1);
});

test('a file can be sent by path, and every import status is told apart', async (t) => {
  const { fake, client } = await hydrus(t);
  const dir = tempDir(t);
  const byPath = await client.addFile(writeFile(dir, 'b.png', 'frame b'), { send: 'path' });
  assert.deepEqual(byPath, { hash: sha256('frame b'), status: 'imported' });
  assert.equal(fake.requests.at(-1)?.headers['content-type'], 'application/json');

  const deleted = writeFile(dir, 'c.png', 'frame c');
  fake.deleteFile(sha256('frame c'));
  assert.equal((await client.addFile(deleted)).status, 'deleted');

  const empty = await client.addFile(writeFile(dir, 'empty.png', ''));
  assert.equal(empty.status, 'failed');
  assert.equal(empty.hash, sha256(''));
  assert.match(empty.note ?? '', /empty/);

  await assert.rejects(client.addFile(path.join(dir, 'gone.png')), (error: unknown) => error instanceof CelforgeError && error.code === 'FILE_NOT_FOUND');
  await assert.rejects(
    client.addFile(path.join(dir, 'gone.png'), { send: 'path' }),
    (error: unknown) => error instanceof HydrusRefused && error.status === 400 && error.message.includes('gone.png') && /does not exist/.test(error.message),
  );
});

test('tags added and removed read back; removed ones are deleted', async (t) => {
  const { fake, client } = await hydrus(t);
  const dir = tempDir(t);
  const a = (await client.addFile(writeFile(dir, 'a.png', 'a'))).hash!;
  const b = (await client.addFile(writeFile(dir, 'b.png', 'b'))).hash!;

  await client.addTags([a, b], ['1girl', 'Blue  Hair', 'series:fate'], []);
  await client.addTags([a], ['smile'], ['1girl']);
  const tags = await client.tagsOf([a, b]);
  assert.deepEqual(tags.get(a), { current: ['blue hair', 'series:fate', 'smile'], deleted: ['1girl'] });
  assert.deepEqual(tags.get(b), { current: ['1girl', 'blue hair', 'series:fate'], deleted: [] });
  assert.deepEqual(fake.tagsOn('my tags', a), tags.get(a));
  assert.deepEqual(fake.tagsOn('downloader tags', a), { current: [], deleted: [] }, 'only the configured service is written');

  const second = fake.requestsTo('/add_tags/add_tags')[1];
  assert.equal(second.headers['content-type'], 'application/json');
  assert.deepEqual(JSON.parse(second.body.toString()), { hashes: [a], service_keys_to_actions_to_tags: { [MY_TAGS]: { '0': ['smile'], '1': ['1girl'] } } });

  await client.addTags([a], ['1girl'], []);
  assert.deepEqual((await client.tagsOf([a])).get(a), { current: ['1girl', 'blue hair', 'series:fate', 'smile'], deleted: [] });
});

test('emoticon tags: Hydrus stores ":d" as "::d", and the client sends and reads them as ":d"', async (t) => {
  const { fake, client } = await hydrus(t);
  const a = (await client.addFile(writeFile(tempDir(t), 'a.png', 'a'))).hash!;

  await client.addTags([a], [':d', ':o', ':3', ':weird:stuff', '1girl'], []);
  assert.deepEqual(fake.tagsOn('my tags', a).current, ['::3', '::d', '::o', ':weird:stuff', '1girl'].sort((x, y) => x.localeCompare(y, 'en', { numeric: true })));
  const sent = JSON.parse(fake.requestsTo('/add_tags/add_tags')[0].body.toString());
  assert.deepEqual(sent.service_keys_to_actions_to_tags[MY_TAGS]['0'], ['::d', '::o', '::3', ':weird:stuff', '1girl']);
  assert.deepEqual((await client.tagsOf([a])).get(a)?.current.sort(), [':3', ':d', ':o', ':weird:stuff', '1girl'].sort());

  await client.addTags([a], [], [':o']);
  assert.deepEqual(fake.tagsOn('my tags', a).deleted, ['::o']);
  assert.deepEqual((await client.tagsOf([a])).get(a)?.deleted, [':o']);
  assert.deepEqual(await client.searchFiles([':d']), [a], 'Hydrus cleans search tags by the same rule');
});

test('the fake cleans tags as HydrusTags.CleanTag does, whoever sends them', async (t) => {
  const { fake } = await hydrus(t);
  const hash = sha256('x');
  // " :p": the space hides the colon from the doubling rule, so Hydrus reads an empty namespace and keeps "p"
  const tags = [':D', '::d', ':3', ' :p', ':weird:stuff', 'Series : Fate', '-flower', 'system:wew', 'blue \t eyes', 'empty:', ':'];
  const response = await fetch(`${fake.url}/add_tags/add_tags`, {
    method: 'POST',
    headers: { 'Hydrus-Client-API-Access-Key': fake.accessKey, 'Content-Type': 'application/json' },
    body: JSON.stringify({ hash, service_keys_to_tags: { [MY_TAGS]: tags } }),
  });
  assert.equal(response.status, 200);
  assert.deepEqual(fake.tagsOn('my tags', hash).current.sort(), ['::3', '::d', ':weird:stuff', 'blue eyes', 'flower', 'p', 'series:fate', 'wew'].sort());
});

test('search: every tag must match, and "-tag" excludes', async (t) => {
  const { client } = await hydrus(t);
  const dir = tempDir(t);
  const hashes = [];
  for (const [name, tags] of [
    ['one', ['solo', 'smile']],
    ['two', ['solo', 'night']],
    ['three', ['smile', 'night']],
  ] as const) {
    const { hash } = await client.addFile(writeFile(dir, `${name}.png`, name));
    await client.addTags([hash!], [...tags], []);
    hashes.push(hash!);
  }
  const [one, two, three] = hashes;
  assert.deepEqual((await client.searchFiles(['solo'])).sort(), [one, two].sort());
  assert.deepEqual(await client.searchFiles(['solo', 'smile']), [one]);
  assert.deepEqual(await client.searchFiles(['solo', '-night']), [one]);
  assert.deepEqual(await client.searchFiles(['-solo', 'night']), [three]);
  assert.deepEqual(await client.searchFiles(['missing']), []);
  assert.deepEqual(await client.searchFiles([]), [], 'an empty search matches nothing, as in Hydrus');
});

test('file metadata is asked for in batches, and unknown hashes are left out', async (t) => {
  const { fake, client } = await hydrus(t);
  const tagged = Array.from({ length: METADATA_BATCH * 2 + 10 }, (_, i) => sha256(`frame ${i}`));
  await client.addTags(tagged, ['batch'], []);
  const unknown = sha256('never seen');
  const tags = await client.tagsOf([...tagged, unknown, tagged[0].toUpperCase()]);
  assert.equal(tags.size, tagged.length);
  assert.deepEqual(tags.get(tagged.at(-1)!), { current: ['batch'], deleted: [] });
  assert.equal(tags.has(unknown), false);
  const batches = fake.requestsTo('/get_files/file_metadata').map((request) => (JSON.parse(request.query.get('hashes') ?? '[]') as string[]).length);
  assert.deepEqual(batches, [METADATA_BATCH, METADATA_BATCH, 11]);
});

test('a busy Hydrus is a refusal worth retrying', async (t) => {
  const { fake, client } = await hydrus(t);
  fake.busy = true;
  const error = await client.apiVersion().catch((caught: unknown) => caught);
  assert.ok(error instanceof HydrusRefused, String(error));
  assert.equal(error.status, 503);
  assert.equal(error.retryable, true);
  assert.match(error.message, /busy/);
  fake.busy = false;
  assert.equal((await client.apiVersion()).version, 81);
});

test('a stopped Hydrus is unreachable, and the key is not in the error', async (t) => {
  const { fake, client } = await hydrus(t);
  await fake.stop();
  const error = await client.addFile(thisFile).catch((caught: unknown) => caught);
  assert.ok(error instanceof HydrusUnreachable, String(error));
  assert.equal(error.retryable, true);
  assert.equal(error.url, `${fake.url}/add_files/add_file`);
  assert.ok(error.message.includes(`POST ${fake.url}/add_files/add_file (${thisFile}): connect ECONNREFUSED`), error.message);
  assertKeyAbsent(error, fake.accessKey);
});

test('a Hydrus closed between two requests is unreachable too', async (t) => {
  const { fake, client } = await hydrus(t);
  await client.apiVersion();
  await fake.stop();
  // the kept-alive connection is gone: "other side closed" or ECONNREFUSED, depending on timing
  await assert.rejects(client.apiVersion(), HydrusUnreachable);
});

test('a Hydrus that does not answer in time is unreachable', async (t) => {
  const { fake, client } = await hydrus(t, {}, { timeoutMs: 100 });
  fake.stall = true;
  const error = await client.apiVersion().catch((caught: unknown) => caught);
  assert.ok(error instanceof HydrusUnreachable, String(error));
  assert.match(error.message, /no answer within 100 ms/);
});

test('the tag service is found by name, once', async (t) => {
  const { fake, client } = await hydrus(t);
  assert.equal(await client.tagServiceKey(), MY_TAGS);
  assert.equal(await client.tagServiceKey(), MY_TAGS);
  assert.equal(fake.requestsTo('/get_services').length, 1);
  const byKey = new HydrusClient({ url: fake.url, accessKey: fake.accessKey, tagService: fake.serviceKey('downloader tags') });
  assert.equal(await byKey.tagServiceKey(), fake.serviceKey('downloader tags'));
});

test('the tag service is found in both generations of /get_services: services_v2 and the legacy services dict', async (t) => {
  for (const servicesForms of [['services', 'services_v2'], ['services_v2'], ['services']] as const) {
    const { fake, client } = await hydrus(t, { servicesForms: [...servicesForms] });
    assert.equal(await client.tagServiceKey(), MY_TAGS, servicesForms.join(' and '));
    const byKey = new HydrusClient({ url: fake.url, accessKey: fake.accessKey, tagService: fake.serviceKey('downloader tags').toUpperCase() });
    assert.equal(await byKey.tagServiceKey(), fake.serviceKey('downloader tags'), servicesForms.join(' and '));
    await assert.rejects(
      new HydrusClient({ url: fake.url, accessKey: fake.accessKey, tagService: 'example tag repo' }).tagServiceKey(),
      /"example tag repo" is a hydrus tag repository, not a local tag service/,
    );
  }
  const { client } = await hydrus(t, { servicesForms: [] });
  await assert.rejects(client.tagServiceKey(), (error: unknown) => {
    assert.ok(error instanceof HydrusRefused, String(error));
    assert.match(error.message, /neither a "services_v2" list nor a "services" object/);
    return true;
  });
});

test('services_v2 is read when both forms are sent', async () => {
  const accessKey = 'cd'.repeat(32);
  // Hydrus >= v668 sends both; here they disagree, to show which one is read.
  const both = (async () =>
    Response.json({
      services: { '6c6f63616c2074616773': { name: 'old name', type: 5, type_pretty: 'local tag domain' } },
      services_v2: [{ name: 'my tags', service_key: '6c6f63616c2074616773', type: 5, type_pretty: 'local tag domain' }],
      version: 95,
      hydrus_version: 682,
    })) as typeof fetch;
  const client = new HydrusClient({ url: 'http://127.0.0.1:45869', accessKey, tagService: 'my tags' }, both);
  assert.equal(await client.tagServiceKey(), MY_TAGS);
});

test('an unknown tag service name lists the local tag services', async (t) => {
  const { fake } = await hydrus(t);
  const named = (tagService: string) => new HydrusClient({ url: fake.url, accessKey: fake.accessKey, tagService }).tagServiceKey();
  await assert.rejects(named('my tagz'), (error: unknown) => {
    assert.ok(error instanceof CelforgeError && error.code === 'CONFIG_INVALID', String(error));
    assert.match(error.message, /no service named "my tagz"/);
    assert.match(error.message, /"my tags", "downloader tags"/);
    assert.doesNotMatch(error.message, /example tag repo"?,|all known tags/);
    return true;
  });
  await assert.rejects(named('example tag repo'), /"example tag repo" is a hydrus tag repository, not a local tag service/);
});

test('what Hydrus says in a refusal is kept, even as plain text, with the key blanked', async () => {
  const accessKey = 'ef'.repeat(32);
  const oldHydrus = (async () => new Response(`Did not find an entry for that access key! ${accessKey}`, { status: 403, headers: { 'Content-Type': 'text/html' } })) as typeof fetch;
  const client = new HydrusClient({ url: 'http://hydrus.lan:45869/', accessKey, tagService: 'my tags' }, oldHydrus);
  const error = await client.verifyAccessKey().catch((caught: unknown) => caught);
  assert.ok(error instanceof HydrusRefused, String(error));
  assert.equal(error.url, 'http://hydrus.lan:45869/verify_access_key');
  assert.match(error.message, /403 "Did not find an entry for that access key! \[access key\]"/);
  assert.match(error.body, /\[access key\]/);
  assertKeyAbsent(error, accessKey);
});

test('a request Hydrus cannot read is a 400 naming the problem', async (t) => {
  const { client } = await hydrus(t);
  const error = await client.addTags(['abc123'], ['solo'], []).catch((caught: unknown) => caught);
  assert.ok(error instanceof HydrusRefused, String(error));
  assert.equal(error.status, 400);
  assert.equal(error.retryable, false);
  assert.match(error.message, /BadRequestException "Sorry, one of the given hashes was the wrong length!/);
});

test('the fake checks requests as Hydrus does', async (t) => {
  const { fake } = await hydrus(t);
  const call = async (endpoint: string, init: RequestInit = {}, key: string | null = fake.accessKey) => {
    const headers = new Headers(init.headers);
    if (key) headers.set('Hydrus-Client-API-Access-Key', key);
    const response = await fetch(fake.url + endpoint, { ...init, headers });
    const text = await response.text();
    return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : null };
  };
  const json = (body: unknown): RequestInit => ({ method: 'POST', headers: { 'Content-Type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });

  assert.deepEqual(await call('/get_services', {}, null), {
    status: 401,
    body: { error: 'No access key or session key provided!', exception_type: 'MissingCredentialsException', status_code: 401, version: 81, hydrus_version: 645 },
  });
  assert.equal((await call('/get_services', {}, 'not hex')).status, 400);
  assert.equal((await call('/add_tags/add_tags', json('{"hashes": ['))).status, 400);
  assert.match(String((await call('/add_tags/add_tags', json({ service_keys_to_tags: { [MY_TAGS]: ['x'] } }))).body?.error), /Please include some files/);
  assert.match(String((await call('/add_tags/add_tags', json({ hash: sha256('x') }))).body?.error), /Need a service_keys_to_tags/);
  assert.equal((await call('/add_tags/add_tags', json({ hash: sha256('x'), service_keys_to_actions_to_tags: { [MY_TAGS]: { '2': ['x'] } } }))).status, 400);
  assert.deepEqual(await call('/add_tags/add_tags', json({ hash: sha256('x'), service_keys_to_tags: { [MY_TAGS]: ['x'] } })), { status: 200, body: null });
  assert.equal((await call('/add_files/add_file', { method: 'POST' })).status, 400, 'no bytes and no path');
  assert.equal((await call('/get_files/search_files?tags=%5B%22x')).status, 400);
  assert.equal((await call('/get_files/file_metadata')).status, 400);
  assert.equal((await call('/get_files/search_files?tags=%5B%5D', { method: 'POST' })).status, 404);
  const metadata = await call(`/get_files/file_metadata?hashes=${encodeURIComponent(JSON.stringify([sha256('x')]))}`);
  const row = (metadata.body?.metadata as Array<{ tags: Record<string, { storage_tags: unknown; display_tags: unknown }> }>)[0];
  assert.deepEqual(row.tags[MY_TAGS].storage_tags, { '0': ['x'] });
  assert.ok(metadata.body?.services, 'the services object comes by default');
  assert.deepEqual((await call(`/get_service?service_name=${encodeURIComponent('my tags')}`)).body?.service, {
    name: 'my tags',
    type: 5,
    type_pretty: 'local tag service',
    service_key: MY_TAGS,
  });
  assert.equal((await call('/get_service?service_name=nope')).status, 404);
});
