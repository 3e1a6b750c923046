/** Shared test helpers: temp folders, config files, running the real CLI. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FrameRecord } from '../src/adapters/frame-map-file.ts';
import type { Job } from '../src/daemon/job.ts';
import { ledgerPath } from '../src/daemon/library-paths.ts';

export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cliPath = path.join(projectRoot, 'bin', 'celforge.js');

export function tempDir(t: { after: (fn: () => void) => void }, prefix = 'celforge-test-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The faces, characters and tags stages turned off, for tests about everything before them. */
export const FRAMES_ONLY = { faces: { detector: 'none' }, characters: { enabled: false }, tags: { taggers: [] } };

/**
 * Writes a daemon.config.ts in `dir` with this object as its default export.
 * Unless the config names them, the faces, characters and tags stages are off
 * (FRAMES_ONLY) and the review page takes a free port (daemons of tests
 * running side by side).
 */
export function writeConfig(dir: string, config: Record<string, unknown>): string {
  const file = path.join(dir, 'daemon.config.ts');
  writeFileSync(file, `export default ${JSON.stringify({ ...FRAMES_ONLY, review: { port: 0 }, ...config }, null, 2)};\n`);
  return file;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], options: { cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { cwd: options.cwd ?? projectRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`celforge ${args.join(' ')} timed out\n${stderr}`));
    }, options.timeoutMs ?? 120_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface DaemonProcess {
  child: ChildProcess;
  output: () => string;
  /** Resolves with the exit code once it has exited. */
  exited: Promise<number | null>;
}

export function startDaemon(configFile: string): DaemonProcess {
  const child = spawn(process.execPath, [cliPath, '--config', configFile, 'start'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

export async function stopDaemon(daemon: DaemonProcess): Promise<void> {
  if (daemon.child.exitCode === null && daemon.child.signalCode === null) daemon.child.kill('SIGTERM');
  await daemon.exited;
}

/** The jobs in a library's ledger, or none while it does not exist yet. */
export function readJobs(library: string): Job[] {
  try {
    return (JSON.parse(readFileSync(ledgerPath(library), 'utf8')) as { jobs: Job[] }).jobs;
  } catch {
    return [];
  }
}

export async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 60_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value) return value;
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Relative path -> SHA-256 of every file below a folder, except the report and the owner marker (they name the source path). */
export function hashTree(dir: string): Map<string, string> {
  const hashes = new Map<string, string>();
  const files = readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name !== 'report.json' && entry.name !== '.owner.json')
    .map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)))
    .sort();
  for (const file of files) hashes.set(file, createHash('sha256').update(readFileSync(path.join(dir, file))).digest('hex'));
  return hashes;
}

/** The frame map of a job's video, as written on disk. */
export function frameMapOf(job: Job): FrameRecord[] {
  return readFileSync(path.join(job.extract!.dir, 'frame-map.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as FrameRecord);
}
