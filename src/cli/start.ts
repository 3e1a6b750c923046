/** `celforge start`: the daemon in the foreground. */
import { runDaemon } from '../daemon/daemon.ts';
import { commandContext, type GlobalOptions } from './context.ts';

export async function startCommand(options: GlobalOptions): Promise<void> {
  const { config, log, reloadConfig } = await commandContext(options);
  log.info({ library: config.library, config: config.source ?? '(defaults)' }, 'celforge daemon starting');
  await runDaemon({ config, log, reloadConfig });
}
