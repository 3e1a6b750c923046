/**
 * How long since the last keyboard or mouse input, from the platform's own
 * source: Windows' GetLastInputInfo (through PowerShell), macOS's
 * HIDIdleTime (ioreg), GNOME's Mutter IdleMonitor (gdbus, on Wayland and
 * X11) and xprintidle (X11). Each source is a command with an argument list
 * and a parser of what it prints; `inputIdleSources` picks them for a
 * platform and session, and `readInputIdle` takes the first that answers.
 */

/** Runs a command with an argument array (never a shell) and resolves with what it printed. */
export type CommandRunner = (command: string, args: readonly string[]) => Promise<string>;

export interface InputIdleSource {
  /** In words, for "cannot measure" reports. */
  name: string;
  command: string;
  args: readonly string[];
  /** Milliseconds since the last input, or null when the output is not what the tool prints. */
  parse(stdout: string): number | null;
}

/** xprintidle prints the X server's idle time (XScreenSaverQueryInfo's `idle`) in milliseconds and a newline. */
export function parseXprintidle(stdout: string): number | null {
  const match = /^\s*(\d+)\s*$/.exec(stdout);
  return match ? Number(match[1]) : null;
}

/**
 * `gdbus call` prints a method's reply as a GVariant tuple: GetIdletime
 * returns one `t` (uint64) of milliseconds (GNOME/mutter
 * data/dbus-interfaces/org.gnome.Mutter.IdleMonitor.xml), printed
 * `(uint64 12345,)`.
 */
export function parseGdbusIdletime(stdout: string): number | null {
  const match = /^\s*\(uint64 (\d+),\)\s*$/.exec(stdout);
  return match ? Number(match[1]) : null;
}

/**
 * `ioreg -c IOHIDSystem` prints the IOHIDSystem entry's properties as
 * `|   "HIDIdleTime" = <nanoseconds>` inside its `{ ... }` block; the first
 * entry that has the property is read.
 */
export function parseIoregHidIdleTime(stdout: string): number | null {
  const match = /^[\s|]*"HIDIdleTime" = (\d+)\s*$/m.exec(stdout);
  return match ? Math.floor(Number(match[1]) / 1_000_000) : null;
}

/** The PowerShell script below prints the milliseconds as a plain number (Windows ends the line with CRLF). */
export function parseWindowsIdle(stdout: string): number | null {
  const match = /^\s*(\d+)\s*$/.exec(stdout);
  return match ? Number(match[1]) : null;
}

/**
 * GetLastInputInfo fills LASTINPUTINFO.dwTime with the tick count
 * (GetTickCount, a DWORD that wraps after 49.7 days) of the session's last
 * input; the idle time is the current tick count less that, in unsigned
 * 32-bit arithmetic so that it survives the wrap. (Microsoft Learn,
 * winuser.h GetLastInputInfo and LASTINPUTINFO: "useful for input idle
 * detection", session-specific.) Environment.TickCount is the same counter
 * as a signed Int32, so its cast to uint is GetTickCount.
 */
export const WINDOWS_IDLE_SCRIPT = `Add-Type -Namespace Celforge -Name InputIdle -MemberDefinition '
[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
struct LastInputInfo { public uint cbSize; public uint dwTime; }
[System.Runtime.InteropServices.DllImport("user32.dll", SetLastError = true)]
static extern bool GetLastInputInfo(ref LastInputInfo info);
public static uint Milliseconds() {
  LastInputInfo info = new LastInputInfo();
  info.cbSize = (uint)System.Runtime.InteropServices.Marshal.SizeOf(info);
  if (!GetLastInputInfo(ref info)) throw new System.ComponentModel.Win32Exception();
  return unchecked((uint)System.Environment.TickCount - info.dwTime);
}'
[Celforge.InputIdle]::Milliseconds()`;

/** -EncodedCommand takes the script as base64 of its UTF-16LE text, so no quoting reaches a command line. */
export function powershellArgs(script: string): string[] {
  return ['-NoProfile', '-NonInteractive', '-EncodedCommand', Buffer.from(script, 'utf16le').toString('base64')];
}

const WINDOWS: InputIdleSource = { name: 'GetLastInputInfo (powershell.exe)', command: 'powershell.exe', args: powershellArgs(WINDOWS_IDLE_SCRIPT), parse: parseWindowsIdle };
const MACOS: InputIdleSource = { name: 'HIDIdleTime (ioreg -c IOHIDSystem)', command: 'ioreg', args: ['-c', 'IOHIDSystem'], parse: parseIoregHidIdleTime };
const XPRINTIDLE: InputIdleSource = { name: 'xprintidle', command: 'xprintidle', args: [], parse: parseXprintidle };
const GNOME: InputIdleSource = {
  name: "GNOME's Mutter IdleMonitor (gdbus)",
  command: 'gdbus',
  args: ['call', '--session', '--dest', 'org.gnome.Mutter.IdleMonitor', '--object-path', '/org/gnome/Mutter/IdleMonitor/Core', '--method', 'org.gnome.Mutter.IdleMonitor.GetIdletime'],
  parse: parseGdbusIdletime,
};

/**
 * The sources to try, in order, for a platform and its session. On Wayland
 * only the compositor knows about input, so xprintidle (which would ask
 * Xwayland, which sees only input to X11 windows) is not used there. KDE's
 * org.freedesktop.ScreenSaver GetSessionIdleTime answers NotSupported on
 * Wayland (KDE/kscreenlocker interface.cpp, Interface::GetSessionIdleTime),
 * so Plasma on Wayland has no source here. Without a desktop session there
 * is no input to wait for.
 */
export function inputIdleSources(platform: NodeJS.Platform, env: NodeJS.ProcessEnv): InputIdleSource[] {
  if (platform === 'win32') return [WINDOWS];
  if (platform === 'darwin') return [MACOS];
  if (env.WAYLAND_DISPLAY || env.XDG_SESSION_TYPE === 'wayland') return [GNOME];
  if (env.DISPLAY) return [XPRINTIDLE, GNOME];
  return [];
}

export type InputIdleReading = { ms: number; source: string } | { ms: null; tried: string[] };

/** The first source that answers with something it can read. */
export async function readInputIdle(sources: InputIdleSource[], run: CommandRunner): Promise<InputIdleReading> {
  for (const source of sources) {
    const stdout = await run(source.command, source.args).catch(() => null);
    const ms = stdout === null ? null : source.parse(stdout);
    if (ms !== null) return { ms, source: source.name };
  }
  return { ms: null, tried: sources.map((source) => source.name) };
}
