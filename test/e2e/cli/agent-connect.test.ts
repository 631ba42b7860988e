import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreateJobCommand, DescribeThingCommand, IoTClient } from '@aws-sdk/client-iot';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { localS3ClientConfig } from '../../../src/shared/s3-client-config.ts';
import { type DevProcess, ota, spawnOta, startDev } from './helpers.ts';

/**
 * `ota agent` as a new user meets it when something is wrong with the connection:
 * a bounded `--once` that names the likely cause, a long-running agent that says why once and says when
 * it is connected and waiting, no warning at the end of a good run, and a word about config keys it
 * does not know.
 */

const lines = (s: string) => s.split('\n').filter((l) => l !== '');
/** JSON log lines (stderr is no terminal) at warn (40) or above. */
const warnings = (stderr: string) =>
  lines(stderr)
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: number; msg: string })
    .filter((l) => l.level >= 40);

const spawnAgent = (args: string[]) => spawnOta(['agent', ...args]);

async function waitUntil(pred: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('ota agent: connecting', () => {
  let dir: string;
  let dataDir: string;
  let dev: DevProcess;
  let thing: { cert: string; key: string };
  let port: number;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ota-agent-connect-'));
    dataDir = join(dir, '.ota');
    dev = await startDev(dataDir);
    thing = dev.endpoints.things.RaspberryPi_2 as { cert: string; key: string };
    port = dev.endpoints.mqtt.port;
  });
  after(() => {
    if (dev.child.exitCode === null) dev.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  const flags = (name = 'RaspberryPi_2') => [
    '-e',
    '127.0.0.1',
    '-p',
    String(port),
    '-r',
    dev.endpoints.rootCA,
    '-c',
    thing.cert,
    '-k',
    thing.key,
    '-n',
    name,
  ];

  test('--once with a good job: SUCCEEDED, unknown config keys named, and no warning about the connection', async () => {
    const e = dev.endpoints;
    const key = 'firmware/CV150-C3_0.6.6/cv150_ubifs.img';
    const s3 = new S3Client(localS3ClientConfig(e.s3.endpoint, e.s3, e.region));
    const iot = new IoTClient({
      endpoint: e.iot.endpoint,
      region: e.region,
      credentials: { accessKeyId: e.iot.accessKeyId, secretAccessKey: e.iot.secretAccessKey },
    });
    try {
      await s3.send(new PutObjectCommand({ Bucket: e.s3.bucket, Key: key, Body: randomBytes(300_000) }));
      const t = await iot.send(new DescribeThingCommand({ thingName: 'RaspberryPi_2' }));
      const document = {
        firmware: { version: '41811020', size: 300_000, region: e.region, url: `s3://${e.s3.bucket}/${key}` },
      };
      await iot.send(
        new CreateJobCommand({
          jobId: 'connect-ok',
          targets: [t.thingArn as string],
          document: JSON.stringify(document),
        }),
      );
    } finally {
      s3.destroy();
      iot.destroy();
    }
    const config = join(dir, 'agent.json');
    writeFileSync(
      config,
      JSON.stringify({
        thingname: 'x',
        downloadRetries: 3,
        progressInterval: 0.5,
        currentVersion: '41811019',
      }),
    );
    const r = await ota(
      [
        'agent',
        '--local',
        dataDir,
        '-n',
        'RaspberryPi_2',
        '--config',
        config,
        '--download-dir',
        join(dir, 'dl'),
        '--once',
      ],
      { timeoutMs: 60_000 },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /connect-ok SUCCEEDED/);
    const warned = warnings(r.stderr).map((l) => l.msg);
    assert.equal(warned.length, 2, r.stderr);
    assert.match(
      warned[0] ?? '',
      /agent\.json: unknown key "thingname" \(did you mean thingName\?\); it is ignored$/,
    );
    assert.match(warned[1] ?? '', /agent\.json: downloadRetries is no longer used: .*downloadRetryWindowMs/);
    // A good --once run ends without an MQTT error such as `mqtt error read ECONNRESET`.
    assert.doesNotMatch(r.stderr, /ECONNRESET|mqtt error/);
  });

  test('a client id that is not the thing name: CONNACK 5 says so, exit 2 at once', async () => {
    const config = join(dir, 'client-id.json');
    writeFileSync(config, JSON.stringify({ clientId: 'not-the-thing' }));
    const r = await ota(
      ['agent', ...flags(), '--config', config, '--download-dir', join(dir, 'dl'), '--once'],
      {
        timeoutMs: 60_000,
      },
    );
    assert.equal(r.code, 2, r.stderr);
    assert.deepEqual(lines(r.stderr), [
      `ota: cannot connect to mqtts://127.0.0.1:${port} as not-the-thing: the broker refused the connection ` +
        '(CONNACK 5, not authorized): the MQTT client id "not-the-thing" is not the thing name RaspberryPi_2; ' +
        'the broker requires the client id to be the thing name (leave clientId unset)',
    ]);
  });

  test('the long-running agent prints one line when it is connected and waiting for jobs', async () => {
    const a = spawnAgent(['--local', dataDir, '-n', 'RaspberryPi_2', '--download-dir', join(dir, 'dl')]);
    try {
      await waitUntil(() => /waiting for jobs/.test(a.stderr()), 'the waiting line');
      a.child.kill('SIGTERM');
      assert.equal(await a.exited, 0, a.stderr());
    } finally {
      a.child.kill('SIGKILL');
    }
    const waiting = lines(a.stderr()).filter((l) => l.includes('waiting for jobs'));
    assert.equal(waiting.length, 1, a.stderr());
    assert.match(
      waiting[0] ?? '',
      new RegExp(`connected to mqtts://127\\.0\\.0\\.1:${port} as RaspberryPi_2; waiting for jobs`),
    );
  });

  test('a certificate whose CN is another thing: refused before connecting, naming both', async () => {
    const r = await ota(['agent', ...flags('Cam_other'), '--download-dir', join(dir, 'dl'), '--once']);
    assert.equal(r.code, 2, r.stderr);
    assert.deepEqual(lines(r.stderr), [
      "ota: the certificate's CN is RaspberryPi_2 but --thing-name is Cam_other: the local broker takes the CN " +
        'as the thing name; pass -n RaspberryPi_2, or the certificate of Cam_other (`ota thing create Cam_other`)',
    ]);
  });

  describe('after `ota dev` has stopped', () => {
    before(async () => {
      dev.child.kill('SIGINT');
      assert.equal(await dev.exited, 0);
    });

    test('--once with --local: one line, the stack at that data dir is not running', async () => {
      const r = await ota(
        ['agent', '--local', dataDir, '-n', 'RaspberryPi_2', '--download-dir', join(dir, 'dl'), '--once'],
        {
          timeoutMs: 30_000,
        },
      );
      assert.equal(r.code, 1, r.stderr);
      assert.deepEqual(lines(r.stderr), [
        `ota: the local stack at ${dataDir} is not running (nothing listens on 127.0.0.1:${port}; its ` +
          `endpoints.json is left from an \`ota dev\` that has stopped): start it with \`ota dev --data-dir ${dataDir}\``,
      ]);
    });

    test('--once with no broker: exits 1 after --connect-timeout, naming host:port; the reason told once', async () => {
      const r = await ota(
        ['agent', ...flags(), '--download-dir', join(dir, 'dl'), '--once', '--connect-timeout', '3'],
        {
          timeoutMs: 30_000,
        },
      );
      assert.equal(r.code, 1, r.stderr);
      const last = lines(r.stderr).pop() ?? '';
      assert.equal(
        last,
        `ota: no connection to mqtts://127.0.0.1:${port} within 3 s (--connect-timeout): nothing listening on ` +
          `127.0.0.1:${port} (connection refused): is the endpoint and port right, and the broker up?`,
      );
      const warned = warnings(r.stderr);
      assert.equal(warned.length, 1, r.stderr);
      assert.match(
        warned[0]?.msg ?? '',
        /nothing listening on .* \(retrying with backoff, at most 60 s apart\)$/,
      );
    });

    test('the long-running agent keeps retrying and says why once, not at every attempt', async () => {
      const a = spawnAgent([...flags(), '--download-dir', join(dir, 'dl'), '--log-level', 'debug']);
      const attempts = () =>
        lines(a.stderr()).filter((l) => l.includes('mqtt connection closed; reconnecting')).length;
      try {
        await waitUntil(() => attempts() >= 3, 'three failed attempts');
        a.child.kill('SIGTERM');
        assert.equal(await a.exited, 0, a.stderr());
      } finally {
        a.child.kill('SIGKILL');
      }
      const warned = warnings(a.stderr());
      assert.equal(warned.length, 1, a.stderr());
      assert.match(
        warned[0]?.msg ?? '',
        new RegExp(`^cannot connect to mqtts://127\\.0\\.0\\.1:${port} as RaspberryPi_2: nothing listening`),
      );
    });
  });
});
