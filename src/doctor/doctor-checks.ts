/**
 * `celforge doctor`'s checks: each looks at one thing the daemon needs and
 * says OK, or what is wrong and what to do. A check never throws; one that
 * cannot run says why.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { realDiskSpace } from '../adapters/disk.ts';
import { resolveFfmpegBinaries } from '../adapters/ffmpeg-binaries.ts';
import { sha256Of } from '../adapters/file-hash.ts';
import { desktopSessionAvailable } from '../adapters/notify-channels.ts';
import { cudaStatus, providerLoads } from '../adapters/onnx-providers.ts';
import type { Config } from '../config/schema.ts';
import { formatSize } from '../config/size.ts';
import { errorMessage } from '../errors.ts';
import { BUNDLED_MANIFEST, loadManifest, modelFilePath, shippedModelMissing, type ModelEntry } from '../models/manifest.ts';
import { detectorModelId } from '../stages/faces/face-detector.ts';

const run = promisify(execFile);

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface CheckResult {
  name: string;
  status: CheckStatus;
  detail: string;
}

const ok = (name: string, detail: string): CheckResult => ({ name, status: 'ok', detail });
const warn = (name: string, detail: string): CheckResult => ({ name, status: 'warn', detail });
const fail = (name: string, detail: string): CheckResult => ({ name, status: 'fail', detail });

/** Blu-ray video codecs. */
const DECODERS = ['h264', 'hevc', 'mpeg2video', 'vc1'];

export async function ffmpegChecks(config: Config): Promise<CheckResult[]> {
  let binaries;
  try {
    binaries = resolveFfmpegBinaries(config.ffmpeg);
  } catch (error) {
    return [fail('ffmpeg', `${errorMessage(error)}; fix ffmpeg.ffmpegPath / ffmpeg.ffprobePath, or remove them to use the system's or the bundled ones`)];
  }
  const results: CheckResult[] = [];
  for (const [name, binary] of [['ffmpeg', binaries.ffmpeg], ['ffprobe', binaries.ffprobe]] as const) {
    try {
      const { stdout } = await run(binary, ['-version'], { timeout: 15_000 });
      const version = stdout.split('\n')[0]!.replace(/ Copyright.*/, '');
      if (name === 'ffprobe') {
        results.push(ok(name, `${version} (${binaries.source.ffprobe}: ${binary})`));
        continue;
      }
      const { stdout: decoders } = await run(binary, ['-hide_banner', '-decoders'], { timeout: 15_000 });
      const missing = DECODERS.filter((codec) => !new RegExp(`^\\s*V\\S*\\s+${codec}\\s`, 'm').test(decoders));
      results.push(missing.length
        ? fail(name, `${version}: no decoder for ${missing.join(', ')} (Blu-ray codecs); use an ffmpeg build that has them (ffmpeg.ffmpegPath)`)
        : ok(name, `${version} (${binaries.source.ffmpeg}: ${binary}); decodes ${DECODERS.join(', ')}`));
    } catch (error) {
      results.push(fail(name, `${binary} does not run (${errorMessage(error).split('\n')[0]}); install ffmpeg or set ffmpeg.${name}Path`));
    }
  }
  return results;
}

export async function diskChecks(config: Config): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const parent = existsSync(config.library) ? config.library : path.dirname(config.library);
  try {
    accessSync(parent, constants.W_OK);
    results.push(ok('library', `${config.library}${existsSync(config.library) ? '' : ' (created at start)'}`));
  } catch {
    results.push(fail('library', `${config.library}: cannot write there; fix its permissions or set library`));
  }
  try {
    const free = await realDiskSpace.freeBytes(config.library);
    const reserve = config.disk.reserve;
    results.push(free > reserve
      ? ok('disk', `${formatSize(free)} free, reserve ${formatSize(reserve)}`)
      : fail('disk', `${formatSize(free)} free is under the reserve of ${formatSize(reserve)}: free some space or lower disk.reserve; nothing is extracted until then`));
  } catch (error) {
    results.push(fail('disk', `free space of ${config.library} unknown (${errorMessage(error)})`));
  }
  for (const folder of config.inbox) {
    if (!existsSync(folder)) results.push(config.watch.waitForMount ? fail('inbox', `${folder} is not there: mount the share (celforge waits for it)`) : warn('inbox', `${folder} does not exist yet (created at start)`));
    else if (!statSync(folder).isDirectory()) results.push(fail('inbox', `${folder} is not a folder`));
    else results.push(ok('inbox', folder));
  }
  return results;
}

export async function modelChecks(config: Config): Promise<CheckResult[]> {
  let manifest: ModelEntry[];
  const manifestFile = config.models.manifest ?? BUNDLED_MANIFEST;
  try {
    manifest = await loadManifest(manifestFile);
  } catch (error) {
    return [fail('models', errorMessage(error))];
  }
  // The characters stage needs its model only where there are crops: faces found, crops cut.
  const characters = config.characters.enabled && config.crops.enabled && config.faces.detector !== 'none' ? config.characters.model : null;
  const wanted = [detectorModelId(config), characters, ...config.tags.taggers].filter((id): id is string => id !== null);
  const results: CheckResult[] = [];
  for (const id of wanted) {
    const entry = manifest.find((model) => model.id === id);
    if (!entry) {
      results.push(fail(`model ${id}`, `not in ${manifestFile}; fix faces.model / characters.model / tags.taggers`));
      continue;
    }
    const problems: string[] = [];
    let unpinned = 0;
    for (const file of entry.files) {
      const target = modelFilePath(config.models.dir, entry, file);
      if (!existsSync(target)) {
        problems.push(`${file.name} missing`);
        continue;
      }
      if (file.size !== null && statSync(target).size !== file.size) problems.push(`${file.name} is ${statSync(target).size} bytes, not ${file.size}`);
      else if (file.sha256 === null) unpinned += 1;
      else if ((await sha256Of(target)) !== file.sha256) problems.push(`${file.name} fails its checksum`);
    }
    results.push(problems.length && entry.shipped
      ? fail(`model ${id}`, `${problems.join('; ')}: ${shippedModelMissing(entry).message}`)
      : problems.length
      ? fail(`model ${id}`, `${problems.join('; ')}: run "celforge models fetch ${id}"${problems.some((p) => p.includes('checksum') || p.includes('bytes')) ? ` after removing ${path.join(config.models.dir, id)}` : ''}`)
      : ok(`model ${id}`, `present${unpinned ? ' (no pinned checksum to compare)' : ', checksums match'}`));
  }
  return results;
}

export async function providerChecks(config: Config): Promise<CheckResult[]> {
  const { providers } = config.inference;
  const cuda = await cudaStatus();
  const fallback = providers.includes('cuda') ? 'celforge falls back to CPU' : 'celforge uses the CPU';
  const results = [cuda.kind === 'loads'
    ? ok('onnx cuda', `loads${providers.includes('cuda') || providers.includes('auto') ? '; models run on the GPU' : ', but inference.providers does not ask for it'}`)
    : cuda.kind === 'unsupported' ? ok('onnx cuda', cuda.detail)
    : warn('onnx cuda', `does not load: ${cuda.detail}; ${fallback}`)];
  if (providers.includes('auto')) results.push(ok('onnx providers', `auto: ${cuda.kind === 'loads' ? 'cuda, cpu' : 'cpu'}`));
  for (const provider of providers.filter((name) => name !== 'auto' && name !== 'cuda')) {
    const problem = await providerLoads(provider);
    if (!problem) results.push(ok(`onnx ${provider}`, 'loads'));
    else if (provider === 'cpu') results.push(fail(`onnx ${provider}`, `does not load (${problem}); reinstall onnxruntime-node`));
    else results.push(warn(`onnx ${provider}`, `does not load (${problem}); celforge falls back to CPU`));
  }
  return results;
}

export async function notificationChecks(config: Config): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  if (config.notify.desktop) {
    results.push(desktopSessionAvailable()
      ? ok('notify desktop', 'a desktop session is available')
      : warn('notify desktop', 'no desktop session (no D-Bus session bus or display): desktop notifications are skipped; configure notify.ntfy or notify.webhook'));
  }
  const endpoints = [['notify ntfy', config.notify.ntfy?.url], ['notify webhook', config.notify.webhook?.url]] as const;
  for (const [name, url] of endpoints) {
    if (!url) continue;
    const origin = new URL(url).origin;
    try {
      await fetch(origin, { method: 'HEAD', signal: AbortSignal.timeout(5000) });
      results.push(ok(name, `${origin} answers`));
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause?.code ?? errorMessage(error);
      results.push(fail(name, `${origin} cannot be reached (${cause}); check the address or the network`));
    }
  }
  return results;
}

export async function trainingChecks(config: Config): Promise<CheckResult[]> {
  const train = config.train;
  if (!train) return [ok('training', 'not configured')];
  const results: CheckResult[] = [];
  const script = path.join(train.sdScripts, train.script);
  if (!existsSync(train.sdScripts)) results.push(fail('kohya', `${train.sdScripts} does not exist: set train.sdScripts to your sd-scripts folder`));
  else if (!existsSync(script)) results.push(fail('kohya', `${script} is missing: set train.script to a script in ${train.sdScripts}`));
  else results.push(ok('kohya', script));
  const launcher = train.launcher[0]!;
  const found = await which(launcher);
  results.push(found ? ok('kohya launcher', found) : fail('kohya launcher', `${launcher} is not found: install it (pip install accelerate in Kohya's venv) or set train.launcher to its full path`));
  const python = [path.join(train.sdScripts, 'venv', 'bin', 'python'), path.join(train.sdScripts, 'venv', 'Scripts', 'python.exe')].find(existsSync) ?? (await which('python3')) ?? (await which('python'));
  if (!python) results.push(fail('kohya python', `no Python found (looked in ${path.join(train.sdScripts, 'venv')} and on PATH): set up Kohya's venv`));
  else {
    try {
      const { stdout, stderr } = await run(python, ['--version'], { timeout: 15_000 });
      results.push(ok('kohya python', `${(stdout || stderr).trim()} (${python})`));
    } catch (error) {
      results.push(fail('kohya python', `${python} does not run (${errorMessage(error).split('\n')[0]})`));
    }
  }
  results.push((await which('nvidia-smi')) ? ok('gpu', 'nvidia-smi found') : warn('gpu', 'nvidia-smi not found: GPU use cannot be measured, so training does not wait for it'));
  return results;
}

async function which(command: string): Promise<string | null> {
  if (command.includes('/') || command.includes('\\')) return existsSync(command) ? command : null;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}
