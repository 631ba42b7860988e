#!/usr/bin/env node
// The `ota` command. It runs the compiled CLI: an installed package ships dist/ (`npm pack` builds it
// through `prepack`), a checkout builds it with `npm run build` (npm start and npm test do). In a checkout
// where dist/ is missing it falls back to the TypeScript sources through tsx (a devDependency).
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
