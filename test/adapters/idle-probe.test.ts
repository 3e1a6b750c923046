/**
 * The idle probe on every platform: each source's parser on the text the
 * real tool prints (xprintidle, gdbus, ioreg, the PowerShell
 * GetLastInputInfo script, nvidia-smi, systeminformation's controllers); the
 * probe choosing its sources by platform and session, run against stand-in
 * commands on PATH that answer only the arguments the real tool takes; CPU
 * load from systeminformation; our own trainer's GPU use left out.
 */
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { gpuUseFromControllers, parseNvidiaSmiApps, parseNvidiaSmiUtilization, type GraphicsController } from '../../src/adapters/gpu-use.ts';
import { createIdleProbe, type IdleProbeSystem } from '../../src/adapters/idle-probe.ts';
import {
  inputIdleSources,
  parseGdbusIdletime,
  parseIoregHidIdleTime,
  parseWindowsIdle,
  parseXprintidle,
  WINDOWS_IDLE_SCRIPT,
} from '../../src/adapters/input-idle.ts';
import { tempDir } from '../helpers.ts';

/** `ioreg -c IOHIDSystem` on an Intel MacBook Pro (macOS 13), trimmed: the tree down to the entry, then its property block. */
const IOREG_OUTPUT = `+-o Root  <class IORegistryEntry, id 0x100000100, retain 29>
  +-o MacBookPro16,1  <class IOPlatformExpertDevice, id 0x10000020f, registered, matched, active, busy 0 (151535 ms), retain 46>
    +-o IOResources  <class IOResources, id 0x100000112, registered, matched, active, busy 0 (5 ms), retain 62>
      +-o IOHIDSystem  <class IOHIDSystem, id 0x1000004f3, registered, matched, active, busy 0 (0 ms), retain 43>
      | {
      |   "IOClass" = "IOHIDSystem"
      |   "CFBundleIdentifier" = "com.apple.iokit.IOHIDFamily"
      |   "IOProviderClass" = "IOResources"
      |   "HIDParameters" = {"HIDClickTime"=500000000,"HIDKeyRepeat"=83333333,"HIDInitialKeyRepeat"=250000000,"HIDClickSpace"={5,3}}
      |   "IOGeneralInterest" = "IOCommand is not serializable"
      |   "IOMatchCategory" = "IOHID"
      |   "HIDIdleTime" = 65432109876
      |   "IOUserClientClass" = "IOHIDUserClient"
      |   "IOResourceMatch" = "IOKit"
      |   "IOProbeScore" = 0
      |   "IOMatchedAtBoot" = Yes
      | }
      | 
      +-o IOHIDUserClient  <class IOHIDUserClient, id 0x100000557, !registered, !matched, active, busy 0, retain 6>
`;

const limits = { gpuUtilization: 15, gpuMemoryMiB: 1024, cpuLoad: 0.8 };
const calm: Partial<IdleProbeSystem> = { cpuLoad: async () => 0.05, graphicsControllers: async () => null };

/** A stand-in command: prints `output` only for exactly `args`, as the real tool would; anything else fails like a usage error. */
function standIn(dir: string, name: string, args: string[], output: string): void {
  const quote = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;
  const expected = args.map((arg, i) => `[ "$${i + 1}" = ${quote(arg)} ] || { echo "unexpected arguments" >&2; exit 2; }`).join('\n');
  writeFileSync(path.join(dir, name), `#!/bin/sh\n[ "$#" = ${args.length} ] || { echo "unexpected arguments" >&2; exit 2; }\n${expected}\nprintf '%s' ${quote(output)}\n`);
  chmodSync(path.join(dir, name), 0o755);
}

/** PATH holds only the stand-ins, so a real gdbus or nvidia-smi on this machine is never reached. */
function onlyStandIns(t: TestContext): string {
  const dir = tempDir(t);
  const oldPath = process.env.PATH;
  t.after(() => void (process.env.PATH = oldPath));
  process.env.PATH = dir;
  return dir;
}

const GDBUS_ARGS = ['call', '--session', '--dest', 'org.gnome.Mutter.IdleMonitor', '--object-path', '/org/gnome/Mutter/IdleMonitor/Core', '--method', 'org.gnome.Mutter.IdleMonitor.GetIdletime'];

test('each input source\'s output is read as the tool prints it', () => {
  assert.equal(parseXprintidle('65432\n'), 65432);
  assert.equal(parseXprintidle("couldn't open display\n"), null);
  assert.equal(parseGdbusIdletime('(uint64 65432,)\n'), 65432);
  assert.equal(parseGdbusIdletime('Error: GDBus.Error:org.freedesktop.DBus.Error.ServiceUnknown: The name org.gnome.Mutter.IdleMonitor was not provided by any .service files\n'), null);
  assert.equal(parseIoregHidIdleTime(IOREG_OUTPUT), 65432, 'nanoseconds to milliseconds');
  assert.equal(parseIoregHidIdleTime(IOREG_OUTPUT.replace(/.*"HIDIdleTime".*\n/, '')), null);
  assert.equal(parseWindowsIdle('65432\r\n'), 65432);
  assert.equal(parseWindowsIdle('Exception calling "Milliseconds" with "0" argument(s): "Access is denied"\r\n'), null);
});

test('nvidia-smi and systeminformation\'s controllers are read as they answer', () => {
  assert.equal(parseNvidiaSmiUtilization('3\n87\n'), 87, 'the busiest GPU');
  assert.equal(parseNvidiaSmiUtilization('No devices were found\n'), null);
  assert.deepEqual(parseNvidiaSmiApps(''), []);
  assert.deepEqual(parseNvidiaSmiApps('4242, 6000\r\n555, [N/A]\r\n'), [{ pid: 4242, usedMiB: 6000 }, { pid: 555, usedMiB: null }]);
  assert.equal(parseNvidiaSmiApps('Failed to initialize NVML: Driver/library version mismatch\n'), null);
  // Windows: an Intel iGPU from WMI alone, an NVIDIA card merged with nvidia-smi at 0% (which systeminformation leaves out)
  const windows = [
    { vendor: 'Intel Corporation', model: 'Intel(R) UHD Graphics 630', bus: 'PCI', vram: 1024, vramDynamic: true },
    { vendor: 'NVIDIA', model: 'NVIDIA GeForce RTX 3060', bus: 'PCI', vram: 12288, vramDynamic: false, memoryTotal: 12288, memoryUsed: 1532, memoryFree: 10756, temperatureGpu: 41 },
  ];
  assert.deepEqual(gpuUseFromControllers(windows), { source: 'systeminformation', utilization: 0, usedMiB: 1532 });
  const busyCard = { ...windows[1], utilizationGpu: 97, memoryUsed: 9800 };
  assert.deepEqual(gpuUseFromControllers([busyCard]), { source: 'systeminformation', utilization: 97, usedMiB: 9800 });
  const apple = { vendor: 'Apple', model: 'Apple M2', bus: 'Built-In', vram: 0, vramDynamic: true, cores: 10 };
  assert.equal(gpuUseFromControllers([apple]), null, 'macOS: nothing to measure');
});

test('the input sources are chosen by platform and session', () => {
  const names = (platform: NodeJS.Platform, env: NodeJS.ProcessEnv) => inputIdleSources(platform, env).map((source) => source.command);
  assert.deepEqual(names('win32', {}), ['powershell.exe']);
  assert.deepEqual(names('darwin', {}), ['ioreg']);
  assert.deepEqual(names('linux', { WAYLAND_DISPLAY: 'wayland-0', DISPLAY: ':0' }), ['gdbus'], 'not xprintidle: Xwayland sees only X11 windows\' input');
  assert.deepEqual(names('linux', { XDG_SESSION_TYPE: 'wayland' }), ['gdbus']);
  assert.deepEqual(names('linux', { DISPLAY: ':0' }), ['xprintidle', 'gdbus']);
  assert.deepEqual(names('freebsd', { DISPLAY: ':0' }), ['xprintidle', 'gdbus']);
  assert.deepEqual(names('linux', {}), [], 'no desktop session');

  const [windows] = inputIdleSources('win32', {});
  assert.deepEqual(windows!.args.slice(0, 3), ['-NoProfile', '-NonInteractive', '-EncodedCommand']);
  const script = Buffer.from(windows!.args[3]!, 'base64').toString('utf16le');
  assert.equal(script, WINDOWS_IDLE_SCRIPT, '-EncodedCommand is base64 of UTF-16LE');
  assert.match(script, /DllImport\("user32\.dll"[^\]]*\)\]\s*static extern bool GetLastInputInfo\(ref LastInputInfo info\)/);
  assert.match(script, /unchecked\(\(uint\)System\.Environment\.TickCount - info\.dwTime\)/, 'unsigned 32-bit, so the 49.7-day wrap is harmless');
});

test('Windows: input idleness from GetLastInputInfo through powershell.exe, CPU load from systeminformation', async (t) => {
  const dir = onlyStandIns(t);
  const [windows] = inputIdleSources('win32', {});
  standIn(dir, 'powershell.exe', [...windows!.args], '65432\r\n');
  const probe = (cpu: number) => createIdleProbe({ ...calm, platform: 'win32', env: {}, cpuLoad: async () => cpu });
  assert.deepEqual(await probe(0.05).check({ ...limits, noInputMinutes: 1 }, null), { idle: true, busy: [], unknown: ['GPU use (nvidia-smi did not answer, and systeminformation found no GPU it can measure)'] });
  assert.deepEqual((await probe(0.05).check({ ...limits, noInputMinutes: 5 }, null)).busy, ['input 1 min ago']);
  assert.deepEqual((await probe(0.93).check(limits, null)).busy, ['the CPU is 93% busy']);
});

test('macOS: input idleness from ioreg\'s HIDIdleTime; GPU use is unknown there', async (t) => {
  const dir = onlyStandIns(t);
  standIn(dir, 'ioreg', ['-c', 'IOHIDSystem'], IOREG_OUTPUT);
  // no graphicsControllers stand-in: on darwin the probe does not ask systeminformation
  const probe = createIdleProbe({ platform: 'darwin', env: {}, cpuLoad: async () => 0.05 });
  const report = await probe.check({ ...limits, noInputMinutes: 5 }, null);
  assert.deepEqual(report.busy, ['input 1 min ago']);
  assert.deepEqual(report.unknown, ['GPU use (nvidia-smi did not answer, and systeminformation found no GPU it can measure)']);
  assert.equal((await probe.check({ ...limits, noInputMinutes: 1 }, null)).idle, true);
});

test('Linux: GNOME\'s IdleMonitor on Wayland (never xprintidle there), xprintidle on X11 with the IdleMonitor after it', async (t) => {
  const dir = onlyStandIns(t);
  const probe = (env: NodeJS.ProcessEnv) => createIdleProbe({ ...calm, platform: 'linux', env });
  const wayland = { WAYLAND_DISPLAY: 'wayland-0', DISPLAY: ':0' };

  standIn(dir, 'xprintidle', [], '999999\n');
  const blind = await probe(wayland).check({ ...limits, noInputMinutes: 5 }, null);
  assert.ok(blind.unknown.includes("time since the last input (GNOME's Mutter IdleMonitor (gdbus) did not answer)"), blind.unknown.join('; '));

  standIn(dir, 'gdbus', GDBUS_ARGS, '(uint64 65432,)\n');
  assert.deepEqual((await probe(wayland).check({ ...limits, noInputMinutes: 5 }, null)).busy, ['input 1 min ago']);
  assert.deepEqual((await probe({ DISPLAY: ':0' }).check({ ...limits, noInputMinutes: 5 }, null)).busy, [], 'X11: xprintidle first (999999 ms: idle)');

  standIn(dir, 'xprintidle', [], "couldn't open display\n");
  assert.deepEqual((await probe({ DISPLAY: ':0' }).check({ ...limits, noInputMinutes: 5 }, null)).busy, ['input 1 min ago'], 'then the IdleMonitor');

  const headless = await probe({}).check({ ...limits, noInputMinutes: 5 }, null);
  assert.ok(headless.unknown.includes('time since the last input (no desktop session here: no DISPLAY or WAYLAND_DISPLAY)'), headless.unknown.join('; '));
  assert.equal(headless.idle, true);
});

test('CPU load comes from systeminformation\'s currentLoad, as a share of all cores', async (t) => {
  onlyStandIns(t);
  const probe = createIdleProbe({ platform: 'linux', env: {}, graphicsControllers: async () => null });
  const report = await probe.check({ ...limits, cpuLoad: -1 }, null);
  const measured = report.busy.map((reason) => /^the CPU is (\d+)% busy$/.exec(reason)).find(Boolean);
  assert.ok(measured, report.busy.join('; '));
  assert.ok(Number(measured[1]) >= 0 && Number(measured[1]) <= 100);
  assert.ok(!report.unknown.some((what) => what.startsWith('CPU')), report.unknown.join('; '));
});

function fakeNvidiaSmi(dir: string, utilization: number, apps: [number, number | string][]): void {
  const script = path.join(dir, 'nvidia-smi');
  writeFileSync(script, `#!/bin/sh
[ "$2" = "--format=csv,noheader,nounits" ] || { echo "unexpected arguments: $*" >&2; exit 2; }
case "$1" in
  --query-gpu=utilization.gpu) echo "${utilization}" ;;
  --query-compute-apps=pid,used_memory) ${apps.map(([pid, mib]) => `echo "${pid}, ${mib}"`).join('; ') || 'true'} ;;
  *) echo "unexpected arguments: $*" >&2; exit 2 ;;
esac
`);
  chmodSync(script, 0o755);
}

test('busy GPU, memory held by others, our own trainer left out; no nvidia-smi falls back to systeminformation', async (t) => {
  const dir = onlyStandIns(t);
  let controllers: GraphicsController[] | null = null;
  let asked = 0;
  const probe = createIdleProbe({ ...calm, platform: 'linux', env: {}, graphicsControllers: async () => (asked++, controllers) });

  fakeNvidiaSmi(dir, 3, []);
  assert.deepEqual(await probe.check(limits, null), { idle: true, busy: [], unknown: [] });
  fakeNvidiaSmi(dir, 87, [[4242, 6000]]);
  assert.deepEqual((await probe.check(limits, null)).busy, ['other processes (4242) hold 6000 MiB of GPU memory', 'the GPU is 87% busy']);
  fakeNvidiaSmi(dir, 99, [[100, 9000], [101, 200]]);
  assert.deepEqual(await probe.check(limits, { ownPids: [100] }), { idle: true, busy: [], unknown: [] }, 'our trainer\'s own use and load do not count');
  fakeNvidiaSmi(dir, 99, [[100, 9000], [555, 3000]]);
  assert.deepEqual((await probe.check(limits, { ownPids: [100] })).busy, ['other processes (555) hold 3000 MiB of GPU memory']);
  fakeNvidiaSmi(dir, 10, [[100, '[N/A]'], [555, '[N/A]']]);
  assert.deepEqual((await probe.check(limits, { ownPids: [100] })).unknown, ['GPU memory of processes 555 (nvidia-smi shows [N/A])'], 'WDDM');
  assert.equal(asked, 0, 'systeminformation is not asked while nvidia-smi answers');

  process.env.PATH = path.join(dir, 'nothing-here');
  controllers = [{ vendor: 'NVIDIA', model: 'NVIDIA GeForce RTX 4090', bus: 'PCI', vram: 24564, vramDynamic: false, memoryUsed: 6000, utilizationGpu: 87 }];
  assert.deepEqual((await probe.check(limits, null)).busy, ['6000 MiB of GPU memory are in use', 'the GPU is 87% busy']);
  assert.deepEqual(await probe.check(limits, { ownPids: [100] }), {
    idle: true,
    busy: [],
    unknown: ["other processes' GPU memory (systeminformation gives only the total, which includes our trainer's)"],
  });
  controllers = [];
  assert.deepEqual((await probe.check(limits, null)).unknown, ['GPU use (nvidia-smi did not answer, and systeminformation found no GPU it can measure)']);
});
