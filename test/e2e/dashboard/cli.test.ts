import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startTestStack } from '../../helpers/stack.ts';
import { OTA_BIN, ota } from '../cli/helpers.ts';

/** `ota dashboard` as an operator runs it: against a running local stack, a stopped one, and AWS without credentials. */

test('ota dashboard serves the page for a running local stack and stops on Ctrl-C', async () => {
  const t = await startTestStack('ota-e2e-dashboard-cli');
  try {
    const child = spawn(
      process.execPath,
      [OTA_BIN, 'dashboard', '--data-dir', t.stack.dataDir, '--port', '0'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
      },
    );
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const deadline = Date.now() + 30_000;
    let url: string | undefined;
    while (!url) {
      url = /ota dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out)?.[1];
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`ota dashboard did not start:\n${out}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(out, /local stack http:\/\/127\.0\.0\.1:\d+/);
    const page = await fetch(url);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /OTA fleet dashboard/);
    child.kill('SIGINT');
    assert.equal(await exited, 0, out);
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
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(
      r.stderr,
      /^ota: cannot subscribe over MQTT\/WebSocket to the local stack at .* \(is `ota dev --data-dir .*` running\?\)/,
    );
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
    assert.match(r.stderr, /^ota: AWS: .*check your AWS credentials and region/);
  } finally {
    await rm(home, { recursive: true, force: true });
  }
});

test('ota demo --keep prints the dashboard URL and keeps it up until Ctrl-C', async () => {
  const child = spawn(process.execPath, [OTA_BIN, 'demo', '--keep', '--size', '100000', '--rate', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  });
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  child.stderr.on('data', (d) => {
    out += d;
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const deadline = Date.now() + 60_000;
  while (!out.includes('Ctrl-C to stop')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`ota demo --keep did not stay up:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const url = /stays up \(--keep\): dashboard (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out)?.[1];
  assert.ok(url, out);
  const page = await fetch(url);
  assert.equal(page.status, 200);
  child.kill('SIGINT');
  assert.equal(await exited, 0, out);
});
