import assert from 'node:assert/strict';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { type FeedState, openFeed } from '../../../src/dashboard/feed.ts';
import { startTestStack, type TestStack } from '../../helpers/stack.ts';

/**
 * The dashboard's MQTT-over-WebSocket feed against the stack's real WebSocket listener (SigV4-presigned
 * URLs): it reconnects by itself after the connection drops, signing a fresh URL, and a wrong key fails
 * the first attempt with the broker's answer.
 */
let t: TestStack;

before(async () => {
  t = await startTestStack('ota-e2e-dashboard-feed', { things: [] });
});
after(async () => {
  await t?.close();
});

/** A loopback relay to the stack's WebSocket port whose connections the test can cut. */
async function relay(upstreamPort: number): Promise<{ port: number; cut(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const up = netConnect(upstreamPort, '127.0.0.1');
    for (const s of [client, up]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        up.destroy();
      });
    }
    client.pipe(up).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    cut: () => {
      for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

function waitFor(pred: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = () => {
      if (pred()) return resolve();
      if (Date.now() - t0 > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 20);
    };
    tick();
  });
}

test('the feed reconnects after a drop, with a freshly signed URL, and messages flow again', async () => {
  const ep = t.stack.endpoints;
  const wsPort = Number(new URL(ep.ws.url).port);
  const link = await relay(wsPort);
  const states: FeedState[] = [];
  const messages: string[] = [];
  let signings = 0;
  const feed = openFeed({
    url: `ws://127.0.0.1:${link.port}/mqtt`,
    region: ep.region,
    credentials: async () => {
      signings++;
      return { accessKeyId: ep.iot.accessKeyId, secretAccessKey: ep.iot.secretAccessKey };
    },
    topics: ['CarVi/test/firmware/+'],
    onMessage: (topic, payload) => messages.push(`${topic} ${payload}`),
    onState: (s) => states.push(s),
    reconnectBaseMs: 20,
    reconnectMaxMs: 200,
  });
  try {
    await feed.ready;
    assert.equal(feed.state, 'connected');
    link.cut();
    await waitFor(() => states.includes('reconnecting'), 'reconnecting');
    await waitFor(() => feed.state === 'connected', 'connected again');
    assert.ok(signings >= 2, 'credentials read again for the new connection');
    await t.stack.broker.publish('CarVi/test/firmware/dev-1', '{"Downloading": 1}', 0);
    await waitFor(() => messages.length > 0, 'a message after the reconnect');
    assert.equal(messages[0], 'CarVi/test/firmware/dev-1 {"Downloading": 1}');
  } finally {
    await feed.close();
    await link.close();
  }
  assert.equal(feed.state, 'closed');
});

test('a wrong secret fails the first attempt with the broker’s 403; close stops the retries', async () => {
  const ep = t.stack.endpoints;
  const states: FeedState[] = [];
  const feed = openFeed({
    url: ep.ws.url,
    region: ep.region,
    credentials: async () => ({ accessKeyId: ep.iot.accessKeyId, secretAccessKey: 'wrong' }),
    topics: ['CarVi/test/firmware/+'],
    onMessage: () => {},
    onState: (s) => states.push(s),
    reconnectBaseMs: 20,
    reconnectMaxMs: 50,
  });
  await assert.rejects(feed.ready, /403/);
  await waitFor(() => states.filter((s) => s === 'connecting').length >= 2, 'a retry');
  await feed.close();
  const n = states.length;
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(states.length, n, 'no attempt after close');
  assert.equal(feed.state, 'closed');
});
