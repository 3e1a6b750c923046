/**
 * celforge as a service of the machine's service manager: the unit files in
 * service/ with the real paths filled in (node, the project, the config, the
 * user), where each goes, and the commands that install, remove and show it:
 * systemd (a user unit, or a system unit for headless boxes), launchd on
 * macOS, the Task Scheduler on Windows.
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { NODE_HEAP_FLAG } from '../cli/node-heap-flag.ts';

export type ServiceKind = 'systemd-user' | 'systemd-system' | 'launchd' | 'windows-task';

export const PROJECT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const TEMPLATES: Record<ServiceKind, string> = {
  'systemd-user': 'celforge-user.service',
  'systemd-system': 'celforge-system.service',
  launchd: 'com.celforge.daemon.plist',
  'windows-task': 'celforge-task.xml',
};

export interface ServiceValues {
  node: string;
  /** NODE_HEAP_FLAG: node's command line is the only place it works. */
  heapFlag: string;
  cli: string;
  project: string;
  projectUrl: string;
  config: string;
  workdir: string;
  user: string;
  logdir: string;
}

export interface ServicePlan {
  kind: ServiceKind;
  /** Where the unit file goes. */
  target: string;
  text: string;
  install: string[][];
  uninstall: string[][];
  status: string[];
}

export function serviceKindFor(platform: NodeJS.Platform, system: boolean): ServiceKind {
  if (platform === 'darwin') return 'launchd';
  if (platform === 'win32') return 'windows-task';
  return system ? 'systemd-system' : 'systemd-user';
}

export function serviceValues(configFile: string, library: string): ServiceValues {
  return {
    node: process.execPath, heapFlag: NODE_HEAP_FLAG, cli: path.join(PROJECT, 'bin', 'celforge.js'), project: PROJECT, projectUrl: pathToFileURL(PROJECT).href, config: configFile,
    workdir: path.dirname(configFile), user: os.userInfo().username, logdir: path.join(library, 'logs'),
  };
}

export async function servicePlan(kind: ServiceKind, values: ServiceValues, home = os.homedir()): Promise<ServicePlan> {
  const template = await readFile(path.join(PROJECT, 'service', TEMPLATES[kind]), 'utf8');
  const text = kind === 'launchd' || kind === 'windows-task'
    ? render(template, values, escapeXml)
    // systemd splits command lines on spaces, so values there are quoted; other keys take a path as it is.
    : template.split('\n').map((line) => render(line, values, /^Exec\w*=/.test(line) ? quoteSystemd : (value) => value)).join('\n');
  switch (kind) {
    case 'systemd-user': {
      const target = path.join(home, '.config', 'systemd', 'user', 'celforge.service');
      return {
        kind, target, text,
        install: [['systemctl', '--user', 'daemon-reload'], ['systemctl', '--user', 'enable', '--now', 'celforge.service']],
        uninstall: [['systemctl', '--user', 'disable', '--now', 'celforge.service']],
        status: ['systemctl', '--user', 'status', '--no-pager', 'celforge.service'],
      };
    }
    case 'systemd-system':
      return {
        kind, target: '/etc/systemd/system/celforge.service', text,
        install: [['systemctl', 'daemon-reload'], ['systemctl', 'enable', '--now', 'celforge.service']],
        uninstall: [['systemctl', 'disable', '--now', 'celforge.service']],
        status: ['systemctl', 'status', '--no-pager', 'celforge.service'],
      };
    case 'launchd': {
      const target = path.join(home, 'Library', 'LaunchAgents', 'com.celforge.daemon.plist');
      const domain = `gui/${os.userInfo().uid}`;
      return {
        kind, target, text,
        install: [['launchctl', 'bootstrap', domain, target]],
        uninstall: [['launchctl', 'bootout', domain, target]],
        status: ['launchctl', 'print', `${domain}/com.celforge.daemon`],
      };
    }
    case 'windows-task': {
      const target = path.join(home, 'AppData', 'Local', 'celforge', 'celforge-task.xml');
      return {
        kind, target, text,
        install: [['schtasks', '/Create', '/TN', 'celforge', '/XML', target, '/F'], ['schtasks', '/Run', '/TN', 'celforge']],
        uninstall: [['schtasks', '/End', '/TN', 'celforge'], ['schtasks', '/Delete', '/TN', 'celforge', '/F']],
        status: ['schtasks', '/Query', '/TN', 'celforge', '/V', '/FO', 'LIST'],
      };
    }
  }
}

function render(template: string, values: ServiceValues, escape: (value: string) => string): string {
  return template.replace(/\{\{(\w+)\}\}/g, (whole, key: string) => (key in values ? escape(values[key as keyof ServiceValues]) : whole));
}

/** systemd splits ExecStart on spaces unless quoted; a path with spaces or quotes is quoted C-style. */
function quoteSystemd(value: string): string {
  return /[\s"'\\]/.test(value) ? `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"` : value;
}

function escapeXml(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}
