import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CreateJobCommand, DescribeThingCommand, GetJobDocumentCommand } from '@aws-sdk/client-iot';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import mqtt, { type MqttClient } from 'mqtt';
import { type LocalStack, startLocalStack } from '../../../src/cloud/stack.ts';
import { iotClientFor, s3ClientFor } from '../../../src/operator/clients.ts';
import { ManualClock } from '../../../src/shared/clock.ts';
import { jobsTopics } from '../../../src/shared/topics.ts';

/**
 * `${aws:iot:s3-presigned-url:...}` through the whole stack (docs/protocol.md, Presigned URL placeholders):
 * the Jobs service asks the real S3 store for a fresh URL on every delivery; the URL works with a plain GET,
 * expires after `presignedUrlConfig.expiresInSec` (scaled by --minute-ms, here 1 minute = 4 s), and
 * `{jobId}/get` gives a fresh one.
 *
 * The stack runs on a ManualClock: the test moves it to the expiry that the URL itself states
 * (X-Amz-Date + X-Amz-Expires; X-Amz-Date has whole seconds, as on AWS) instead of waiting for it. The
 * clock starts on a whole second, so that instant is the URL's last valid millisecond.
 */
const THING = 'Dashcam_presign';
const KEY = 'firmware/CV150-C3_0.6.7/cv150_ubifs.img';
let dir: string;
let stack: LocalStack;
let client: MqttClient;
const clock = new ManualClock({ start: Math.ceil(Date.now() / 1000) * 1000 });
const body = Buffer.from('firmware image bytes '.repeat(1000));

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ota-presign-'));
  stack = await startLocalStack({
    dataDir: dir,
    mqttPort: 0,
    wsPort: 0,
    iotPort: 0,
    s3Port: 0,
    minuteMs: 4000,
    things: [THING],
    clock,
  });
  const e = stack.endpoints;
  await s3ClientFor({ kind: 'local', endpoints: e }).send(
    new PutObjectCommand({ Bucket: e.s3.bucket, Key: KEY, Body: body }),
  );
  const t = e.things[THING]!;
  client = await mqtt.connectAsync({
    protocol: 'mqtts',
    host: e.mqtt.host,
    port: e.mqtt.port,
    protocolVersion: 4,
    clientId: THING,
    ca: readFileSync(e.rootCA),
    cert: readFileSync(t.cert),
    key: readFileSync(t.key),
    reconnectPeriod: 0,
  });
  await client.subscribeAsync(jobsTopics(THING).all, { qos: 1 });
});
after(async () => {
  await client?.endAsync();
  await stack?.close();
  await rm(dir, { recursive: true, force: true });
});

/** When the presigned URL stops working: X-Amz-Date (yyyyMMddTHHmmssZ) + X-Amz-Expires seconds. */
function expiresAt(url: string): number {
  const q = new URL(url).searchParams;
  const d = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(q.get('X-Amz-Date') ?? '');
  assert.ok(d, url);
  const [, y, mo, da, h, mi, se] = d.map(Number);
  return Date.UTC(y!, mo! - 1, da!, h!, mi!, se!) + Number(q.get('X-Amz-Expires')) * 1000;
}

function request(topic: string, payload: object, replyTopic: string): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const onMessage = (t: string, p: Buffer) => {
      if (t !== replyTopic) return;
      client.off('message', onMessage);
      resolve(JSON.parse(p.toString('utf8')) as Record<string, unknown>);
    };
    client.on('message', onMessage);
    client.publish(topic, JSON.stringify(payload), { qos: 1 });
  });
}

test('placeholders become fresh presigned URLs of the local store, which expire', async () => {
  const e = stack.endpoints;
  const iot = iotClientFor({ kind: 'local', endpoints: e });
  const thing = await iot.send(new DescribeThingCommand({ thingName: THING }));
  const placeholder = `\${aws:iot:s3-presigned-url:https://s3.us-west-2.amazonaws.com/${e.s3.bucket}/${KEY}}`;
  await iot.send(
    new CreateJobCommand({
      jobId: 'presigned-job',
      targets: [thing.thingArn!],
      document: JSON.stringify({
        firmware: { version: '41811021', size: body.length, region: 'us-west-2', url: placeholder },
      }),
      presignedUrlConfig: { expiresInSec: 60 },
    }),
  );
  // The control plane returns the document as stored.
  const stored = await iot.send(new GetJobDocumentCommand({ jobId: 'presigned-job' }));
  assert.match(stored.document ?? '', /\$\{aws:iot:s3-presigned-url:/);

  const topics = jobsTopics(THING);
  const started = await request(topics.startNext, { clientToken: 't1' }, topics.startNextAccepted);
  const exec = started.execution as { jobDocument: { firmware: { url: string } } };
  const url1 = exec.jobDocument.firmware.url;
  assert.ok(url1.startsWith(`${e.s3.endpoint}/${e.s3.bucket}/${KEY}?`), url1);
  assert.match(url1, /X-Amz-Signature=/);
  assert.match(url1, /X-Amz-Expires=4(&|$)/); // 60 s at 1 minute = 4 s
  const ok = await fetch(url1);
  assert.equal(ok.status, 200);
  assert.deepEqual(Buffer.from(await ok.arrayBuffer()), body);

  await clock.advance(expiresAt(url1) - clock.now());
  assert.equal((await fetch(url1)).status, 200, 'valid through its last millisecond');
  await clock.advance(1);
  const expired = await fetch(url1);
  assert.equal(expired.status, 403);
  assert.match(await expired.text(), /expired/i);

  // The device asks for the execution again and gets a fresh URL (docs/protocol.md, Presigned URL
  // placeholders).
  const again = await request(
    topics.describe('presigned-job'),
    { clientToken: 't2' },
    topics.describeAccepted('presigned-job'),
  );
  const url2 = (again.execution as { jobDocument: { firmware: { url: string } } }).jobDocument.firmware.url;
  assert.notEqual(url2, url1);
  assert.equal((await fetch(url2)).status, 200);
});
