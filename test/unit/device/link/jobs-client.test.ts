import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createServer, type Server } from 'node:tls';
import { Aedes } from 'aedes';
import { ensureLocalCa } from '../../../../src/cloud/pki/pki.ts';
import { JobsRequestError } from '../../../../src/device/errors.ts';
import { type ConnectionState, JobsClient } from '../../../../src/device/link/jobs-client.ts';

const THING = 'Cam_1';
const P = `$aws/things/${THING}/jobs`;

interface World {
  broker: Aedes;
  server: Server;
  port: number;
  ca: string;
  cert: string;
  key: string;
  log: string[];
  tokens: string[];
  /** start-next replies: one per request, in order; `accepted` after the list runs out. */
  startNextPlan: ('throttled' | 'silent' | 'accepted')[];
  close(): Promise<void>;
}

async function world(): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), 'ota-jc-'));
  const ca = await ensureLocalCa(join(dir, 'certs'), { hosts: ['127.0.0.1'] });
  const client = await ca.issueClientCert(THING);
  const broker = await Aedes.createBroker();
  const w = {
    log: [] as string[],
    tokens: [] as string[],
    startNextPlan: [] as World['startNextPlan'],
  } as World;
  const reply = (topic: string, body: unknown) =>
    broker.publish(
      {
        cmd: 'publish',
        topic,
        payload: Buffer.from(JSON.stringify(body)),
        qos: 1,
        dup: false,
        retain: false,
      },
      () => {},
    );
  broker.on('subscribe', (subs) => {
    for (const s of subs) w.log.push(`sub ${s.topic}`);
  });
  broker.on('publish', (packet, c) => {
    if (!c) return;
    const topic = packet.topic;
    w.log.push(`pub ${topic}`);
    const body = JSON.parse(packet.payload.toString()) as Record<string, unknown>;
    const token = body.clientToken as string;
    if (topic === `${P}/start-next`) {
      w.tokens.push(token);
      const plan = w.startNextPlan.shift() ?? 'accepted';
      if (plan === 'silent') return;
      if (plan === 'throttled') {
        reply(`${P}/start-next/rejected`, {
          code: 'RequestThrottled',
          message: 'slow down',
          clientToken: token,
          timestamp: 1,
        });
        return;
      }
      reply(`${P}/start-next/accepted`, {
        execution: { jobId: 'job-1', status: 'IN_PROGRESS', jobDocument: { a: 1 }, versionNumber: 1 },
        clientToken: token,
        timestamp: 1,
      });
      return;
    }
    const m = /^\$aws\/things\/[^/]+\/jobs\/([^/]+)\/update$/.exec(topic);
    if (m) {
      if (body.status === 'REJECTED') {
        reply(`${P}/${m[1]}/update/rejected`, {
          code: 'InvalidStateTransition',
          message: 'no',
          clientToken: token,
          executionState: { status: 'IN_PROGRESS' },
        });
        return;
      }
      // a wrong-token reply first: must be ignored
      reply(`${P}/${m[1]}/update/accepted`, { clientToken: 'someone-else', timestamp: 1 });
      reply(`${P}/${m[1]}/update/accepted`, {
        executionState: { status: body.status, versionNumber: 2 },
        clientToken: token,
        timestamp: 1,
      });
    }
  });
  const server = createServer(
    {
      key: ca.serverKeyPem,
      cert: ca.serverCertPem,
      ca: ca.caCertPem,
      requestCert: true,
      rejectUnauthorized: true,
    },
    broker.handle,
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  w.broker = broker;
  w.server = server;
  w.port = (server.address() as AddressInfo).port;
  w.ca = ca.caCertPem;
  w.cert = client.certPem;
  w.key = client.keyPem;
  w.close = async () => {
    await new Promise<void>((r) => broker.close(() => r()));
    await new Promise<void>((r) => server.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  };
  return w;
}

const mk = (w: World, extra: Partial<ConstructorParameters<typeof JobsClient>[0]> = {}) =>
  new JobsClient({
    host: '127.0.0.1',
    port: w.port,
    ca: w.ca,
    cert: w.cert,
    key: w.key,
    clientId: THING,
    thingName: THING,
    requestTimeoutMs: 300,
    reconnectBaseMs: 20,
    reconnectMaxMs: 100,
    random: () => 0.5,
    ...extra,
  });

describe('JobsClient against a real aedes broker over mTLS', () => {
  test('subscribes before requesting; correlates by clientToken; retries RequestThrottled with a fresh token', async () => {
    const w = await world();
    const states: ConnectionState[] = [];
    const c = mk(w, { onStateChange: (s) => states.push(s) });
    try {
      w.startNextPlan = ['throttled', 'silent', 'accepted'];
      await c.start();
      const exec = await c.startNext();
      assert.equal(exec?.jobId, 'job-1');
      assert.equal(w.tokens.length, 3);
      assert.equal(new Set(w.tokens).size, 3, 'fresh clientToken per attempt');
      const firstPub = w.log.findIndex((l) => l.startsWith('pub '));
      const subIdx = w.log.indexOf(`sub ${P}/start-next/accepted`);
      assert.ok(subIdx >= 0 && subIdx < firstPub, w.log.join('\n'));
      const st = await c.update('job-1', 'SUCCEEDED', { version: '2' });
      assert.equal(st?.status, 'SUCCEEDED');
      await assert.rejects(
        c.update('job-1', 'REJECTED', { reason: 'x' }),
        (e: unknown) => e instanceof JobsRequestError && e.jobsCode === 'InvalidStateTransition',
      );
      assert.deepEqual(states, ['connecting', 'connected']);
    } finally {
      await c.close();
      await w.close();
    }
    assert.equal(c.state, 'closed');
  });

  test('reconnects with backoff after the connection drops, resubscribes, dispatches notify-next', async () => {
    const w = await world();
    const states: ConnectionState[] = [];
    const notes: unknown[] = [];
    let readies = 0;
    const c = mk(w, {
      onStateChange: (s) => states.push(s),
      onNotifyNext: (m) => notes.push(m),
      onReady: () => {
        readies++;
      },
    });
    try {
      await c.start();
      const subsBefore = w.log.filter((l) => l === `sub ${P}/notify-next`).length;
      // kick the client: the broker closes its socket
      const ready2 = new Promise<void>((resolve) => {
        const t = setInterval(() => {
          if (readies >= 2) {
            clearInterval(t);
            resolve();
          }
        }, 10);
      });
      // aedes keeps connected clients in `clients` (not in its .d.ts)
      const clients = (w.broker as unknown as { clients: Record<string, { close(): void }> }).clients;
      for (const id of Object.keys(clients)) clients[id]?.close();
      await ready2;
      assert.deepEqual(states, ['connecting', 'connected', 'reconnecting', 'connecting', 'connected']);
      assert.equal(w.log.filter((l) => l === `sub ${P}/notify-next`).length, subsBefore + 1, 'resubscribed');
      w.broker.publish(
        {
          cmd: 'publish',
          topic: `${P}/notify-next`,
          payload: Buffer.from(
            JSON.stringify({ timestamp: 5, execution: { jobId: 'j2', status: 'QUEUED' } }),
          ),
          qos: 1,
          dup: false,
          retain: false,
        },
        () => {},
      );
      const exec = await c.startNext();
      assert.equal(exec?.jobId, 'job-1');
      assert.equal((notes[0] as { execution: { jobId: string } }).execution.jobId, 'j2');
    } finally {
      await c.close();
      await w.close();
    }
  });

  test('a request with no reply times out after the bounded attempts', async () => {
    const w = await world();
    const c = mk(w, { requestAttempts: 2, requestTimeoutMs: 100 });
    try {
      w.startNextPlan = ['silent', 'silent'];
      await c.start();
      await assert.rejects(
        c.startNext(),
        (e: unknown) => e instanceof JobsRequestError && e.jobsCode === 'Timeout',
      );
      assert.equal(w.tokens.length, 2);
    } finally {
      await c.close();
      await w.close();
    }
  });
});
