/** What every command starts from: the global options, the configuration and a logger. */
import type { Level } from 'pino';
import { loadConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { createLogger, type Logger } from '../log.ts';

export interface GlobalOptions {
  config?: string;
  library?: string;
  verbose?: boolean;
}

export interface CommandContext {
  config: Config;
  log: Logger;
  reloadConfig: () => Promise<Config>;
}

export async function commandContext(options: GlobalOptions, consoleLevel?: Level): Promise<CommandContext> {
  const load = () => loadConfig({ configPath: options.config, library: options.library });
  const config = await load();
  const level = options.verbose ? 'debug' : config.log.level;
  const log = createLogger({ library: config.library, level, consoleLevel: options.verbose ? 'debug' : consoleLevel ?? level });
  return { config, log, reloadConfig: load };
}
