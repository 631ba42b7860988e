#!/usr/bin/env node
// Runs node's built-in test runner, with tsx as the TypeScript loader, over test files and folders:
//   node scripts/run-tests.mjs test/unit test/e2e             every *.test.ts below the folders
//   node scripts/run-tests.mjs test/unit/device/version.test.ts   one file (or several; any name)
// Node 20's `--test` takes no globs, so the file list is built here. Arguments starting with `--` go to
// node (`--test-name-pattern=...`); TEST_FILTER keeps the files whose path contains it; TEST_CONCURRENCY
// sets how many files run at once (2).
// It does not build: `npm test` builds first. Tests that run bin/ota.js run dist/ when it is there, so
// when such a test is selected and dist/ is older than src/ or web/ (or missing), a one-line note says so.
// After node's closing summary (`# tests N`, `# pass N`, `# fail N`) it lists the failing tests, with
// their files, from scripts/failures-reporter.mjs. The exit code is node's.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const paths = args.filter((a) => !a.startsWith('--'));
const passThrough = args.filter((a) => a.startsWith('--'));

if (paths.length === 0) {
  process.stderr.write('usage: node scripts/run-tests.mjs <test file or folder>... [--node-test-flag=...]\n');
  process.exit(1);
}
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.ts')) files.push(p);
  }
};
for (const p of paths) {
  const st = statSync(p, { throwIfNoEntry: false });
  if (!st) {
    process.stderr.write(`run-tests: no such test file or folder: ${p}\n`);
    process.exit(1);
  }
  if (st.isDirectory()) walk(p);
  else files.push(p); // a file named on the command line runs whatever its name
}
const unique = [...new Set(files)];
if (unique.length === 0) {
  process.stderr.write(`run-tests: no test files under ${paths.join(', ')}\n`);
  process.exit(1);
}
const filter = process.env.TEST_FILTER;
const selected = filter ? unique.filter((f) => f.includes(filter)) : unique;
const concurrency = process.env.TEST_CONCURRENCY ?? '2';

const hint = buildHint(selected);
if (hint) process.stderr.write(`${hint}\n`);

// The console output is node's default (spec on a terminal, TAP otherwise); the failures reporter writes
// to a temporary file. A `--test-reporter` given on the command line replaces both.
const ownReporter = !passThrough.some((a) => a.startsWith('--test-reporter'));
const tmp = mkdtempSync(join(tmpdir(), 'ota-tests-'));
const failuresFile = join(tmp, 'failures.jsonl');
const reporters = ownReporter
  ? [
      `--test-reporter=${process.stdout.isTTY ? 'spec' : 'tap'}`,
      '--test-reporter-destination=stdout',
      `--test-reporter=${pathToFileURL(join(ROOT, 'scripts', 'failures-reporter.mjs')).href}`,
      `--test-reporter-destination=${failuresFile}`,
    ]
  : [];
// The AWS SDK warns on every client that releases after January 2027 need Node 22; README says so.
const env = { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
// Started from inside a test (a test of this script), node would otherwise run as that test's child.
delete env.NODE_TEST_CONTEXT;
const r = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    `--test-concurrency=${concurrency}`,
    ...reporters,
    ...passThrough,
    ...selected,
  ],
  { stdio: 'inherit', env },
);
if (ownReporter) printFailures(failuresFile);
if (hint && r.status !== 0) process.stderr.write(`${hint}\n`);
rmSync(tmp, { recursive: true, force: true });
process.exit(r.status ?? 1);

function printFailures(file) {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const failures = text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l));
  if (failures.length === 0) return;
  const out = [`\nfailing tests (${failures.length}):`];
  for (const f of failures) {
    const where = f.file ? `${relative(process.cwd(), f.file)}${f.line ? `:${f.line}` : ''}` : '?';
    const kind = f.failureType && f.failureType !== 'testCodeFailure' ? ` [${f.failureType}]` : '';
    // A file that failed outside its tests (did not load, exited non-zero) is reported under its path.
    const name = f.name === f.file ? '(the file itself: its error is in the output above)' : f.name;
    out.push(`  ✖ ${name}${kind}`, `      ${where}${f.message ? `  ${f.message}` : ''}`);
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

/**
 * A note when a selected test runs the build (bin/ota.js runs dist/ when it is there; the dashboard
 * serves dist/web) and dist/ is missing or older than src/ or web/: `npm test` builds, a single file
 * does not.
 */
function buildHint(testFiles) {
  const users = testFiles.filter((f) => usesBuild(f));
  if (users.length === 0) return null;
  const names = users.map((f) => relative(process.cwd(), f));
  const shown =
    names.length > 3 ? `${names.slice(0, 3).join(', ')} and ${names.length - 3} more` : names.join(', ');
  const built = ['dist/cli/main.js', 'dist/bundle/main.js', 'dist/web/dashboard/app.js'].map((f) =>
    mtime(join(ROOT, f)),
  );
  if (built[0] < 0) {
    return `run-tests: dist/ is not built; ${shown} run the CLI from it (bin/ota.js falls back to tsx, the installed-package test fails): \`npm run build\` first`;
  }
  const oldest = Math.min(...built.filter((t) => t >= 0));
  if (newest(join(ROOT, 'src')) > oldest || newest(join(ROOT, 'web')) > oldest) {
    return `run-tests: dist/ is older than src/ or web/; ${shown} run the CLI from it, so they test the old build: \`npm run build\` first`;
  }
  return null;
}

/** Whether a test file, or a test helper it imports, runs bin/ota.js, reads dist/, or serves the page. */
function usesBuild(file, seen = new Set()) {
  const path = resolve(file);
  if (seen.has(path) || !existsSync(path)) return false;
  seen.add(path);
  const text = readFileSync(path, 'utf8');
  if (/bin\/ota\.js|'bin', 'ota\.js'|'dist'|src\/dashboard\/server\.ts/.test(text)) return true;
  for (const [, spec] of text.matchAll(/from '(\.[^']+\.ts)'/g)) {
    const dep = resolve(dirname(path), spec);
    if (!dep.includes(`${join(ROOT, 'src')}/`) && usesBuild(dep, seen)) return true;
  }
  return false;
}

function mtime(f) {
  return statSync(f, { throwIfNoEntry: false })?.mtimeMs ?? -1;
}

function newest(dir) {
  let max = -1;
  if (!existsSync(dir)) return max;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) max = Math.max(max, mtime(join(entry.parentPath ?? entry.path, entry.name)));
  }
  return max;
}
