#!/usr/bin/env -S node --initial-old-space-size=128
// Runs the TypeScript sources directly through tsx, in this process (so a
// signal sent to this process reaches celforge), with no build step. The V8
// flag in the first line: src/cli/node-heap-flag.ts says why (env -S splits it
// from `node`: coreutils 8.30+, macOS, and npm's cmd-shim on Windows).
import { register } from 'tsx/esm/api';

// `npm start` and `npx celforge` run this through `sh -c`. npm passes SIGTERM
// and SIGINT to that shell only (forwardedSignals and handleSignal in
// npm/run-script lib/signal-manager.js, lines 3-12 at commit 41c1cf5), and
// dash, /bin/sh on Debian and Ubuntu (0.5.12), neither execs the command nor
// passes the signal on: the shell dies and celforge is left running without
// it. So under npm, the shell going away stops celforge as SIGTERM does.
if (process.env.npm_lifecycle_event !== undefined && process.platform !== 'win32') {
  const parent = process.ppid;
  const watch = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(watch);
    process.kill(process.pid, 'SIGTERM');
  }, 250).unref();
}

register();
await import('../src/cli/main.ts');
