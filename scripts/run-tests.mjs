#!/usr/bin/env node
// Runs node's built-in test runner over every *.test.ts below the given folders, with tsx as the
// TypeScript loader. Node 20's `--test` takes no globs, so the file list is built here.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const roots = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const passThrough = process.argv.slice(2).filter((a) => a.startsWith('--'));
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.ts')) files.push(p);
  }
};
for (const root of roots) if (existsSync(root)) walk(root);
if (files.length === 0) {
  process.stderr.write(`no test files under ${roots.join(', ')}\n`);
  process.exit(1);
}
const filter = process.env.TEST_FILTER;
const selected = filter ? files.filter((f) => f.includes(filter)) : files;
const concurrency = process.env.TEST_CONCURRENCY ?? '2';
// The AWS SDK warns on every client that releases after January 2027 need Node 22; README says so.
const env = { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
const r = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, ...passThrough, ...selected],
  { stdio: 'inherit', env },
);
process.exit(r.status ?? 1);
