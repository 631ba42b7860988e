import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { after, before, test } from 'node:test';
import mqtt from 'mqtt';
import { bundleDashboard } from '../../../src/dashboard/assets.ts';
import { Hub, type StreamClient } from '../../../src/dashboard/hub.ts';
import { decodeRow, type StreamEvents, type WireRow } from '../../../src/dashboard/model.ts';
import { type RunningDashboard, startDashboard } from '../../../src/dashboard/server.ts';
import { localSource } from '../../../src/dashboard/sources.ts';
import { ManualClock } from '../../../src/shared/clock.ts';
import { startTestStack, type TestStack } from '../../helpers/stack.ts';
import { createJob, type World } from '../agent/helpers.ts';

/** The dashboard server over HTTP and its event stream, without a browser: what a page, or an attacker, sees. */
let t: TestStack;
let dash: RunningDashboard;
let source: ReturnType<typeof localSource>;

before(async () => {
  t = await startTestStack('ota-e2e-dashboard-server', { things: ['dev-a'] });
  source = localSource(t.stack.endpoints);
  dash = await startDashboard({ ...source, port: 0, flushMs: 50 });
  await dash.feedReady;
});

after(async () => {
  await dash?.close();
  source?.iot.destroy();
  await t?.close();
});

function get(path: string, headers: Record<string, string> = {}, method = 'GET') {
  const url = new URL(path, dash.url);
  return new Promise<{ status: number; headers: Record<string, unknown>; body: string }>(
    (resolve, reject) => {
      const req = request(url, { method, headers }, (res) => {
        let body = '';
        res.on('data', (d) => {
          body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on('error', reject);
      req.end();
    },
  );
}

/** Reads an event stream until `until` holds for the events so far. */
async function readStream(
  path: string,
  until: (events: { event: string; data: unknown }[]) => boolean,
  timeoutMs = 15_000,
) {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  const events: { event: string; data: unknown }[] = [];
  try {
    const res = await fetch(new URL(path, dash.url), { signal: ac.signal });
    assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    let buf = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += Buffer.from(chunk).toString('utf8');
      for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const m = /^event: (\w+)\ndata: (.*)$/s.exec(block);
        if (m) events.push({ event: m[1] as string, data: JSON.parse(m[2] as string) });
      }
      if (until(events)) return events;
    }
  } catch (err) {
    throw new Error(`stream ended before the condition held: ${JSON.stringify(events).slice(0, 2000)}`, {
      cause: err,
    });
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  throw new Error('stream closed');
}

test('serves the page with a strict CSP; read-only; refuses other Host headers (DNS rebinding)', async () => {
  const page = await get('/');
  assert.equal(page.status, 200);
  assert.match(page.body, /<script type="module" src="app.js"><\/script>/);
  assert.match(String(page.headers['content-security-policy']), /default-src 'none'; script-src 'self'/);
  assert.equal((await get('/app.js')).status, 200);
  assert.equal((await get('/app.css')).status, 200);
  assert.equal((await get('/../package.json')).status, 404);
  assert.equal((await get('/%2e%2e/package.json')).status, 404);
  assert.equal((await get('/', {}, 'POST')).status, 405);
  assert.equal((await get('/', { host: 'attacker.example' })).status, 421);
  const port = new URL(dash.url).port;
  assert.equal((await get('/', { host: `localhost:${port}` })).status, 200);
  const bad = await get('/api/stream?job=../../etc');
  assert.equal(bad.status, 400);
  assert.match(bad.body, /^job: must match/);
});

test('a stream names an unknown job as a problem instead of hanging', async () => {
  const events = await readStream('/api/stream?job=no-such-job', (ev) =>
    ev.some((e) => e.event === 'problem'),
  );
  assert.deepEqual(events.find((e) => e.event === 'problem')?.data, { message: 'job no-such-job not found' });
  const feed = events.find((e) => e.event === 'feed')?.data as StreamEvents['feed'];
  assert.equal(feed.state, 'connected');
});

test('a device that publishes garbage on its progress topic cannot break the stream or its row', async () => {
  const ep = t.stack.endpoints;
  const w = {
    stack: t.stack,
    iot: source.iot,
  } as unknown as World;
  await createJob(w, 'dev-a', 'srv-job', {
    firmware: { version: '2', size: 1, region: 'us-west-2', url: 'https://s3.amazonaws.com/b/k' },
  });
  const thing = ep.things['dev-a'];
  assert.ok(thing);
  const device = await mqtt.connectAsync({
    host: ep.mqtt.host,
    port: ep.mqtt.port,
    protocol: 'mqtts',
    protocolVersion: 4,
    clientId: 'dev-a',
    ca: readFileSync(ep.rootCA),
    cert: readFileSync(thing.cert),
    key: readFileSync(thing.key),
    reconnectPeriod: 0,
  });
  try {
    const stream = readStream('/api/stream?job=srv-job', (ev) =>
      ev.some(
        (e) =>
          e.event === 'rows' &&
          (e.data as StreamEvents['rows']).rows.some((r: WireRow) => decodeRow(r).bytes === 7),
      ),
    );
    // Let the stream subscribe first.
    await new Promise((r) => setTimeout(r, 300));
    const topic = 'CarVi/test/firmware/dev-a';
    for (const p of [
      'not json',
      '[]',
      '{"Downloading": "lots"}',
      '{"Downloading": -1, "Total size": 1e400}',
      JSON.stringify({ jobId: 'srv-job', state: 'X'.repeat(5000), Downloading: 1e15, 'Total size': 10 }),
      Buffer.alloc(20_000, 0x7b),
      JSON.stringify({ jobId: 'srv-job', state: 'DOWNLOADING', Downloading: 7, 'Total size': 10 }),
    ]) {
      await device.publishAsync(topic, p, { qos: 1 });
    }
    const events = await stream;
    const jobs = events.find((e) => e.event === 'jobs')?.data as StreamEvents['jobs'];
    assert.equal(jobs.selected, 'srv-job');
    assert.equal(jobs.jobs[0]?.jobId, 'srv-job');
    const last = events
      .filter((e) => e.event === 'rows')
      .flatMap((e) => (e.data as StreamEvents['rows']).rows.map(decodeRow))
      .filter((r) => r.thing === 'dev-a')
      .pop();
    assert.equal(last?.bytes, 7);
    assert.equal(last?.total, 10);
    assert.equal(last?.phase, 'DOWNLOADING');
    for (const e of events.filter((x) => x.event === 'rows')) {
      for (const r of (e.data as StreamEvents['rows']).rows.map(decodeRow)) {
        assert.ok(r.bytes <= r.total || r.total === 0, `bytes ${r.bytes} never beyond total ${r.total}`);
        assert.ok((r.phase?.length ?? 0) <= 32);
      }
    }
  } finally {
    await device.endAsync();
  }
});

test('the page bundles from source (the fallback of a checkout that was never built), small', async () => {
  const assets = await bundleDashboard();
  assert.match(assets['index.html'], /<title>OTA fleet dashboard<\/title>/);
  assert.ok(assets['app.js'].includes('EventSource'));
  assert.ok(assets['app.js'].length < 64 * 1024, `app.js is ${assets['app.js'].length} bytes`);
  assert.ok(assets['app.css'].length > 1000);
});

/** The Hub's default flush period. */
const FLUSH_MS = 250;

test('a page whose socket buffer fills gets one snapshot, and a fresh one only if it missed batches', async () => {
  // Timers run only when the test moves the clock: one flush period at a time.
  const clock = new ManualClock({ start: Date.now() });
  const hub = new Hub({ iot: source.iot, progressPrefix: 'CarVi/test/firmware', clock });
  const sent: string[] = [];
  let full = true; // every write reports a full buffer, as a slow phone's socket would
  const client: StreamClient = {
    write: (event) => {
      sent.push(event);
      return !full;
    },
    problem: (m) => sent.push(`problem:${m}`),
  };
  try {
    const unsubscribe = await hub.subscribe(client, 'srv-job');
    assert.equal(sent.filter((e) => e === 'snapshot').length, 1);
    // The buffer drains: nothing was missed, so no second snapshot (not one per drain, forever).
    hub.resync(client);
    assert.equal(sent.filter((e) => e === 'snapshot').length, 1);
    // Full again, and a batch goes by while it is: the page is stale and gets a snapshot on drain.
    hub.onMessage(
      'CarVi/test/firmware/dev-a',
      Buffer.from('{"jobId":"srv-job","Downloading":1,"Total size":2}'),
    );
    clock.advanceSync(FLUSH_MS);
    const rowsBatches = sent.filter((e) => e === 'rows').length;
    hub.onMessage(
      'CarVi/test/firmware/dev-a',
      Buffer.from('{"jobId":"srv-job","Downloading":2,"Total size":2}'),
    );
    clock.advanceSync(FLUSH_MS);
    assert.equal(sent.filter((e) => e === 'rows').length, rowsBatches, 'no batch written to a full buffer');
    full = false;
    hub.resync(client);
    assert.equal(sent.filter((e) => e === 'snapshot').length, 2);
    hub.resync(client);
    assert.equal(sent.filter((e) => e === 'snapshot').length, 2);
    unsubscribe();
  } finally {
    await hub.close();
  }
});

test('a page that reselects (new stream opened before the old one closed) keeps getting its batches', async () => {
  // Timers run only when the test moves the clock: one flush period at a time.
  const clock = new ManualClock({ start: Date.now() });
  const hub = new Hub({ iot: source.iot, progressPrefix: 'CarVi/test/firmware', clock });
  const recorder = () => {
    const events: string[] = [];
    const client: StreamClient = {
      write: (event) => {
        events.push(event);
        return true;
      },
      problem: (m) => events.push(`problem:${m}`),
    };
    return { client, events };
  };
  const a = recorder();
  const b = recorder();
  try {
    const unsubscribeA = await hub.subscribe(a.client, 'srv-job');
    const subscribingB = hub.subscribe(b.client, 'srv-job');
    unsubscribeA(); // the old stream closes while the new one is still reading the job list
    const unsubscribeB = await subscribingB;
    hub.onMessage(
      'CarVi/test/firmware/dev-a',
      Buffer.from('{"jobId":"srv-job","Downloading":1,"Total size":3}'),
    );
    clock.advanceSync(FLUSH_MS);
    assert.ok(b.events.includes('rows'), `events of the new stream: ${b.events.join(', ')}`);
    unsubscribeB();
  } finally {
    await hub.close();
  }
});

test('a notification that comes while DescribeJob is on the wire gets a read of its own', async () => {
  // The abort that cancels a job notifies while the read that an earlier notification scheduled may
  // already be answered: coalescing it into that read left the page on IN_PROGRESS until the refresh.
  const clock = new ManualClock({ start: Date.now() });
  const hub = new Hub({ iot: source.iot, progressPrefix: 'CarVi/test/firmware', clock });
  const client: StreamClient = { write: () => true, problem: () => {} };
  const queued = (thing: string) =>
    hub.onMessage(
      `$aws/things/${thing}/jobs/notify`,
      Buffer.from(JSON.stringify({ jobs: { QUEUED: [{ jobId: 'srv-job' }] } })),
    );
  try {
    const unsubscribe = await hub.subscribe(client, 'srv-job');
    queued('dev-n1'); // arms the read of the job (and a refresh of the job list)
    const armed = clock.pending;
    queued('dev-n2'); // before the read starts: the same read covers it
    assert.equal(clock.pending, armed, 'one read for the notifications of the same half second');
    clock.advanceSync(500); // the read goes out
    assert.equal(clock.pending, armed - 1);
    queued('dev-n3'); // while it is on the wire
    const t0 = Date.now();
    while (clock.pending < armed && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
    assert.equal(clock.pending, armed, 'a second read after the first one is in');
    unsubscribe();
  } finally {
    await hub.close();
  }
});
