import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { explainError, missingOptionalPackage, NOT_FOR_THE_AGENT } from '../../../src/cli/errors.ts';
import { OtaError, ValidationError } from '../../../src/shared/errors.ts';

const refused = (port: number) =>
  Object.assign(new Error(`connect ECONNREFUSED 127.0.0.1:${port}`), {
    code: 'ECONNREFUSED',
    address: '127.0.0.1',
    port,
  });

test('connection refused, wherever it sits in the cause chain, names the stopped stack', () => {
  const wrapped = new OtaError('OTA_CONNECT', 'cannot connect', { cause: refused(8883) });
  const aggregate = Object.assign(new AggregateError([new Error('x'), refused(8780)], 'fetch failed'), {
    $metadata: {},
  });
  for (const [err, port] of [
    [refused(4569), 4569],
    [wrapped, 8883],
    [aggregate, 8780],
  ] as const) {
    const out = explainError(err, { dataDir: '/d/.ota' });
    assert.equal(out.exitCode, 1);
    assert.equal(
      out.line,
      `the local stack at /d/.ota is not running (nothing listens on 127.0.0.1:${port}; its endpoints.json ` +
        'is left from an `ota dev` that has stopped): start it with `ota dev --data-dir /d/.ota`',
    );
  }
  assert.equal(
    explainError(refused(1), {}).line,
    'cannot connect to 127.0.0.1:1: nothing is listening there',
  );
});

test('expected mistakes are one line; a bug keeps its stack', () => {
  assert.deepEqual(explainError(new ValidationError('job-id', 'must match x'), {}), {
    line: 'job-id: must match x',
    exitCode: 2,
  });
  const missing = Object.assign(new Error("Cannot find package 'better-sqlite3' imported from /x.js"), {
    code: 'ERR_MODULE_NOT_FOUND',
  });
  assert.match(
    explainError(missing, {}).line,
    /^this command needs better-sqlite3, which an agent-only install \(npm install --omit=optional\) leaves out/,
  );
  const badPem = Object.assign(new Error('error:0480006C:PEM routines::no start line'), {
    code: 'ERR_OSSL_PEM_NO_START_LINE',
  });
  assert.match(explainError(badPem, {}).line, /^TLS credentials: .*no start line: check that --cert, --key/);
  const bug = new TypeError('x is not a function');
  assert.equal(explainError(bug, {}).line, bug.stack);
});

test("the packages an agent-only install lacks are package.json's optionalDependencies, and are named", () => {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    optionalDependencies: Record<string, string>;
  };
  assert.deepEqual([...NOT_FOR_THE_AGENT].sort(), Object.keys(pkg.optionalDependencies).sort());
  const err = Object.assign(new Error("Cannot find package 'aedes' imported from /x/dist/cli/main.js"), {
    code: 'ERR_MODULE_NOT_FOUND',
  });
  assert.equal(missingOptionalPackage(err), 'aedes');
});
