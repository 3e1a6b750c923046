/** Typed helper for daemon.config.ts: `export default defineConfig({...})`. */
import type { ConfigInput } from './schema.ts';

export type { ConfigInput } from './schema.ts';

export function defineConfig(config: ConfigInput): ConfigInput {
  return config;
}
