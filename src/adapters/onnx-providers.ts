/**
 * Which ONNX Runtime execution providers celforge uses, and the CUDA one's
 * installation. onnxruntime-node 1.30 ships CPU everywhere, DirectML in its
 * Windows binaries and CoreML in its macOS ones; CUDA exists only on Linux
 * x64, as libraries its install script downloads (its README, "EPs/Platforms"
 * table and "CUDA EP Installation"). celforge's package.json switches that
 * script off at install (allowScripts), so the download is one command,
 * `celforge gpu install`, which runs the same script with the variable that
 * forces it.
 *
 * `inference.providers: 'auto'` (read as ['auto']) becomes ['cuda', 'cpu']
 * where CUDA loads and ['cpu'] elsewhere, decided once per process with one
 * log line.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';

export const ORT_DIR = path.dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));

/** The one command that installs the CUDA provider. */
export const GPU_INSTALL_COMMAND = 'npx celforge gpu install';

/**
 * onnxruntime-node script/install-metadata.js: `requirements['linux/x64'] = ['cuda12']`, and manifest
 * 'linux/x64:cuda12' puts these files (from the NuGet package Microsoft.ML.OnnxRuntime.Gpu.Linux) in
 * bin/napi-v6/linux/x64 (script/install.js, BIN_FOLDER); no other platform has a CUDA manifest.
 */
const CUDA_PLATFORM = 'linux/x64';
const CUDA_FILES = ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so'];

/**
 * onnxruntime-node script/install-utils.js, parseInstallFlag: ONNXRUNTIME_NODE_INSTALL is read before
 * npm_config_onnxruntime_node_install, and 'true' (or '1', 'ON') forces the install of every manifest the
 * platform requires, past install.js's early exits (`skip`, and "a local install" when npm runs it for
 * the project itself). A value such as 'cuda12' falls through that function's switch without a return,
 * which reads as no flag at all, and under `npm run` the local-install exit then ends the script silently.
 */
const FORCE_INSTALL_ENV = { ONNXRUNTIME_NODE_INSTALL: 'true' } as const;

export type CudaState =
  | { kind: 'unsupported'; platform: string }
  | { kind: 'not-installed'; missing: string[] }
  | { kind: 'installed' };

export function cudaInstallState(ortDir = ORT_DIR, platform = `${process.platform}/${process.arch}`): CudaState {
  if (platform !== CUDA_PLATFORM) return { kind: 'unsupported', platform };
  const folder = path.join(ortDir, 'bin', 'napi-v6', 'linux', 'x64');
  const missing = CUDA_FILES.filter((name) => !existsSync(path.join(folder, name)));
  return missing.length ? { kind: 'not-installed', missing } : { kind: 'installed' };
}

export type CudaStatus =
  | { kind: 'loads' }
  /** Not on this platform; not installed; installed, but it does not start. */
  | { kind: 'unsupported' | 'not-installed' | 'fails'; detail: string };

/** Whether a CUDA session starts here, and if not, why and what to do. */
export async function cudaStatus(ortDir = ORT_DIR): Promise<CudaStatus> {
  const state = cudaInstallState(ortDir);
  if (state.kind === 'unsupported') {
    return { kind: 'unsupported', detail: `onnxruntime-node has no CUDA provider on ${state.platform} (${otherGpuProvider(state.platform)})` };
  }
  if (state.kind === 'not-installed') {
    return { kind: 'not-installed', detail: `the CUDA provider is not installed (${state.missing.join(', ')} missing); with an NVIDIA GPU, run "${GPU_INSTALL_COMMAND}"` };
  }
  // Only probed once installed: onnxruntime prints an error line of its own when the provider library is absent.
  const problem = await providerLoads('cuda');
  if (!problem) return { kind: 'loads' };
  return { kind: 'fails', detail: `the CUDA provider is installed but does not load (${problem}); it needs the NVIDIA driver, CUDA 12 and cuDNN 9 libraries where the loader finds them` };
}

function otherGpuProvider(platform: string): string {
  if (platform.startsWith('win32/')) return "DirectML is built in: inference.providers: ['dml', 'cpu']";
  if (platform.startsWith('darwin/')) return "CoreML is built in: inference.providers: ['coreml', 'cpu']";
  return 'the CPU is used';
}

/** A one-node model (Identity), to see whether an execution provider loads without any model file. */
const PROBE_MODEL = Buffer.from('CAcSD2NlbGZvcmdlLWRvY3Rvcjo+ChAKAXgSAXkiCElkZW50aXR5EghpZGVudGl0eVoPCgF4EgoKCAgBEgQKAggBYg8KAXkSCgoICAESBAoCCAFCBAoAEA0=', 'base64');

/** Whether ONNX Runtime can start a session on this execution provider alone; the reason when not. */
export async function providerLoads(provider: string): Promise<string | null> {
  try {
    const session = await ort.InferenceSession.create(PROBE_MODEL, { executionProviders: [provider] });
    await session.release();
    return null;
  } catch (error) {
    return errorMessage(error).split('\n')[0]!.slice(0, 300);
  }
}

let autoChoice: Promise<string[]> | null = null;

/** The providers to ask ONNX Runtime for: 'auto' decided here (once per process, one log line), an explicit list as it is. */
export function resolveProviders(wanted: readonly string[], log: Logger): Promise<string[]> {
  if (!wanted.includes('auto')) return Promise.resolve([...wanted]);
  autoChoice ??= chooseAuto(log);
  return autoChoice.then((auto) => [...new Set(wanted.flatMap((name) => (name === 'auto' ? auto : [name])))]);
}

async function chooseAuto(log: Logger): Promise<string[]> {
  const cuda = await cudaStatus();
  if (cuda.kind === 'loads') {
    log.info({ providers: ['cuda', 'cpu'] }, 'inference.providers auto: CUDA loads; models run on the GPU');
    return ['cuda', 'cpu'];
  }
  log.info({ providers: ['cpu'] }, `inference.providers auto: the CPU, as ${cuda.detail}`);
  return ['cpu'];
}

export interface CudaInstall {
  command: string;
  args: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
}

/** onnxruntime-node's own install script (package.json "postinstall": "node ./script/install"), forced. */
export function cudaInstallCommand(ortDir = ORT_DIR, env: NodeJS.ProcessEnv = process.env): CudaInstall {
  return { command: process.execPath, args: [path.join(ortDir, 'script', 'install.js')], cwd: ortDir, env: { ...env, ...FORCE_INSTALL_ENV } };
}

/** Runs the install with its output shown as it comes; resolves with its exit code. */
export function runCudaInstall(install: CudaInstall, stdio: 'inherit' | 'pipe' = 'inherit'): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(install.command, install.args, { cwd: install.cwd, env: install.env, stdio: ['ignore', stdio, stdio] });
    let output = '';
    child.stdout?.on('data', (chunk) => (output += chunk));
    child.stderr?.on('data', (chunk) => (output += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}
