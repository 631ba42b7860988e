import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createServer, type Server } from 'node:tls';
import { Aedes } from 'aedes';
import { ensureLocalCa } from '../../../../src/cloud/pki/pki.ts';
import type { ConnectProblem } from '../../../../src/device/link/connect-diagnosis.ts';
import { JobsClient } from '../../../../src/device/link/jobs-client.ts';
import { STABLE_CONNECTION_MS } from '../../../../src/device/link/mqtt-connection.ts';
import { type Clock, ManualClock } from '../../../../src/shared/clock.ts';

const THING = 'Cam_conn';

/**
 * A broker over mutual TLS whose behaviour the test switches: `refuse` answers CONNECT with CONNACK 5,
 * `reset` drops the TLS connection before MQTT, `flap` accepts and then closes at once, `accept` serves.
 */
interface Broker {
  mode: 'accept' | 'refuse' | 'reset' | 'flap';
  aedes: Aedes;
  port: number;
  ca: string;
  cert: string;
  key: string;
  kick(): void;
  close(): Promise<void>;
}

async function startBroker(dir: string): Promise<Broker> {
  const ca = await ensureLocalCa(join(dir, 'certs'), { hosts: ['127.0.0.1'] });
  const client = await ca.issueClientCert(THING);
  const b = { mode: 'accept' } as Broker;
  const sockets = new Set<import('node:net').Socket>();
  const aedes = await Aedes.createBroker({
    authenticate: (_c, _u, _p, done) => {
      if (b.mode === 'refuse') done(Object.assign(new Error('not authorized'), { returnCode: 5 }), false);
      else done(null, true);
    },
  });
  aedes.on('clientReady', (c) => {
    if (b.mode === 'flap') c.close();
  });
  const server: Server = createServer(
    { key: ca.serverKeyPem, cert: ca.serverCertPem, ca: ca.caCertPem, requestCert: true },
    (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      if (b.mode === 'reset') socket.destroy();
      else aedes.handle(socket);
    },
  );
  // Raw connections too: one still in its TLS handshake would hold server.close() up.
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  // aedes keeps connected clients in `clients` (not in its .d.ts)
  const clients = () => (aedes as unknown as { clients: Record<string, { close(): void }> }).clients;
  Object.assign(b, {
    aedes,
    port: (server.address() as AddressInfo).port,
    ca: ca.caCertPem,
    cert: client.certPem,
    key: client.keyPem,
    kick: () => {
      for (const c of Object.values(clients())) c.close();
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => aedes.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    },
  });
  return b;
}

async function until(pred: () => boolean, what: string): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > 20_000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('the Jobs client connection: backoff, and why it cannot connect', () => {
  let dir: string;
  let broker: Broker;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ota-conn-'));
    broker = await startBroker(dir);
  });
  after(async () => {
    await broker.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Reconnect delays on a fake clock that fires each timer as soon as the process is idle. */
  const recorded = () => {
    const clock = new ManualClock({ auto: true });
    const delays: number[] = [];
    const timers: Clock = {
      now: () => clock.now(),
      setTimeout: (fn, ms) => {
        delays.push(ms);
        return clock.setTimeout(fn, ms);
      },
      setInterval: (fn, ms) => clock.setInterval(fn, ms),
      clear: (h) => clock.clear(h),
    };
    return { clock, delays, timers };
  };

  const client = (extra: Partial<ConstructorParameters<typeof JobsClient>[0]>) =>
    new JobsClient({
      host: '127.0.0.1',
      port: broker.port,
      ca: broker.ca,
      cert: broker.cert,
      key: broker.key,
      clientId: THING,
      thingName: THING,
      reconnectBaseMs: 100,
      reconnectMaxMs: 1000,
      random: () => 0.999,
      ...extra,
    });

  test('says why once per reason, again when the reason changes, and again after a connection is lost', async () => {
    const problems: ConnectProblem[] = [];
    let reconnects = 0;
    const { timers } = recorded();
    const c = client({
      timers,
      onProblem: (p) => problems.push(p),
      onStateChange: (s) => {
        if (s === 'reconnecting') reconnects++;
      },
    });
    try {
      broker.mode = 'refuse';
      const started = c.start();
      await until(() => reconnects >= 4, 'four refused attempts');
      assert.deepEqual(
        problems.map((p) => p.kind),
        ['not-authorized'],
      );
      broker.mode = 'reset';
      const before = reconnects;
      await until(() => reconnects >= before + 4, 'four reset attempts');
      assert.deepEqual(
        problems.map((p) => p.kind),
        ['not-authorized', 'closed'],
      );
      broker.mode = 'accept';
      await started;
      broker.kick();
      await until(() => problems.length >= 3, 'the lost connection');
      assert.equal(problems[2]?.kind, 'dropped');
      assert.equal(c.lastProblem?.kind, 'dropped');
    } finally {
      await c.close();
    }
  });

  test('backoff with full jitter grows to its cap while connections flap, and starts over after a stable one', async () => {
    const { clock, delays, timers } = recorded();
    let readies = 0;
    const c = client({
      timers,
      onReady: () => {
        readies++;
      },
    });
    try {
      broker.mode = 'flap';
      void c.start().catch(() => {});
      await until(() => delays.length >= 6, 'six reconnects');
      // accepted and dropped at once, each time: no reset, base·2^n with random ≈ 1, capped at 1 s
      assert.deepEqual(delays.slice(0, 6), [99, 199, 399, 799, 999, 999]);
      broker.mode = 'accept';
      await until(() => readies >= 1 && c.isConnected, 'a connection');
      await clock.advance(STABLE_CONNECTION_MS);
      const n = delays.length;
      broker.kick();
      await until(() => delays.length > n, 'the reconnect');
      assert.equal(delays[n], 99, 'a connection that stayed up resets the backoff');
    } finally {
      await c.close();
    }
  });

  // A socket that stayed until the connect timeout would outlast the test's own timeout: a failure.
  test('closed while a connection attempt hangs (no answer to the TLS handshake): the socket goes at once', {
    timeout: 20_000,
  }, async () => {
    // A peer that accepts TCP and says nothing. MQTT.js's graceful end left such a socket open until its
    // connect timeout (here 10 minutes), so a stopped agent could not exit.
    const held = new Set<import('node:net').Socket>();
    const silent = createNetServer((socket) => {
      held.add(socket);
      socket.on('error', () => {});
      socket.resume(); // read (and drop) the ClientHello, so that the client's FIN is seen
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const c = client({ port: (silent.address() as AddressInfo).port, connectTimeoutMs: 600_000 });
    try {
      void c.start().catch(() => {});
      await until(() => held.size === 1, 'the connection attempt');
      const [socket] = [...held];
      const gone = new Promise<void>((r) => socket?.on('close', () => r()));
      await c.close();
      await gone;
      assert.equal(c.state, 'closed');
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });
});
