import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startTestStack } from '../../helpers/stack.ts';
import { OTA_BIN, ota } from '../cli/helpers.ts';

/** `ota dashboard` as an operator runs it: against a running local stack, a stopped one, and AWS without credentials. */

/** Starts `ota <args>` and waits until its output matches `ready`; `stop` sends SIGINT and gives the exit code. */
async function startOta(args: string[], ready: RegExp, timeoutMs = 60_000) {
  const child = spawn(process.execPath, [OTA_BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  });
  let out = '';
  const collect = (d: Buffer) => {
    out += d;
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = ready.exec(out);
    if (match) {
      const stop = () => {
        child.kill('SIGINT');
        return exited;
      };
      return { match, output: () => out, stop };
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`ota ${args.join(' ')} did not get ready:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('ota dashboard serves the page for a running local stack and stops on Ctrl-C', async () => {
  const t = await startTestStack('ota-e2e-dashboard-cli');
  try {
    const run = await startOta(
      ['dashboard', '--data-dir', t.stack.dataDir, '--port', '0'],
      /ota dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/,
    );
    const url = run.match[1] as string;
    assert.match(run.output(), /local stack http:\/\/127\.0\.0\.1:\d+/);
    const page = await fetch(url);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /OTA fleet dashboard/);
    assert.equal(await run.stop(), 0, run.output());
  } finally {
    await t.close();
  }
});

test('ota dashboard against a stopped local stack exits non-zero with one line that says so', async () => {
  const t = await startTestStack('ota-e2e-dashboard-cli-stale');
  const dataDir = t.stack.dataDir;
  await t.stack.close(); // endpoints.json stays behind, stale
  try {
    const r = await ota(['dashboard', '--data-dir', dataDir, '--port', '0'], { timeoutMs: 45_000 });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^ota: the local stack at .* is not running .*start it with `ota dev --data-dir /);
  } finally {
    await rm(t.dir, { recursive: true, force: true });
  }
});

test('ota dashboard --aws without credentials exits non-zero with one line that says what to do', async () => {
  const home = await mkdtemp(join(tmpdir(), 'ota-e2e-dashboard-nohome-'));
  try {
    const env: NodeJS.ProcessEnv = { HOME: home, AWS_REGION: 'us-west-2', AWS_EC2_METADATA_DISABLED: 'true' };
    for (const k of [
      'AWS_ACCESS_KEY_ID',
      'AWS_SECRET_ACCESS_KEY',
      'AWS_SESSION_TOKEN',
      'AWS_PROFILE',
      'AWS_ROLE_ARN',
      'AWS_WEB_IDENTITY_TOKEN_FILE',
      'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI',
      'AWS_CONTAINER_CREDENTIALS_FULL_URI',
    ]) {
      env[k] = '';
    }
    const r = await ota(['dashboard', '--aws', '--port', '0'], {
      env: { ...env, AWS_CONFIG_FILE: join(home, 'none'), AWS_SHARED_CREDENTIALS_FILE: join(home, 'none') },
      timeoutMs: 45_000,
    });
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^ota: no AWS credentials found/);
  } finally {
    await rm(home, { recursive: true, force: true });
  }
});

test('ota demo --keep prints the dashboard URL and keeps it up until Ctrl-C', async () => {
  const run = await startOta(
    ['demo', '--keep', '--size', '100000', '--rate', '0'],
    /stays up \(--keep\): dashboard (http:\/\/127\.0\.0\.1:\d+\/); Ctrl-C to stop/,
  );
  const url = run.match[1] as string;
  const page = await fetch(url);
  assert.equal(page.status, 200);
  assert.equal(await run.stop(), 0, run.output());
});
