#!/usr/bin/env node
// The `ota` command. It runs the compiled CLI: an installed package ships dist/ (`npm pack` builds it
// through `prepack`), a checkout builds it with `npm run build` (npm start and npm test do). In a checkout
// where dist/ is missing it falls back to the TypeScript sources through tsx (a devDependency).
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';

/**
 * `ota agent` is a long-running daemon on a small device (a dashcam, a Raspberry Pi): V8 is tuned for
 * footprint before anything else is loaded (docs/benchmarks.md, "Footprint and start-up"):
 * - `--semi-space-growth-factor=1`: the young generation stays at its initial 1 MiB semi-spaces instead
 *   of growing to 16 MiB; the agent's hot path allocates almost nothing (reused buffers), so it never
 *   needs more.
 * - `--no-turbofan`: no optimizing compiler. Its compiles cost ~9 MiB (zone memory and compiler code
 *   touched in the node binary) and CPU at start-up, for code that runs a few thousand times per GiB;
 *   the bytes themselves are hashed and copied by native code. Ignition + Sparkplug remain.
 * Both are read at run time by V8 (growth at each scavenge, tier-up at each budget check), so setting them
 * here, before any module is loaded, is equivalent to the command-line flags. `OTA_AGENT_V8_FLAGS`
 * replaces them (empty = V8's defaults), for the benchmarks' A/B and for anyone who wants speed back.
 */
export const AGENT_V8_FLAGS = '--semi-space-growth-factor=1 --no-turbofan';
if (process.argv[2] === 'agent') {
  const flags = process.env.OTA_AGENT_V8_FLAGS ?? AGENT_V8_FLAGS;
  if (flags.trim()) setFlagsFromString(flags);
}

const compiled = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
// `ota agent` starts from the bundled build of the same CLI (scripts/bundle-cli.mjs): ~0.1 s less CPU
// and ~3 MiB less RSS at start-up. Only a bundle at least as new as the compiled CLI: after a bare `tsc`
// it would be stale.
const bundled = fileURLToPath(new URL('../dist/bundle/main.js', import.meta.url));
const mtime = (f) => statSync(f, { throwIfNoEntry: false })?.mtimeMs ?? -1;
if (process.argv[2] === 'agent' && mtime(bundled) >= mtime(compiled) && mtime(compiled) >= 0) {
  await import(bundled);
} else if (existsSync(compiled)) {
  await import(compiled);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
