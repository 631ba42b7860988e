import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { type AgentHandle, resolveAgentConfig, startAgent } from '../../../src/device/index.ts';
import { iotClientFor, s3ClientFor } from '../../../src/operator/clients.ts';
import { createJob } from '../../../src/operator/jobs.ts';
import { type PacedLink, startPacedLink } from '../../../src/operator/paced-link.ts';
import { startTestStack, type TestStack } from '../../helpers/stack.ts';
import { ota } from './helpers.ts';

/**
 * `ota job executions` during a download: the execution's statusDetails still say `0/<size>` (the agent
 * updates them at most every statusDetailsIntervalMs), while the progress topic already has the count.
 */
const KEY = 'firmware/CV150-C3_0.6.6/cv150_ubifs.img';
const SIZE = 16 * 1024 * 1024;
let t: TestStack;
let link: PacedLink;
let agent: AgentHandle;
const progressed: Array<{ bytes: number }> = [];

before(async () => {
  t = await startTestStack('ota-exec-progress');
  const e = t.stack.endpoints;
  await s3ClientFor({ kind: 'local', endpoints: e }).send(
    new PutObjectCommand({ Bucket: e.s3.bucket, Key: KEY, Body: Buffer.alloc(SIZE, 3) }),
  );
  await createJob(iotClientFor({ kind: 'local', endpoints: e }), {
    jobId: 'live-progress',
    things: ['RaspberryPi_2'],
    document: JSON.stringify({
      firmware: {
        version: '41811020',
        size: SIZE,
        region: 'us-west-2',
        url: `https://s3.amazonaws.com/${e.s3.bucket}/${KEY}`,
      },
    }),
  });
  // 16 MiB at 250 kB/s: the download lasts over a minute, so it is still running when the tests ask,
  // however loaded the machine is. after() stops the agent mid-download.
  link = await startPacedLink(e.s3.endpoint, 250_000);
  const config = resolveAgentConfig({
    flags: {
      local: t.stack.dataDir,
      thingName: 'RaspberryPi_2',
      currentVersion: '41811019',
      downloadDir: join(t.dir, 'device'),
      s3Endpoint: link.endpoint,
      progressIntervalMs: 100,
      // The agent's statusDetails stay at their first figure for the length of this test.
      statusDetailsIntervalMs: 600_000,
    },
    env: {},
  });
  agent = startAgent({ config, onEvent: (ev) => ev.type === 'progress' && progressed.push(ev) });
  const deadline = Date.now() + 30_000;
  while (!progressed.some((p) => p.bytes > 0)) {
    if (Date.now() > deadline) throw new Error('the agent did not start downloading');
    await new Promise((r) => setTimeout(r, 50));
  }
});

after(async () => {
  await agent?.stop();
  await link?.close();
  await t?.close();
});

interface Row {
  thingName: string;
  status: string;
  statusDetails?: Record<string, string>;
  progress?: { bytes: number; total: number; percent: string; source: string };
}

test('job executions shows the progress topic’s newer count, not statusDetails’ 0/<size>', async () => {
  const r = await ota(['job', 'executions', 'live-progress', '--data-dir', t.stack.dataDir, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const [row] = JSON.parse(r.stdout) as Row[];
  assert.equal(row?.status, 'IN_PROGRESS');
  // What the service knows is still the first report ...
  assert.equal(row?.statusDetails?.progress, `0/${SIZE}`);
  // ... and the row's progress is the device's own, newer figure.
  assert.equal(row?.progress?.source, 'progress-topic');
  assert.equal(row?.progress?.total, SIZE);
  assert.ok((row?.progress?.bytes ?? 0) > 0, JSON.stringify(row));
  assert.ok((row?.progress?.bytes ?? 0) < SIZE);

  const table = await ota(['job', 'executions', 'live-progress', '--data-dir', t.stack.dataDir]);
  assert.equal(table.code, 0, table.stderr);
  assert.match(
    table.stdout,
    // `1.2/16.0 MiB`, or `838.9 KiB/16.0 MiB` below 1 MiB (how far a loaded machine got)
    /RaspberryPi_2\s+IN_PROGRESS\s+1\s+\d+\s+\S+\s+[\d.]+% [\d.]+(?: (?:B|KiB))?\/16\.0 MiB \(live\)/,
  );
  assert.doesNotMatch(table.stdout, /"progress":"0\//);
});

test('--no-live keeps to what the Jobs service says', async () => {
  const r = await ota([
    'job',
    'executions',
    'live-progress',
    '--data-dir',
    t.stack.dataDir,
    '--json',
    '--no-live',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const [row] = JSON.parse(r.stdout) as Row[];
  assert.equal(row?.statusDetails?.progress, `0/${SIZE}`);
  assert.equal(row?.progress, undefined);
});
