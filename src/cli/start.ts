/** `celforge start [--port N]`: the daemon in the foreground, with the review page. */
import { runDaemon } from '../daemon/daemon.ts';
import { CelforgeError } from '../errors.ts';
import { commandContext, type GlobalOptions } from './context.ts';

export async function startCommand(options: GlobalOptions & { port?: string }): Promise<void> {
  const { config, log, reloadConfig } = await commandContext(options);
  const port = options.port === undefined ? undefined : Number(options.port);
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65_535)) {
    throw new CelforgeError('CONFIG_INVALID', `--port ${options.port}: expected a port number from 0 to 65535`);
  }
  log.info({ library: config.library, config: config.source ?? '(defaults)' }, 'celforge daemon starting');
  await runDaemon({ config, log, reloadConfig, port });
}
