import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { CelforgeError } from '../../../src/errors.ts';
import { datasetConfigToml, parseSimpleToml, tomlString, type DatasetConfig } from '../../../src/stages/export/kohya-toml.ts';

const windowsDir = String.raw`C:\Users\me\My "Dataset" 2\x64\images`;
const config: DatasetConfig = {
  general: { enable_bucket: true, caption_extension: '.txt', shuffle_caption: true, keep_tokens: 2 },
  datasets: [
    {
      resolution: 512, batch_size: 4, min_bucket_reso: 256, max_bucket_reso: 1024, bucket_reso_steps: 64, bucket_no_upscale: false,
      subsets: [
        { image_dir: windowsDir, num_repeats: 10, class_tokens: 'celchar, cel style' },
        { image_dir: '/srv/データ/images', num_repeats: 1 },
      ],
    },
    {
      resolution: [768, 512], batch_size: 2, min_bucket_reso: 256, max_bucket_reso: 1536, bucket_reso_steps: 32, bucket_no_upscale: true,
      subsets: [{ image_dir: 'tab\there', num_repeats: 3 }],
    },
  ],
};

/** The per-character layout: keep_tokens in each subset, folder names with unicode, "+", parentheses and a quote. */
const perCharacter: DatasetConfig = {
  general: { enable_bucket: true, caption_extension: '.txt', shuffle_caption: true, keep_tokens: 1 },
  datasets: [{
    resolution: [1024, 1024], batch_size: 1, min_bucket_reso: 256, max_bucket_reso: 2048, bucket_reso_steps: 64, bucket_no_upscale: false,
    subsets: [
      { image_dir: '/data/set/images/scenery', num_repeats: 1, keep_tokens: 1, class_tokens: 'celchar' },
      { image_dir: '/data/set/images/characters_1/ツンデレ', num_repeats: 60, keep_tokens: 2, class_tokens: 'celchar, ツンデレ' },
      { image_dir: "/data/set/images/characters_2/o_brien-1a2b3c4d+saber_(fate)", num_repeats: 7, keep_tokens: 3, class_tokens: "celchar, o'brien, saber (fate)" },
    ],
  }],
};

test('the dataset config reads back as written', () => {
  assert.deepEqual(parseSimpleToml(datasetConfigToml(config)), config);
  assert.deepEqual(parseSimpleToml(datasetConfigToml(perCharacter)), perCharacter);
  assert.match(datasetConfigToml(perCharacter), /\n {2}\[\[datasets\.subsets\]\]\n {2}image_dir = '\/data\/set\/images\/characters_1\/ツンデレ'\n {2}num_repeats = 60\n {2}keep_tokens = 2\n {2}class_tokens = 'celchar, ツンデレ'\n/);
  assert.match(datasetConfigToml(perCharacter), /\n {2}class_tokens = "celchar, o'brien, saber \(fate\)"\n/);
});

test('the layout is the one in Kohya\'s config README', () => {
  const text = datasetConfigToml(config);
  assert.match(text, /^\[general\]\nenable_bucket = true\ncaption_extension = '\.txt'\nshuffle_caption = true\nkeep_tokens = 2\n/m);
  assert.match(text, /\n\[\[datasets\]\]\nresolution = 512\nbatch_size = 4\n/);
  assert.ok(text.includes(`\n  [[datasets.subsets]]\n  image_dir = '${windowsDir}'\n  num_repeats = 10\n`), text);
  assert.match(text, /\nresolution = \[768, 512\]\n/);
});

test('strings: literal where they can be, else basic with the short escapes; what toml 0.10.2 misreads is refused', () => {
  // Kohya's README writes Windows paths as literal strings: backslashes and double quotes as they are.
  assert.equal(tomlString('C:\\a "b"\\'), `'C:\\a "b"\\'`);
  assert.equal(tomlString(`C:\\it's "b"\\`), `"C:\\\\it's \\"b\\"\\\\"`);
  assert.equal(tomlString('a\nb\té'), String.raw`"a\nb\té"`);
  for (const value of [windowsDir, '\\', '\\\\u0041', 'end\\', '"', '"quoted"', 'é 漢字 🎞', `it's "q" \\u0041\\`, "a'b\nc", '', "'"]) {
    assert.equal(parseSimpleToml(`k = ${tomlString(value)}`).k, value);
  }
  const refused = (value: string) =>
    assert.throws(() => tomlString(value), (error: unknown) => error instanceof CelforgeError && error.code === 'CONFIG_INVALID' && error.message.includes(JSON.stringify(value)));
  refused('bell\u0007');
  refused('del\u007f');
  refused(`"it's"`);
});

test('the parser reads the TOML it is meant for: literal strings, floats, signs, comments', () => {
  assert.deepEqual(parseSimpleToml([
    '# comment',
    '[general]',
    String.raw`image_dir = 'C:\hoge' # Kohya's README writes Windows paths as literal strings`,
    'rate = 0.05',
    'big = -1.5e3',
    'n = +7',
    'empty = []',
    String.raw`u = "\u00e9\U0001F39E"`,
  ].join('\n')), { general: { image_dir: String.raw`C:\hoge`, rate: 0.05, big: -1500, n: 7, empty: [], u: 'é🎞' } });
});

test('the parser refuses what it does not know, with the line', () => {
  const refused = (text: string, pattern: RegExp) =>
    assert.throws(() => parseSimpleToml(text), (error: unknown) => error instanceof CelforgeError && error.code === 'CONFIG_INVALID' && pattern.test(error.message));
  refused('a = 1\na = 2', /line 2: key a is defined twice/);
  refused('[general]\n[general]', /line 2: table general is defined twice/);
  refused('a = {b = 1}', /line 1: unsupported value/);
  refused('a = """x"""', /multi-line strings/);
  refused('a = "x', /unterminated string/);
  refused(String.raw`a = "\x"`, /unknown escape/);
  refused('a = 1979-05-27', /unsupported value/);
  refused('a.b = 1', /expected key = value/);
  refused('a = 1 2', /unexpected text after the value/);
  refused('[[datasets.subsets]]', /needs a \[\[datasets\]\] before it/);
  refused('a = 01', /unsupported value/);
  refused('a = [1, 2', /arrays must close/);
  refused('a = ["x"]', /unsupported value/);
});

const python = spawnSync('python3', ['-c', 'import tomllib'], { encoding: 'utf8' });
test('a strict TOML 1.0 parser (Python tomllib) reads the same values', { skip: python.status !== 0 ? 'python3 with tomllib is not installed' : false }, () => {
  for (const written of [config, perCharacter]) {
    const result = spawnSync('python3', ['-c', 'import sys, json, tomllib; print(json.dumps(tomllib.loads(sys.stdin.read())))'], {
      input: datasetConfigToml(written), encoding: 'utf8',
    });
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), written);
  }
});
