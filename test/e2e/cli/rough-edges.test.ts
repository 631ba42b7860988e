import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type DevProcess, ota, startDev } from './helpers.ts';

/** What a new user runs into first, through the `ota` command as they type it. */

/** No AWS settings from this machine: an empty HOME, no AWS_* variables, and no instance metadata. */
const noAwsEnv = (dir: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { HOME: dir, AWS_EC2_METADATA_DISABLED: 'true', ...extra };
  for (const k of Object.keys(process.env)) if (k.startsWith('AWS_') && !(k in env)) env[k] = undefined;
  return env;
};

const lines = (s: string) => s.split('\n').filter((l) => l !== '');

test('ota --version prints the package version', async () => {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'));
  for (const flag of ['--version', '-V']) {
    const r = await ota([flag]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${pkg.version}\n`);
  }
});

test('a bad flag prints one error line and where the help is, not the whole help', async () => {
  const r = await ota(['job', 'list', '--bogus']);
  assert.equal(r.code, 1);
  assert.deepEqual(lines(r.stderr), [
    "error: unknown option '--bogus'",
    '(run `ota job list --help` for usage)',
  ]);
  assert.doesNotMatch(r.stderr, /Usage:/);
  const port = await ota(['watch', '--port', '70000']);
  assert.equal(port.code, 1);
  assert.equal(lines(port.stderr).length, 2, port.stderr);
  assert.match(port.stderr, /--port: must be 1-65535\n\(run `ota watch --help` for usage\)\n$/);
  const cmd = await ota(['jbo']);
  assert.equal(
    cmd.stderr,
    "error: unknown command 'jbo'\n(Did you mean job?)\n(run `ota --help` for usage)\n",
  );
});

describe('--aws without AWS settings', () => {
  let home: string;
  before(() => {
    home = mkdtempSync(join(tmpdir(), 'ota-noaws-'));
  });
  after(() => rmSync(home, { recursive: true, force: true }));

  test('no credentials: one line that says how to give them, no stack trace', async () => {
    const r = await ota(['job', 'list', '--aws', '--region', 'us-west-2'], { env: noAwsEnv(home) });
    assert.equal(r.code, 2, r.stderr);
    assert.equal(lines(r.stderr).length, 1, r.stderr);
    assert.match(r.stderr, /^ota: no AWS credentials found .*--profile.*AWS_ACCESS_KEY_ID.*aws configure/);
  });

  test('no region: one line that says how to give it', async () => {
    const r = await ota(['job', 'list', '--aws'], { env: noAwsEnv(home) });
    assert.equal(r.code, 2, r.stderr);
    assert.equal(lines(r.stderr).length, 1, r.stderr);
    assert.match(r.stderr, /^ota: no AWS region: pass --region or set AWS_REGION/);
  });
});

describe('after `ota dev` has stopped', () => {
  let dir: string;
  let dataDir: string;
  let dev: DevProcess;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ota-stale-'));
    dataDir = join(dir, '.ota');
    dev = await startDev(dataDir);
    dev.child.kill('SIGINT');
    assert.equal(await dev.exited, 0);
  });
  after(() => {
    if (dev.child.exitCode === null) dev.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  const notRunning = (dataDirPath: string) =>
    new RegExp(
      `^ota: the local stack at ${dataDirPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not running \\(nothing listens on 127\\.0\\.0\\.1:\\d+; .*start it with \`ota dev --data-dir `,
    );

  test('ota watch exits non-zero with one line saying the stack is not running instead of hanging', async () => {
    const r = await ota(['watch', '--data-dir', dataDir], { timeoutMs: 30_000 });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(lines(r.stderr).length, 1, r.stderr);
    assert.match(r.stderr, notRunning(dataDir));
    assert.equal(r.stdout, '');
  });

  test('ota job list / executions say the same instead of a bare ECONNREFUSED', async () => {
    for (const args of [
      ['job', 'list'],
      ['job', 'executions', 'rasp-ota-test'],
    ]) {
      const r = await ota([...args, '--data-dir', dataDir], { timeoutMs: 30_000 });
      assert.equal(r.code, 1, r.stderr);
      assert.equal(lines(r.stderr).length, 1, r.stderr);
      assert.match(r.stderr, notRunning(dataDir));
    }
  });

  test('a key that is not the certificate’s gets one line that says what to do', async () => {
    const e = dev.endpoints;
    const r = await ota(
      [
        'watch',
        '-e',
        '127.0.0.1',
        '-p',
        String(e.mqtt.port),
        '-r',
        e.rootCA,
        '-c',
        e.operator.cert,
        '-k',
        e.things.RaspberryPi_2?.key ?? '',
      ],
      { timeoutMs: 30_000 },
    );
    assert.equal(r.code, 2, r.stderr);
    assert.deepEqual(lines(r.stderr), [
      'ota: the private key does not belong to the certificate: pass the key that was issued with it (--key)',
    ]);
  });
});
