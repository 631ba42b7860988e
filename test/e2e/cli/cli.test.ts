import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { writeDeterministicImage } from '../../../src/operator/image.ts';
import { ENDPOINTS_FILE } from '../../../src/shared/endpoints.ts';
import { type DevProcess, ota, startDev } from './helpers.ts';

/**
 * The whole flow as a newcomer types it: `ota dev` in one terminal; `ota firmware put`,
 * `ota job create`, the agent with the original's flags, and `ota job executions` in another.
 */
describe('ota CLI against `ota dev`', () => {
  let dir: string;
  let dataDir: string;
  let dev: DevProcess;
  const KEY = 'firmware/CV150-C3_0.6.6/cv150_ubifs.img';
  const SIZE = 3 * 1024 * 1024 + 123;
  let imageSha = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ota-cli-'));
    dataDir = join(dir, '.ota');
    dev = await startDev(dataDir);
    imageSha = (await writeDeterministicImage(join(dir, 'cv150_ubifs.img'), SIZE)).sha256;
  });
  after(async () => {
    if (dev.child.exitCode === null) dev.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  test('endpoints.json has exactly the documented keys, with the default thing and the operator', () => {
    const e = JSON.parse(readFileSync(join(dataDir, ENDPOINTS_FILE), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(
      Object.keys(e).sort(),
      ['dashboard', 'iot', 'mqtt', 'operator', 'region', 'rootCA', 's3', 'things', 'ws', 'wss'].sort(),
    );
    assert.match(dev.endpoints.dashboard?.url ?? '', /^http:\/\/127\.0\.0\.1:\d+\/$/);
    assert.match(dev.output(), /Dashboard +http:\/\/127\.0\.0\.1:\d+\//);
    assert.equal(e.region, 'us-west-2');
    assert.equal(dev.endpoints.s3.bucket, 'dev-korea-job');
    assert.match(dev.endpoints.ws.url, /^ws:\/\/127\.0\.0\.1:\d+\/mqtt$/);
    assert.match(dev.endpoints.wss?.url ?? '', /^wss:\/\/127\.0\.0\.1:\d+\/mqtt$/);
    assert.ok(dev.endpoints.things.RaspberryPi_2);
    assert.ok(existsSync(dev.endpoints.rootCA));
    assert.ok(existsSync(dev.endpoints.operator.cert));
    assert.match(dev.output(), /npx ota job create --job-id rasp-ota-test/);
  });

  test('thing create issues a certificate and lists the thing; bad names are refused with the pattern', async () => {
    const r = await ota(['thing', 'create', '861234567890123', '--data-dir', dataDir, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { cert: string; key: string };
    assert.match(readFileSync(out.cert, 'utf8'), /BEGIN CERTIFICATE/);
    const e = JSON.parse(readFileSync(join(dataDir, ENDPOINTS_FILE), 'utf8'));
    assert.equal(e.things['861234567890123'].cert, out.cert);
    const list = await ota(['thing', 'list', '--data-dir', dataDir]);
    assert.match(list.stdout, /861234567890123/);
    const bad = await ota(['thing', 'create', 'bad name!', '--data-dir', dataDir]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /thingName: must match \^\[a-zA-Z0-9:_-\]\{1,128\}\$/);
  });

  test('firmware put → job create → agent with the original flags → SUCCEEDED in job executions', async () => {
    const docFile = join(dir, 'rasp-ota-job-docs.json');
    const put = await ota([
      'firmware',
      'put',
      join(dir, 'cv150_ubifs.img'),
      '--key',
      KEY,
      '--version',
      '41811020',
      '--out',
      docFile,
      '--data-dir',
      dataDir,
    ]);
    assert.equal(put.code, 0, put.stderr);
    const doc = JSON.parse(readFileSync(docFile, 'utf8'));
    assert.deepEqual(Object.keys(doc.firmware), ['version', 'size', 'region', 'url', 'sha256']);
    assert.equal(doc.firmware.url, `https://s3.amazonaws.com/dev-korea-job/${KEY}`);
    assert.equal(doc.firmware.sha256, imageSha);

    const create = await ota([
      'job',
      'create',
      '--job-id',
      'rasp-ota-test',
      '--thing',
      'RaspberryPi_2',
      '--document',
      docFile,
      '--continuous',
      '--data-dir',
      dataDir,
    ]);
    assert.equal(create.code, 0, create.stderr);
    assert.match(create.stdout, /created job rasp-ota-test/);
    const dup = await ota([
      'job',
      'create',
      '--job-id',
      'rasp-ota-test',
      '--thing',
      'RaspberryPi_2',
      '--document',
      docFile,
      '--data-dir',
      dataDir,
    ]);
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /ResourceAlreadyExistsException/);

    const list = await ota(['job', 'list', '--data-dir', dataDir, '--json']);
    assert.equal((JSON.parse(list.stdout) as Array<{ jobId: string }>)[0]?.jobId, 'rasp-ota-test');

    // The original's flags (-e -r -c -k -n), S3 credentials from the default AWS chain (env), as on a
    // device talking to AWS; only the endpoints point at the local stack.
    const e = dev.endpoints;
    const thing = e.things.RaspberryPi_2!;
    const agent = await ota(
      [
        'agent',
        '-e',
        e.mqtt.host,
        '-p',
        String(e.mqtt.port),
        '-r',
        e.rootCA,
        '-c',
        thing.cert,
        '-k',
        thing.key,
        '-n',
        'RaspberryPi_2',
        '--current-version',
        '41811019',
        '--download-dir',
        join(dir, 'device'),
        '--s3-endpoint',
        e.s3.endpoint,
        '--once',
        '--log-level',
        'warn',
      ],
      {
        env: {
          AWS_ACCESS_KEY_ID: e.s3.accessKeyId,
          AWS_SECRET_ACCESS_KEY: e.s3.secretAccessKey,
          AWS_REGION: e.region,
        },
      },
    );
    assert.equal(agent.code, 0, agent.stderr);
    assert.match(agent.stdout, /===== \[Job Info\] =====\nJob name: rasp-ota-test/);
    assert.match(
      agent.stdout,
      /===== \[Version Information\] =====\nNew Version: 41811020\nCurrent Version: 41811019/,
    );
    assert.match(agent.stderr, /rasp-ota-test SUCCEEDED/);
    const file = readFileSync(join(dir, 'device', 'cv150_ubifs.img'));
    assert.equal(createHash('sha256').update(file).digest('hex'), imageSha);

    const execs = await ota(['job', 'executions', 'rasp-ota-test', '--data-dir', dataDir, '--json']);
    const rows = JSON.parse(execs.stdout) as Array<{
      thingName: string;
      status: string;
      statusDetails: Record<string, string>;
    }>;
    assert.equal(rows[0]?.thingName, 'RaspberryPi_2');
    assert.equal(rows[0]?.status, 'SUCCEEDED');
    assert.equal(rows[0]?.statusDetails.sha256, imageSha);
    const table = await ota(['job', 'executions', 'rasp-ota-test', '--data-dir', dataDir]);
    assert.match(table.stdout, /RaspberryPi_2\s+SUCCEEDED/);
    const describe = await ota(['job', 'describe', 'rasp-ota-test', '--data-dir', dataDir]);
    assert.match(describe.stdout, /succeeded 1/);
  });

  test('kill -9 and restart: the execution keeps its state and version; SIGINT stops cleanly', async () => {
    const before = await ota(['job', 'executions', 'rasp-ota-test', '--data-dir', dataDir, '--json']);
    const rowBefore = (JSON.parse(before.stdout) as Array<{ status: string; versionNumber: number }>)[0];
    dev.child.kill('SIGKILL');
    await dev.exited;
    dev = await startDev(dataDir);
    const afterRestart = await ota(['job', 'executions', 'rasp-ota-test', '--data-dir', dataDir, '--json']);
    const rows = JSON.parse(afterRestart.stdout) as Array<{ status: string; versionNumber: number }>;
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.status, 'SUCCEEDED');
    assert.equal(rows[0]?.versionNumber, rowBefore?.versionNumber);

    dev.child.kill('SIGINT');
    assert.equal(await dev.exited, 0);
    assert.match(dev.output(), /ota dev: stopped/);
  });

  test('bad input gets one clear line naming the problem, and a non-zero exit', async () => {
    const badId = await ota([
      'job',
      'create',
      '--job-id',
      'has space',
      '--thing',
      'RaspberryPi_2',
      '--document',
      'x.json',
      '--data-dir',
      dataDir,
    ]);
    assert.equal(badId.code, 2);
    assert.match(badId.stderr, /job-id: must match/);
    const noThing = await ota(['agent', '-e', '127.0.0.1', '-c', 'c.pem', '-k', 'k.pem']);
    assert.equal(noThing.code, 2);
    assert.match(noThing.stderr, /thingName: required/);
    const noCert = await ota([
      'agent',
      '-e',
      '127.0.0.1',
      '-c',
      join(dir, 'missing.pem'),
      '-k',
      'k.pem',
      '-n',
      'RaspberryPi_2',
      '--once',
    ]);
    assert.equal(noCert.code, 2);
    assert.match(noCert.stderr, /^ota: cert: cannot read .*missing\.pem \(ENOENT\)\n$/);
    const badInterval = await ota(['agent', '--progress-interval', 'soon']);
    assert.notEqual(badInterval.code, 0);
    assert.match(badInterval.stderr, /--progress-interval: must be a number of seconds/);
    const noStack = await ota(['job', 'list', '--data-dir', join(dir, 'nowhere')]);
    assert.equal(noStack.code, 2);
    assert.match(noStack.stderr, /endpoints\.json not found: start the local stack first/);
    const badDoc = join(dir, 'bad.json');
    writeFileSync(badDoc, '{"firmware": ');
    const badJson = await ota([
      'job',
      'create',
      '--job-id',
      'j1',
      '--thing',
      'RaspberryPi_2',
      '--document',
      badDoc,
      '--data-dir',
      join(dir, 'nowhere'),
    ]);
    assert.equal(badJson.code, 2);
  });
});

describe('ota demo (what npm start runs)', () => {
  test('runs the original flow to SUCCEEDED, twice in a row on the same data dir', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ota-demo-test-'));
    try {
      for (let run = 1; run <= 2; run++) {
        const r = await ota(['demo', '--data-dir', dir, '--size', String(5 * 1024 * 1024)], {
          timeoutMs: 120_000,
        });
        assert.equal(r.code, 0, `run ${run}: ${r.stderr}\n${r.stdout}`);
        assert.match(r.stdout, /===== \[Job Info\] =====\nJob name: rasp-ota-test\nStatus: IN_PROGRESS/);
        assert.match(
          r.stdout,
          /===== \[Required Info for OTA\] =====\nFROM----->>\nBucket: dev-korea-job\nKey: firmware\/CV150-C3_0\.6\.6\/cv150_ubifs\.img/,
        );
        assert.match(r.stdout, /New Version: 41811020\nCurrent Version: 41811019/);
        assert.match(r.stdout, /"status": "SUCCEEDED"/);
        assert.match(r.stdout, /summary: 5242880 bytes in/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
