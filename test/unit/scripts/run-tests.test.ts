import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const FIXTURES = 'test/unit/scripts/fixtures';

/** scripts/run-tests.mjs as `npm test` runs it (from the checkout, output not a terminal). */
function runTests(...args: string[]) {
  const r = spawnSync(process.execPath, ['scripts/run-tests.mjs', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('one test file runs on its own (a file, not a folder, on the command line)', () => {
  const r = runTests(`${FIXTURES}/passing.fixture.ts`);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^# tests 1$/m);
  assert.match(r.stdout, /^# pass 1$/m);
  assert.doesNotMatch(r.stdout, /failing tests/);
});

test('a failing run exits non-zero and ends with the failing tests, after node’s summary', () => {
  const r = runTests(`${FIXTURES}/passing.fixture.ts`, `${FIXTURES}/failing.fixture.ts`);
  assert.notEqual(r.code, 0);
  assert.match(r.stdout, /^# fail 1$/m);
  const summary = r.stdout.lastIndexOf('# fail 1');
  const list = r.stdout.slice(r.stdout.indexOf('failing tests (1):'));
  assert.ok(r.stdout.indexOf('failing tests (1):') > summary, r.stdout);
  assert.match(list, /✖ fixture suite > fails on purpose\n/);
  // The line of the failing assertion, and its message.
  const line =
    readFileSync(join(ROOT, FIXTURES, 'failing.fixture.ts'), 'utf8')
      .split('\n')
      .indexOf('    assert.equal(1 + 1, 3);') + 1;
  assert.ok(
    list.includes(`${FIXTURES}/failing.fixture.ts:${line}  Expected values to be strictly equal: 2 !== 3`),
    list,
  );
  assert.doesNotMatch(list, /passes/);
});

test('a path that is not there is an error, not an empty run', () => {
  const r = runTests(`${FIXTURES}/missing.fixture.ts`);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no such test file or folder: .*missing\.fixture\.ts/);
});
