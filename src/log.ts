/**
 * Structured logs (pino): JSON lines to <library>/logs/celforge.log and a
 * readable copy on the console. `consoleLevel` lets the CLI keep the console
 * quiet while a progress bar owns it.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import pino, { type Logger, type Level } from 'pino';
import pretty from 'pino-pretty';

export type { Logger } from 'pino';

export interface LoggerOptions {
  library: string;
  level: Level;
  consoleLevel?: Level;
}

export function logFilePath(library: string): string {
  return path.join(library, 'logs', 'celforge.log');
}

export function createLogger(options: LoggerOptions): Logger {
  const file = logFilePath(options.library);
  mkdirSync(path.dirname(file), { recursive: true });
  const consoleStream = pretty({
    destination: 2,
    sync: true,
    colorize: process.stderr.isTTY ?? false,
    ignore: 'pid,hostname',
    translateTime: 'SYS:HH:MM:ss',
  });
  const levels = [options.level, options.consoleLevel ?? options.level];
  const lowest = levels.reduce((a, b) => (pino.levels.values[a]! <= pino.levels.values[b]! ? a : b));
  return pino(
    { level: lowest, base: undefined, timestamp: pino.stdTimeFunctions.isoTime },
    pino.multistream([
      { level: options.level, stream: pino.destination({ dest: file, mkdir: true, sync: true }) },
      { level: options.consoleLevel ?? options.level, stream: consoleStream },
    ]),
  );
}
