#!/usr/bin/env node
// The `ota` command. It runs the compiled CLI (npm ci builds it through `prepare`); in a checkout where
// dist/ is missing it falls back to the TypeScript sources through tsx, so a fresh clone always works.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const compiled = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
if (existsSync(compiled)) {
  await import(compiled);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
