/**
 * The idle probe reads nvidia-smi as it answers (a stand-in on PATH prints
 * the same CSV the real one does for the two queries celforge makes), and
 * tells our trainer's GPU use from other processes'.
 */
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { systemIdleProbe } from '../../src/adapters/idle-probe.ts';
import { tempDir } from '../helpers.ts';

const limits = { gpuUtilization: 15, gpuMemoryMiB: 1024, cpuLoad: 1000 };

function fakeNvidiaSmi(dir: string, utilization: number, apps: [number, number][]): void {
  const script = path.join(dir, 'nvidia-smi');
  writeFileSync(script, `#!/bin/sh
case "$1" in
  --query-gpu=utilization.gpu) echo "${utilization}" ;;
  --query-compute-apps=pid,used_memory) ${apps.map(([pid, mib]) => `echo "${pid}, ${mib}"`).join('; ') || 'true'} ;;
  *) echo "unexpected arguments: $*" >&2; exit 2 ;;
esac
`);
  chmodSync(script, 0o755);
}

test('busy GPU, memory held by others, our own trainer left out; no nvidia-smi is reported as unknown', async (t) => {
  const dir = tempDir(t);
  const oldPath = process.env.PATH;
  t.after(() => void (process.env.PATH = oldPath));
  process.env.PATH = `${dir}:${oldPath}`;

  fakeNvidiaSmi(dir, 3, []);
  assert.deepEqual(await systemIdleProbe.check(limits, null), { idle: true, busy: [], unknown: [] });

  fakeNvidiaSmi(dir, 87, [[4242, 6000]]);
  const before = await systemIdleProbe.check(limits, null);
  assert.equal(before.idle, false);
  assert.deepEqual(before.busy, ['other processes (4242) hold 6000 MiB of GPU memory', 'the GPU is 87% busy']);

  fakeNvidiaSmi(dir, 99, [[100, 9000], [101, 200]]);
  assert.deepEqual(await systemIdleProbe.check(limits, { ownPids: [100] }), { idle: true, busy: [], unknown: [] }, 'our trainer\'s own use and load do not count');
  fakeNvidiaSmi(dir, 99, [[100, 9000], [555, 3000]]);
  assert.deepEqual((await systemIdleProbe.check(limits, { ownPids: [100] })).busy, ['other processes (555) hold 3000 MiB of GPU memory']);

  process.env.PATH = '/nonexistent';
  const blind = await systemIdleProbe.check(limits, null);
  assert.equal(blind.idle, true);
  assert.deepEqual(blind.unknown, ['GPU use (nvidia-smi did not answer)']);
});
