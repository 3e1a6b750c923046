// celforge's configuration. Every key is optional; the README lists them all.
// Relative paths are resolved against this file's folder.
import { defineConfig } from './src/config/define.ts';

export default defineConfig({
  inbox: './inbox',
  library: './library',
  watch: {
    extensions: ['.m2ts'],
    settleSeconds: 30,
  },
  disk: {
    reserve: '10GiB',
  },
  extract: {
    hwaccel: 'none',
  },
  dedup: {
    policy: 'reference',
  },
});
