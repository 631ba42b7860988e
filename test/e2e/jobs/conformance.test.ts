/**
 * Jobs MQTT API conformance over real sockets: MQTT.js clients with client certificates (mTLS) through the
 * real broker, the real Jobs service and a file-backed SQLite database (docs/protocol.md).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt, { type MqttClient } from 'mqtt';
import { startBroker } from '../../../src/cloud/broker/broker.ts';
import type { RunningBroker } from '../../../src/cloud/broker/types.ts';
import { createJobsService, type JobsService } from '../../../src/cloud/jobs/service.ts';
import { ensureLocalCa, type LocalCa } from '../../../src/cloud/pki/pki.ts';
import { ManualClock } from '../../../src/shared/clock.ts';

const REGION = 'us-west-2';
const ACCOUNT = '000000000000';
const MINUTE_MS = 100;
const thingArn = (n: string) => `arn:aws:iot:${REGION}:${ACCOUNT}:thing/${n}`;
const groupArn = (n: string) => `arn:aws:iot:${REGION}:${ACCOUNT}:thinggroup/${n}`;
const T = (thing: string, suffix: string) => `$aws/things/${thing}/jobs/${suffix}`;
const placeholder = (url: string) => `\${aws:iot:s3-presigned-url:${url}}`;

// biome-ignore lint/suspicious/noExplicitAny: received payloads are arbitrary JSON inspected field by field.
type Msg = { topic: string; payload: any };

interface Device {
  thing: string;
  client: MqttClient;
  received: Msg[];
  /** Publishes a request and resolves with the accepted/rejected reply carrying the same clientToken. */
  request(suffix: string, body: Record<string, unknown>): Promise<Msg>;
  /** Publishes raw bytes and resolves with the next reply on `<topic>/accepted|rejected`. */
  requestRaw(suffix: string, payload: string | Buffer): Promise<Msg>;
  next(topic: string, pred?: (m: Msg) => boolean, ms?: number): Promise<Msg>;
  close(): Promise<void>;
}

interface Stack {
  dir: string;
  /** The Jobs service's clock: the timer tests move it instead of waiting (it starts at the real time). */
  clock: ManualClock;
  ca: LocalCa;
  jobs: JobsService;
  broker: RunningBroker;
  presigned: string[];
  /** Stops broker and service, then starts both again on the same database. */
  restart(): Promise<void>;
  connect(thing: string): Promise<Device>;
  close(): Promise<void>;
}

async function startStack(): Promise<Stack> {
  const dir = await mkdtemp(join(tmpdir(), 'ota-jobs-e2e-'));
  const ca = await ensureLocalCa(join(dir, 'pki'));
  const presigned: string[] = [];
  let counter = 0;
  const devices: Device[] = [];
  const clock = new ManualClock({ start: Date.now() });

  const start = async () => {
    let broker: RunningBroker | undefined;
    const jobs = createJobsService({
      dbPath: join(dir, 'jobs.sqlite'),
      region: REGION,
      accountId: ACCOUNT,
      minuteMs: MINUTE_MS,
      clock,
      publish: async (topic, payload, qos) => {
        if (broker !== undefined) await broker.publish(topic, payload, qos);
      },
      // A simple signer stands in for the object store's (another component's) presigner.
      presign: async (url, expires) => {
        counter += 1;
        const signed = `${url}?X-Amz-Expires=${expires}&X-Amz-Signature=s${counter}`;
        presigned.push(signed);
        return signed;
      },
    });
    broker = await startBroker({
      host: '127.0.0.1',
      mqttPort: 0,
      wsPort: 0,
      tls: { ca: ca.caCertPem, cert: ca.serverCertPem, key: ca.serverKeyPem },
      isRegisteredThing: (name) => {
        try {
          jobs.controlPlane.describeThing(name);
          return true;
        } catch {
          return false;
        }
      },
      wsCredentials: { accessKeyId: 'AKIDJOBSE2E', secretAccessKey: 'jobs-e2e-secret', region: REGION },
      services: [jobs.topicService],
    });
    return { jobs, broker };
  };

  let running = await start();
  const stack: Stack = {
    dir,
    clock,
    ca,
    presigned,
    get jobs() {
      return running.jobs;
    },
    get broker() {
      return running.broker;
    },
    async restart() {
      for (const d of devices.splice(0)) await d.close();
      await running.broker.close();
      running.jobs.close();
      running = await start();
    },
    async connect(thing) {
      const cert = await ca.issueClientCert(thing);
      const client = await mqtt.connectAsync(`mqtts://127.0.0.1:${running.broker.mqttPort}`, {
        ca: ca.caCertPem,
        cert: cert.certPem,
        key: cert.keyPem,
        // AWS's recommended policy (and the broker's default): the client id is the thing name.
        clientId: thing,
        protocolVersion: 4,
        reconnectPeriod: 0,
        connectTimeout: 5000,
      });
      const received: Msg[] = [];
      const waiters: { topic: string; pred: (m: Msg) => boolean; resolve: (m: Msg) => void }[] = [];
      client.on('message', (topic, payload) => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(payload.toString('utf8'));
        } catch {
          parsed = payload.toString('utf8');
        }
        const m: Msg = { topic, payload: parsed };
        received.push(m);
        for (const w of [...waiters]) {
          if (w.topic === topic && w.pred(m)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(m);
          }
        }
      });
      // The device's own Jobs topics, as the AWS IoT Device Client subscribes them.
      const p = `$aws/things/${thing}/jobs`;
      const filters = [
        `${p}/notify`,
        `${p}/notify-next`,
        `${p}/get/+`,
        `${p}/start-next/+`,
        `${p}/+/get/+`,
        `${p}/+/update/+`,
      ];
      const granted = await client.subscribeAsync(
        Object.fromEntries(filters.map((f) => [f, { qos: 1 as const }])),
      );
      assert.ok(
        granted.every((g) => g.qos === 1),
        `subscriptions granted: ${JSON.stringify(granted)}`,
      );
      const next: Device['next'] = (topic, pred = () => true, ms = 5000) => {
        const already = received.find((m) => m.topic === topic && pred(m));
        if (already !== undefined) {
          received.splice(received.indexOf(already), 1);
          return Promise.resolve(already);
        }
        return new Promise<Msg>((resolve, reject) => {
          const w = {
            topic,
            pred,
            resolve: (m: Msg) => {
              clearTimeout(t);
              received.splice(received.indexOf(m), 1);
              resolve(m);
            },
          };
          const t = setTimeout(() => {
            waiters.splice(waiters.indexOf(w), 1);
            reject(new Error(`no message on ${topic} within ${ms} ms; got ${JSON.stringify(received)}`));
          }, ms);
          waiters.push(w);
        });
      };
      const replyTo = (topic: string, token: string | undefined) =>
        Promise.race([
          next(`${topic}/accepted`, (m) => token === undefined || m.payload?.clientToken === token),
          next(`${topic}/rejected`, (m) => token === undefined || m.payload?.clientToken === token),
        ]);
      const device: Device = {
        thing,
        client,
        received,
        next,
        async request(suffix, body) {
          const clientToken = randomUUID().slice(0, 20);
          const topic = T(thing, suffix);
          const reply = replyTo(topic, clientToken);
          await client.publishAsync(topic, JSON.stringify({ ...body, clientToken }), { qos: 1 });
          return reply;
        },
        async requestRaw(suffix, payload) {
          const topic = T(thing, suffix);
          const reply = replyTo(topic, undefined);
          await client.publishAsync(topic, payload, { qos: 1 });
          return reply;
        },
        async close() {
          await client.endAsync();
        },
      };
      devices.push(device);
      return device;
    },
    async close() {
      for (const d of devices.splice(0)) await d.close().catch(() => {});
      await running.broker.close();
      running.jobs.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return stack;
}

describe('Jobs MQTT API over mTLS through the broker', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack();
    const cp = stack.jobs.controlPlane;
    for (const t of ['car-1', 'car-2', 'car-3', 'car-4', 'car-5', 'car-6']) cp.createThing({ thingName: t });
  });
  after(async () => {
    await stack.close();
  });

  test('queue → notify/notify-next → start-next → progress → SUCCEEDED', async () => {
    const dev = await stack.connect('car-1');
    const doc = { operation: 'ota', version: '2.0.0' };
    stack.jobs.controlPlane.createJob({
      jobId: 'flow-1',
      targets: [thingArn('car-1')],
      document: JSON.stringify(doc),
    });
    const notify = await dev.next(T('car-1', 'notify'));
    assert.equal(notify.payload.jobs.QUEUED[0].jobId, 'flow-1');
    const nn = await dev.next(T('car-1', 'notify-next'));
    assert.equal(nn.payload.execution.jobId, 'flow-1');
    assert.deepEqual(nn.payload.execution.jobDocument, doc);

    const pending = await dev.request('get', {});
    assert.equal(pending.topic, T('car-1', 'get/accepted'));
    assert.deepEqual(
      pending.payload.queuedJobs.map((s: { jobId: string }) => s.jobId),
      ['flow-1'],
    );
    assert.ok(Number.isInteger(pending.payload.timestamp) && pending.payload.timestamp < 1e11, 'seconds');

    const started = await dev.request('start-next', { statusDetails: { step: 'download' } });
    assert.equal(started.topic, T('car-1', 'start-next/accepted'));
    assert.equal(started.payload.execution.status, 'IN_PROGRESS');
    assert.equal(started.payload.execution.versionNumber, 2);
    assert.deepEqual(started.payload.execution.jobDocument, doc);

    const progress = await dev.request('flow-1/update', {
      status: 'IN_PROGRESS',
      statusDetails: { progress: '42' },
      expectedVersion: '2',
      includeJobExecutionState: true,
    });
    assert.equal(progress.topic, T('car-1', 'flow-1/update/accepted'));
    // AWS publishes nothing on notify / notify-next for a start-next. Delivery per thing is ordered, so a
    // notification caused by the start-next would have arrived before this reply.
    assert.deepEqual(
      dev.received.filter((m) => m.topic === T('car-1', 'notify') || m.topic === T('car-1', 'notify-next')),
      [],
    );
    assert.deepEqual(progress.payload.executionState, {
      status: 'IN_PROGRESS',
      statusDetails: { progress: '42' },
      versionNumber: 3,
    });

    const done = await dev.request('flow-1/update', { status: 'SUCCEEDED', expectedVersion: 3 });
    assert.equal(done.topic, T('car-1', 'flow-1/update/accepted'));
    assert.deepEqual((await dev.next(T('car-1', 'notify'))).payload.jobs, {});
    assert.deepEqual(Object.keys((await dev.next(T('car-1', 'notify-next'))).payload), ['timestamp']);
    assert.equal(stack.jobs.controlPlane.describeJob('flow-1').job.status, 'COMPLETED');
  });

  test('error replies: InvalidJson, InvalidTopic, InvalidRequest, VersionMismatch, ResourceNotFound', async () => {
    const dev = await stack.connect('car-2');
    stack.jobs.controlPlane.createJob({ jobId: 'err-1', targets: [thingArn('car-2')], document: '{"a":1}' });
    const bad = await dev.requestRaw('get', '{nope');
    assert.equal(bad.topic, T('car-2', 'get/rejected'));
    assert.equal(bad.payload.code, 'InvalidJson');

    await dev.client.subscribeAsync(T('car-2', 'err-1/frobnicate/rejected'), { qos: 1 });
    const topicErr = await dev.request('err-1/frobnicate', {});
    assert.equal(topicErr.topic, T('car-2', 'err-1/frobnicate/rejected'));
    assert.equal(topicErr.payload.code, 'InvalidTopic');

    const details = await dev.request('err-1/update', {
      status: 'IN_PROGRESS',
      statusDetails: { 'bad key': 'x' },
    });
    assert.equal(details.payload.code, 'InvalidRequest');
    assert.deepEqual(Object.keys(details.payload).sort(), ['clientToken', 'code', 'message', 'timestamp']);

    const mismatch = await dev.request('err-1/update', { status: 'IN_PROGRESS', expectedVersion: '9' });
    assert.equal(mismatch.topic, T('car-2', 'err-1/update/rejected'));
    assert.equal(mismatch.payload.code, 'VersionMismatch');
    // The live service's wording and shape: only the fields that are set.
    assert.equal(mismatch.payload.message, 'Expected version 9 but found version 1');
    assert.deepEqual(mismatch.payload.executionState, { status: 'QUEUED', versionNumber: 1 });

    const missing = await dev.request('nope/get', {});
    assert.equal(missing.payload.code, 'ResourceNotFound');
  });

  test('presigned placeholders are replaced on each delivery', async () => {
    const dev = await stack.connect('car-3');
    const url = 'https://s3.us-west-2.amazonaws.com/firmware/car/3.0.0.bin';
    const document = JSON.stringify({ file: { url: placeholder(url) } });
    stack.jobs.controlPlane.createJob({
      jobId: 'presign-1',
      targets: [thingArn('car-3')],
      document,
      presignedUrlConfig: { expiresInSec: 900 },
    });
    const nn = await dev.next(T('car-3', 'notify-next'));
    const a = await dev.request('start-next', {});
    const b = await dev.request('presign-1/get', {});
    const urls = [nn, a, b].map((m) => m.payload.execution.jobDocument.file.url as string);
    for (const u of urls)
      assert.match(
        u,
        /^https:\/\/s3\.us-west-2\.amazonaws\.com\/firmware\/car\/3\.0\.0\.bin\?X-Amz-Expires=900&/,
      );
    assert.equal(new Set(urls).size, 3);
    assert.equal(stack.jobs.controlPlane.getJobDocument('presign-1'), document);
  });

  test('cancel: QUEUED at once, IN_PROGRESS with force; later updates are refused', async () => {
    const dev = await stack.connect('car-4');
    const cp = stack.jobs.controlPlane;
    cp.createJob({ jobId: 'cancel-1', targets: [thingArn('car-4')], document: '{"a":1}' });
    await dev.next(T('car-4', 'notify-next'), (m) => m.payload.execution?.jobId === 'cancel-1');
    await dev.request('start-next', {});
    cp.createJob({ jobId: 'cancel-2', targets: [thingArn('car-4')], document: '{"a":2}' });
    await dev.next(T('car-4', 'notify'), (m) => m.payload.jobs.QUEUED?.length === 1);

    cp.cancelJob('cancel-1', {});
    assert.equal(cp.describeJobExecution('cancel-1', 'car-4').status, 'IN_PROGRESS');
    assert.throws(() => cp.cancelJobExecution('cancel-1', 'car-4', {}), {
      code: 'InvalidStateTransitionException',
    });
    cp.cancelJobExecution('cancel-1', 'car-4', { force: true });
    const after = await dev.next(T('car-4', 'notify'), (m) => m.payload.jobs.IN_PROGRESS === undefined);
    assert.deepEqual(
      after.payload.jobs.QUEUED.map((s: { jobId: string }) => s.jobId),
      ['cancel-2'],
    );
    const nn = await dev.next(T('car-4', 'notify-next'), (m) => m.payload.execution?.jobId === 'cancel-2');
    assert.equal(nn.payload.execution.status, 'QUEUED');
    const refused = await dev.request('cancel-1/update', { status: 'SUCCEEDED' });
    assert.equal(refused.topic, T('car-4', 'cancel-1/update/rejected'));
    assert.equal(refused.payload.code, 'InvalidStateTransition');
    assert.equal(refused.payload.executionState.status, 'CANCELED');
  });

  test('CONTINUOUS group job reaches a thing added later', async () => {
    const dev = await stack.connect('car-5');
    const cp = stack.jobs.controlPlane;
    cp.createThingGroup({ thingGroupName: 'e2e-fleet' });
    cp.createJob({
      jobId: 'cont-1',
      targets: [groupArn('e2e-fleet')],
      document: '{"a":1}',
      targetSelection: 'CONTINUOUS',
    });
    cp.addThingToThingGroup({ thingGroupName: 'e2e-fleet', thingName: 'car-5' });
    const nn = await dev.next(T('car-5', 'notify-next'));
    assert.equal(nn.payload.execution.jobId, 'cont-1');
  });

  test('step timeout → TIMED_OUT is announced to the device', async () => {
    const cp = stack.jobs.controlPlane;
    const dev = await stack.connect('car-6');
    cp.createJob({ jobId: 'timeout-1', targets: [thingArn('car-6')], document: '{"a":1}' });
    await dev.next(T('car-6', 'notify-next'));
    const started = await dev.request('start-next', { stepTimeoutInMinutes: 1 });
    assert.equal(started.payload.execution.status, 'IN_PROGRESS');
    stack.clock.advanceSync(MINUTE_MS);
    assert.deepEqual(
      (await dev.next(T('car-6', 'notify'), (m) => Object.keys(m.payload.jobs).length === 0)).payload.jobs,
      {},
    );
    assert.deepEqual(Object.keys((await dev.next(T('car-6', 'notify-next'))).payload), ['timestamp']);
    const refused = await dev.request('timeout-1/update', { status: 'SUCCEEDED' });
    assert.equal(refused.payload.code, 'InvalidStateTransition');
    assert.equal(refused.payload.executionState.status, 'TIMED_OUT');
  });

  test('state and timers survive a restart of broker and service', async () => {
    const cp = stack.jobs.controlPlane;
    let dev = await stack.connect('car-6');
    cp.createJob({ jobId: 'restart-1', targets: [thingArn('car-6')], document: '{"a":1}' });
    await dev.next(T('car-6', 'notify-next'), (m) => m.payload.execution?.jobId === 'restart-1');
    await dev.request('start-next', { stepTimeoutInMinutes: 5 });
    await dev.request('restart-1/update', { status: 'IN_PROGRESS', statusDetails: { p: '7' } });
    await stack.restart();
    dev = await stack.connect('car-6');
    const mid = await dev.request('$next/get', {});
    assert.equal(mid.payload.execution.jobId, 'restart-1');
    assert.deepEqual(mid.payload.execution.statusDetails, { p: '7' });
    assert.equal(mid.payload.execution.versionNumber, 3);
    stack.clock.advanceSync(5 * MINUTE_MS - 1);
    assert.equal(stack.jobs.controlPlane.describeJobExecution('restart-1', 'car-6').status, 'IN_PROGRESS');
    stack.clock.advanceSync(1);
    // The timer rebuilt from SQLite by the restarted service fired at its time.
    assert.equal(stack.jobs.controlPlane.describeJobExecution('restart-1', 'car-6').status, 'TIMED_OUT');
    // The job is COMPLETED now: describing its execution answers TerminalStateReached; an update is
    // refused with the state that survived the restart.
    const desc = await dev.request('restart-1/get', { includeJobDocument: false });
    assert.equal(desc.payload.code, 'TerminalStateReached');
    const upd = await dev.request('restart-1/update', { status: 'SUCCEEDED' });
    assert.equal(upd.payload.code, 'InvalidStateTransition');
    assert.deepEqual(upd.payload.executionState, {
      status: 'TIMED_OUT',
      statusDetails: { p: '7' },
      versionNumber: 4,
    });
  });

  test('a thing never receives another thing’s replies', async () => {
    const spy = await stack.connect('car-2');
    const victim = await stack.connect('car-1');
    // Whether the broker refuses the subscription or just never routes, nothing may arrive.
    await spy.client.subscribeAsync(T('car-1', '#'), { qos: 1 }).catch(() => undefined);
    await victim.request('get', {});
    await sleep(200);
    assert.equal(
      spy.received.filter((m) => m.topic.startsWith('$aws/things/car-1/')).length,
      0,
      'car-2 saw car-1 traffic',
    );
  });
});
