/**
 * What every command starts from: the global options, the configuration and
 * a logger. A command that writes to the library makes it on first use and
 * refuses a read-only one up front.
 */
import type { Level } from 'pino';
import { ensureWritableFolder } from '../adapters/writable-folder.ts';
import { loadConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { stateDir } from '../daemon/library-paths.ts';
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
  await prepareLibrary(config.library);
  const level = options.verbose ? 'debug' : config.log.level;
  const log = createLogger({ library: config.library, level, consoleLevel: options.verbose ? 'debug' : consoleLevel ?? level });
  return { config, log, reloadConfig: load };
}

/** The library folder and its state folder, made when missing; a read-only library is refused here. */
export async function prepareLibrary(library: string): Promise<void> {
  await ensureWritableFolder(library, 'the library');
  await ensureWritableFolder(stateDir(library), 'the library');
}
