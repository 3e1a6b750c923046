/**
 * `celforge service install|uninstall|status [--print] [--system]`: installs
 * celforge with the machine's service manager (systemd user unit, or a
 * system unit with --system; launchd on macOS; the Task Scheduler on
 * Windows), with the real paths filled in, and starts it. --print shows the
 * file and the commands instead of running them.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { loadConfig } from '../config/load.ts';
import { CelforgeError } from '../errors.ts';
import { serviceKindFor, servicePlan, serviceValues } from '../service/service-units.ts';
import type { GlobalOptions } from './context.ts';

export async function serviceCommand(action: string, options: GlobalOptions & { print?: boolean; system?: boolean }): Promise<number> {
  if (!['install', 'uninstall', 'status'].includes(action)) throw new CelforgeError('CONFIG_INVALID', `celforge service: "${action}" is not install, uninstall or status`);
  const config = await loadConfig({ configPath: options.config, library: options.library });
  if (!config.source) {
    throw new CelforgeError('CONFIG_NOT_FOUND', 'celforge service needs a configuration file for the service to start with: create daemon.config.ts here, or name one with --config');
  }
  const plan = await servicePlan(serviceKindFor(process.platform, Boolean(options.system)), serviceValues(config.source, config.library));
  const show = (command: string[]) => command.map((part) => (/[\s"']/.test(part) ? JSON.stringify(part) : part)).join(' ');
  if (options.print) {
    if (action === 'install') process.stdout.write(`# ${plan.target}\n${plan.text}\n# then:\n${plan.install.map(show).join('\n')}\n`);
    if (action === 'uninstall') process.stdout.write(`${plan.uninstall.map(show).join('\n')}\nrm ${plan.target}\n`);
    if (action === 'status') process.stdout.write(`${show(plan.status)}\n`);
    return 0;
  }
  if (action === 'status') {
    process.stdout.write(existsSync(plan.target) ? `installed: ${plan.target}\n` : `not installed (${plan.target} is missing)\n`);
    return run(plan.status, false);
  }
  if (action === 'install') {
    await mkdir(path.dirname(plan.target), { recursive: true });
    await writeFile(plan.target, plan.text);
    process.stdout.write(`wrote ${plan.target}\n`);
    for (const command of plan.install) if (run(command, true) !== 0) return 1;
    if (plan.kind === 'systemd-user') process.stdout.write(`to keep celforge running while you are logged out: loginctl enable-linger ${serviceValues(config.source, config.library).user}\n`);
    return 0;
  }
  for (const command of plan.uninstall) run(command, false);
  await rm(plan.target, { force: true });
  process.stdout.write(`removed ${plan.target}\n`);
  return 0;
}

function run(command: string[], mustSucceed: boolean): number {
  const result = spawnSync(command[0]!, command.slice(1), { stdio: 'inherit' });
  if (result.error) {
    if (mustSucceed) throw new CelforgeError('FILE_NOT_FOUND', `${command[0]}: cannot run it (${result.error.message}); is this the right platform's service manager?`);
    return 1;
  }
  if (result.status !== 0 && mustSucceed) process.stderr.write(`celforge: ${command.join(' ')} exited with ${result.status}\n`);
  return result.status ?? 1;
}
