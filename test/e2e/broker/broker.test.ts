/**
 * The local AWS IoT broker over real sockets: MQTT.js clients with client certificates from the local CA
 * (mTLS), a SigV4-presigned WebSocket, raw TLS/TCP for abuse cases, and the credentials provider sharing
 * the mTLS port by ALPN.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import tls from 'node:tls';
import { Sha256 } from '@aws-crypto/sha256-js';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import mqtt, { type MqttClient } from 'mqtt';
import { canPublish, canSubscribe } from '../../../src/cloud/broker/acl.ts';
import { getRequestIdentity, startBroker } from '../../../src/cloud/broker/broker.ts';
import type { ClientIdentity, RunningBroker } from '../../../src/cloud/broker/types.ts';
import { verifyPresignedWebSocketRequest } from '../../../src/cloud/broker/ws-auth.ts';
import { createCredentialsHandler } from '../../../src/cloud/credentials/provider.ts';
import { createEphemeralCa, ensureLocalCa, type LocalCa } from '../../../src/cloud/pki/pki.ts';
import { presignWebSocketUrl, presignWebSocketUrlSync } from '../../../src/shared/ws-url.ts';
import { startCaBroker } from '../../helpers/broker.ts';
import { wsUpgradeStatus } from '../../helpers/mqtt.ts';

const REGION = 'us-west-2';
const WS_CREDS = { accessKeyId: 'AKIDBROKERTEST', secretAccessKey: 'broker-test-secret', region: REGION };
const PREFIX = 'CarVi/test/firmware';
const A = 'thing-a';
const B = 'thing-b';
const jobs = (thing: string, suffix: string) => `$aws/things/${thing}/jobs/${suffix}`;
/** How long to wait before concluding a message was NOT delivered. */
const QUIET_MS = 300;

type Msg = { topic: string; payload: string };

interface Conn {
  client: MqttClient;
  messages: Msg[];
  next(topic: string, ms?: number): Promise<Msg>;
  closed: Promise<void>;
  end(): Promise<void>;
}

/** The SUBACK return codes for one SUBSCRIBE (MQTT.js rejects when any is 0x80; the packet rides along). */
async function suback(client: MqttClient, filters: string | string[], qos: 0 | 1 | 2 = 1): Promise<number[]> {
  try {
    return (await client.subscribeAsync(filters, { qos })).map((g) => g.qos);
  } catch (err) {
    const granted = (err as { packet?: { granted?: number[] } }).packet?.granted;
    if (!granted) throw err;
    return granted;
  }
}

function wrap(client: MqttClient): Conn {
  const messages: Msg[] = [];
  const waiters: { topic: string; resolve: (m: Msg) => void }[] = [];
  client.on('message', (topic, payload) => {
    const m = { topic, payload: payload.toString('utf8') };
    messages.push(m);
    for (const w of [...waiters]) {
      if (w.topic === topic) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  client.on('error', () => {});
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  return {
    client,
    messages,
    closed,
    next(topic, ms = 3000) {
      const seen = messages.find((m) => m.topic === topic);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no message on ${topic} within ${ms} ms`)), ms);
        waiters.push({
          topic,
          resolve: (m) => {
            clearTimeout(timer);
            resolve(m);
          },
        });
      });
    },
    async end() {
      await client.endAsync(true);
    },
  };
}

describe('broker (mTLS, WebSocket, ACL, services, credentials provider)', () => {
  let dir: string;
  let ca: LocalCa;
  let broker: RunningBroker;
  const registered = new Set([A, B]);
  const serviceSaw: { from: ClientIdentity; topic: string; payload: string }[] = [];
  const open: Conn[] = [];

  const connect = async (cn: string, opts: mqtt.IClientOptions = {}): Promise<Conn> => {
    const cert = await ca.issueClientCert(cn);
    const client = await mqtt.connectAsync(`mqtts://127.0.0.1:${broker.mqttPort}`, {
      ca: ca.caCertPem,
      cert: cert.certPem,
      key: cert.keyPem,
      servername: 'localhost',
      clientId: `${cn}-${randomUUID().slice(0, 8)}`,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      ...opts,
    });
    const c = wrap(client);
    open.push(c);
    return c;
  };

  before(async () => {
    const serviceTopic = /^\$aws\/things\/[^/]+\/jobs\/(get|start-next|[^/]+\/get|[^/]+\/update)$/;
    ({ dir, ca, broker } = await startCaBroker('ota-broker-e2e-', {
      progressPrefix: PREFIX,
      isRegisteredThing: (name) => registered.has(name),
      // These tests open several connections per certificate (a watcher and a publisher of one thing),
      // which only the looser client-id policy allows; client-ids.test.ts covers the default binding.
      clientIds: 'any',
      wsCredentials: WS_CREDS,
      httpsHandler: createCredentialsHandler({
        roleAliases: {
          'ota-s3': { accessKeyId: 'AKIDS3', secretAccessKey: 's3-secret', durationSeconds: 1200 },
        },
        getIdentity: getRequestIdentity,
      }),
      services: [
        {
          claims: (topic) => serviceTopic.test(topic),
          onPublish: (from, topic, payload) => {
            serviceSaw.push({ from, topic, payload: payload.toString('utf8') });
            // Reply like the Jobs service: on <request>/accepted, from the cloud side.
            void broker.publish(`${topic}/accepted`, JSON.stringify({ echo: payload.toString('utf8') }), 1);
          },
        },
      ],
    }));
  });

  after(async () => {
    for (const c of open) await c.end().catch(() => {});
    await broker.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('a thing publishes and subscribes on its own jobs and progress topics', async () => {
    const a = await connect(A);
    const granted = await a.client.subscribeAsync([`${PREFIX}/${A}`, jobs(A, 'notify')], { qos: 1 });
    assert.deepEqual(
      granted.map((g) => g.qos),
      [1, 1],
    );
    await a.client.publishAsync(`${PREFIX}/${A}`, '{"Progress":"50.0 %"}', { qos: 1 });
    assert.equal((await a.next(`${PREFIX}/${A}`)).payload, '{"Progress":"50.0 %"}');
    // QoS 2 is capped at QoS 1 (AWS IoT supports QoS 0/1 only).
    const g2 = await a.client.subscribeAsync(jobs(A, 'notify-next'), { qos: 2 });
    assert.equal(g2[0]?.qos, 1);
    await a.end();
  });

  test("thing A may not subscribe to thing B's topics, nor wildcard across things (SUBACK 0x80)", async () => {
    const a = await connect(A);
    for (const filter of [
      jobs(B, '#'),
      jobs(B, 'get/accepted'),
      `${PREFIX}/${B}`,
      '$aws/things/+/jobs/#',
      `${PREFIX}/+`,
      '#',
    ]) {
      assert.deepEqual(await suback(a.client, filter), [128], filter);
    }
    assert.equal(a.client.connected, true, 'a denied SUBSCRIBE does not drop the connection');
    await a.end();
  });

  test("thing A publishing to thing B's progress topic is refused: connection closed, nothing delivered", async () => {
    const b = await connect(B);
    await b.client.subscribeAsync(`${PREFIX}/${B}`, { qos: 1 });
    const a = await connect(A);
    a.client.publish(`${PREFIX}/${B}`, 'spoofed', { qos: 1 });
    await a.closed;
    await sleep(QUIET_MS);
    assert.equal(b.messages.length, 0);
    const a2 = await connect(A);
    a2.client.publish(jobs(B, 'get'), '{}', { qos: 0 });
    await a2.closed;
    assert.ok(!serviceSaw.some((s) => s.topic === jobs(B, 'get')), 'service never saw the refused publish');
    await b.end();
  });

  test('AWS IoT message limits: a 128 KB payload is delivered, a larger one closes the connection', async () => {
    const watcher = await connect(A);
    await watcher.client.subscribeAsync(`${PREFIX}/${A}`, { qos: 1 });
    const a = await connect(A, { clientId: `${A}-publisher` });
    a.client.publish(`${PREFIX}/${A}`, Buffer.alloc(128 * 1024, 1), { qos: 1 });
    const ok = await watcher.next(`${PREFIX}/${A}`);
    assert.equal(ok.payload.length, 128 * 1024);
    a.client.publish(`${PREFIX}/${A}`, Buffer.alloc(128 * 1024 + 1, 2), { qos: 1 });
    await a.closed;
    await sleep(QUIET_MS);
    assert.equal(watcher.messages.length, 1, 'the oversized message was not delivered');
    await watcher.end();
  });

  test('a thing may not publish on service-to-device topics (accepted/rejected/notify)', async () => {
    const a = await connect(A);
    await a.client.subscribeAsync(jobs(A, 'notify'), { qos: 1 });
    const spoof = await connect(A);
    spoof.client.publish(jobs(A, 'notify'), '{}', { qos: 1 });
    await spoof.closed;
    await sleep(QUIET_MS);
    assert.equal(a.messages.length, 0);
    await a.end();
  });

  test('the operator watches all progress with <prefix>/+ and notify wildcards, and cannot publish', async () => {
    const op = await connect('operator');
    const granted = await op.client.subscribeAsync(
      [`${PREFIX}/+`, '$aws/things/+/jobs/notify', '$aws/things/+/jobs/notify-next', `${PREFIX}/${A}`],
      { qos: 1 },
    );
    assert.deepEqual(
      granted.map((g) => g.qos),
      [1, 1, 1, 1],
    );
    for (const filter of ['#', '$aws/things/+/jobs/get/accepted', jobs(A, '#'), '$aws/things/+/jobs/#']) {
      assert.deepEqual(await suback(op.client, filter), [128], filter);
    }
    const a = await connect(A);
    await a.client.publishAsync(`${PREFIX}/${A}`, '{"Progress":"84.37 %"}', { qos: 1 });
    assert.equal((await op.next(`${PREFIX}/${A}`)).payload, '{"Progress":"84.37 %"}');
    await broker.publish(jobs(B, 'notify'), '{"jobs":{}}', 1);
    assert.equal((await op.next(jobs(B, 'notify'))).payload, '{"jobs":{}}');

    op.client.publish(`${PREFIX}/${A}`, 'operator spoof', { qos: 1 });
    await op.closed;
    await a.end();
  });

  test('a publish on a claimed topic goes to the service, not to subscribers; cloud replies reach the thing', async () => {
    const a = await connect(A);
    await a.client.subscribeAsync(jobs(A, '#'), { qos: 1 });
    const watcher = await connect(A); // a second connection of the same thing, also subscribed
    await watcher.client.subscribeAsync(jobs(A, 'get'), { qos: 1 });
    await a.client.publishAsync(jobs(A, 'get'), '{"clientToken":"t1"}', { qos: 1 });
    const reply = await a.next(jobs(A, 'get/accepted'));
    assert.deepEqual(JSON.parse(reply.payload), { echo: '{"clientToken":"t1"}' });
    const seen = serviceSaw.find((s) => s.topic === jobs(A, 'get'));
    assert.deepEqual(seen, {
      from: { kind: 'thing', thingName: A },
      topic: jobs(A, 'get'),
      payload: '{"clientToken":"t1"}',
    });
    await sleep(QUIET_MS);
    assert.ok(!a.messages.some((m) => m.topic === jobs(A, 'get')), 'request not echoed to the requester');
    assert.equal(watcher.messages.length, 0, 'request not delivered to another subscriber');
    await a.end();
    await watcher.end();
  });

  test('an unregistered CN is refused at CONNECT with return code 5', async () => {
    await assert.rejects(connect('not-registered'), (err: Error & { code?: number }) => {
      assert.equal(err.code, 5);
      return true;
    });
  });

  test('a certificate from a foreign CA, or no certificate, fails the TLS handshake', async () => {
    const foreign = await createEphemeralCa('foreign CA');
    const intruder = await foreign.issueClientCert(A);
    const base = {
      ca: ca.caCertPem,
      servername: 'localhost',
      protocolVersion: 4 as const,
      reconnectPeriod: 0,
      connectTimeout: 3000,
    };
    // allowRetries=false: a connection closed before CONNACK rejects instead of waiting for a reconnect.
    await assert.rejects(
      mqtt.connectAsync(
        `mqtts://127.0.0.1:${broker.mqttPort}`,
        { ...base, cert: intruder.certPem, key: intruder.keyPem },
        false,
      ),
    );
    await assert.rejects(mqtt.connectAsync(`mqtts://127.0.0.1:${broker.mqttPort}`, base, false));
  });

  test('a second connection with the same clientId disconnects the first', async () => {
    const clientId = `${A}-dup`;
    const first = await connect(A, { clientId });
    const second = await connect(A, { clientId });
    await first.closed;
    assert.equal(second.client.connected, true);
    await second.end();
  });

  test('WebSocket with a valid SigV4 presign connects as the operator', async () => {
    // transformWsUrl is MQTT.js's (synchronous) hook to sign a fresh URL on every (re)connection.
    let signed = 0;
    const client = await mqtt.connectAsync(`ws://127.0.0.1:${broker.wsPort}/mqtt`, {
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      transformWsUrl: (url) => {
        signed++;
        return presignWebSocketUrlSync(url, WS_CREDS, REGION);
      },
    });
    assert.equal(signed, 1);
    const ws = wrap(client);
    open.push(ws);
    await ws.client.subscribeAsync(`${PREFIX}/+`, { qos: 1 });
    assert.deepEqual(await suback(ws.client, jobs(A, '#')), [128]);
    const a = await connect(A);
    await a.client.publishAsync(`${PREFIX}/${A}`, 'over ws', { qos: 1 });
    assert.equal((await ws.next(`${PREFIX}/${A}`)).payload, 'over ws');
    await a.end();
    await ws.end();
  });

  test('WebSocket upgrade without, with a wrong or with an expired signature gets HTTP 403', async () => {
    const base = `ws://127.0.0.1:${broker.wsPort}/mqtt`;
    const upgradeStatus = (url: string) => wsUpgradeStatus(url);

    assert.equal(await upgradeStatus(base), 403);
    const wrongSecret = await presignWebSocketUrl(base, { ...WS_CREDS, secretAccessKey: 'wrong' }, REGION);
    assert.equal(await upgradeStatus(wrongSecret), 403);
    const wrongRegion = await presignWebSocketUrl(base, WS_CREDS, 'eu-west-1');
    assert.equal(await upgradeStatus(wrongRegion), 403);
    const expired = await presignWebSocketUrl(base, WS_CREDS, REGION, 60, new Date(Date.now() - 3_600_000));
    assert.equal(await upgradeStatus(expired), 403);
    const good = await presignWebSocketUrl(base, WS_CREDS, REGION);
    const tampered = good.replace(/X-Amz-Date=\d{8}T\d{6}Z/, (d) =>
      d.replace(/\d(?=Z$)/, (x) => String((Number(x) + 1) % 10)),
    );
    assert.notEqual(tampered, good);
    assert.equal(await upgradeStatus(tampered), 403);
    assert.equal(await upgradeStatus(good), 101);
  });

  test('the synchronous signer agrees with @smithy/signature-v4', async () => {
    const date = new Date('2026-01-02T03:04:05Z');
    const ours = presignWebSocketUrlSync('ws://127.0.0.1:8083/mqtt?x=1&a=b c', WS_CREDS, REGION, 600, date);
    const signer = new SignatureV4({
      credentials: WS_CREDS,
      region: REGION,
      service: 'iotdevicegateway',
      sha256: Sha256,
    });
    const reference = await signer.presign(
      new HttpRequest({
        method: 'GET',
        protocol: 'ws:',
        hostname: '127.0.0.1',
        port: 8083,
        path: '/mqtt',
        query: { x: '1', a: 'b c' },
        headers: { host: '127.0.0.1:8083' },
      }),
      { expiresIn: 600, signingDate: date },
    );
    const q = new URL(ours).searchParams;
    assert.equal(q.get('X-Amz-Signature'), reference.query?.['X-Amz-Signature']);
    assert.equal(
      q.get('X-Amz-Credential'),
      `${WS_CREDS.accessKeyId}/20260102/${REGION}/iotdevicegateway/aws4_request`,
    );
    assert.equal(q.get('X-Amz-Date'), '20260102T030405Z');
    assert.equal(q.get('a'), 'b c');
  });

  test('presign verification: a session token the stack issued, appended after signing, is accepted; other tokens and hosts are not', async () => {
    const url = await presignWebSocketUrl(
      'ws://127.0.0.1:1234/mqtt',
      { ...WS_CREDS, sessionToken: 'tok/en+=' },
      REGION,
    );
    assert.match(url, /&X-Amz-Security-Token=tok%2Fen%2B%3D$/);
    const u = new URL(url);
    const req = (host: string) => ({ url: `${u.pathname}${u.search}`, headers: { host } });
    const checking = {
      ...WS_CREDS,
      checkSessionToken: (t: string) => (t === 'tok/en+=' ? 'valid' : 'invalid'),
    } as const;
    assert.deepEqual(await verifyPresignedWebSocketRequest(req('127.0.0.1:1234'), checking), {
      ok: true,
      accessKeyId: WS_CREDS.accessKeyId,
    });
    // A token nobody issued (or no way to check it) is refused even with a good signature.
    assert.equal((await verifyPresignedWebSocketRequest(req('127.0.0.1:1234'), WS_CREDS)).ok, false);
    const forged = await presignWebSocketUrl(
      'ws://127.0.0.1:1234/mqtt',
      { ...WS_CREDS, sessionToken: 'forged' },
      REGION,
    );
    const fu = new URL(forged);
    const forgedReq = { url: `${fu.pathname}${fu.search}`, headers: { host: '127.0.0.1:1234' } };
    assert.equal((await verifyPresignedWebSocketRequest(forgedReq, checking)).ok, false);
    const other = await verifyPresignedWebSocketRequest(req('127.0.0.1:9999'), WS_CREDS);
    assert.equal(other.ok, false);
  });

  test('credentials provider over ALPN http/1.1 on the mTLS port', async () => {
    const get = async (cn: string, headers: Record<string, string> = {}, alias = 'ota-s3') => {
      const cert = await ca.issueClientCert(cn);
      return new Promise<{ status: number; body: string; alpn: string | false | null }>((resolve, reject) => {
        // ALPNProtocols is a tls.connect option that https passes through; @types/node omits it here.
        const options: https.RequestOptions & { ALPNProtocols: string[] } = {
          host: '127.0.0.1',
          port: broker.mqttPort,
          servername: 'localhost',
          path: `/role-aliases/${alias}/credentials`,
          ca: ca.caCertPem,
          cert: cert.certPem,
          key: cert.keyPem,
          ALPNProtocols: ['http/1.1'],
          headers,
          agent: false,
        };
        const req = https.request(options, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d) => {
            body += d;
          });
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              body,
              alpn: (res.socket as tls.TLSSocket).alpnProtocol,
            }),
          );
        });
        req.on('error', reject);
        req.end();
      });
    };

    const t0 = Date.now();
    const ok = await get(A, { 'x-amzn-iot-thingname': A });
    assert.equal(ok.status, 200, ok.body);
    assert.equal(ok.alpn, 'http/1.1');
    const { credentials } = JSON.parse(ok.body);
    assert.equal(credentials.accessKeyId, 'AKIDS3');
    assert.equal(credentials.secretAccessKey, 's3-secret');
    assert.equal(typeof credentials.sessionToken, 'string');
    const exp = Date.parse(credentials.expiration);
    assert.ok(exp >= t0 + 1200_000 - 5000 && exp <= Date.now() + 1200_000 + 5000, credentials.expiration);

    assert.equal((await get(A)).status, 200, 'header is optional');
    assert.equal((await get(A, { 'x-amzn-iot-thingname': B })).status, 403);
    assert.equal((await get(A, {}, 'no-such-alias')).status, 404);
    assert.equal((await get('operator')).status, 403, 'only things assume roles');
    assert.equal((await get('not-registered')).status, 403);
  });

  test('garbage on the mTLS port (before and after the handshake) never takes the broker down', async () => {
    const raw = net.connect(broker.mqttPort, '127.0.0.1');
    raw.on('error', () => {});
    raw.write(randomBytes(4096));
    await new Promise<void>((resolve) => raw.once('close', () => resolve()));

    const cert = await ca.issueClientCert(A);
    const s = tls.connect({
      host: '127.0.0.1',
      port: broker.mqttPort,
      servername: 'localhost',
      ca: ca.caCertPem,
      cert: cert.certPem,
      key: cert.keyPem,
    });
    s.on('error', () => {});
    await new Promise<void>((resolve) => s.once('secureConnect', () => resolve()));
    s.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8]));
    await new Promise<void>((resolve) => s.once('close', () => resolve()));

    const abrupt = net.connect(broker.mqttPort, '127.0.0.1');
    abrupt.on('error', () => {});
    await new Promise<void>((resolve) => abrupt.once('connect', () => resolve()));
    abrupt.destroy();

    const a = await connect(A);
    await a.client.publishAsync(`${PREFIX}/${A}`, 'still alive', { qos: 1 });
    await a.end();
  });

  test('stats count clients and publishes', () => {
    const s = broker.stats();
    assert.ok(s.publishesIn > 0);
    assert.ok(s.publishesOut > 0);
    assert.equal(typeof s.connectedClients, 'number');
  });
});

describe('broker lifecycle', () => {
  test('anonymous listener (only when configured) is read-only; close() releases every port', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ota-broker-anon-'));
    try {
      const ca = await ensureLocalCa(dir);
      const broker = await startBroker({
        host: '127.0.0.1',
        mqttPort: 0,
        wsPort: 0,
        anonymousPort: 0,
        tls: { ca: ca.caCertPem, cert: ca.serverCertPem, key: ca.serverKeyPem },
        isRegisteredThing: (name) => name === 'lingering',
        wsCredentials: WS_CREDS,
      });
      assert.ok(broker.anonymousPort && broker.anonymousPort > 0);
      const anon = wrap(
        await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.anonymousPort}`, {
          protocolVersion: 4,
          reconnectPeriod: 0,
        }),
      );
      await anon.client.subscribeAsync(`${PREFIX}/+`, { qos: 1 });
      await broker.publish(`${PREFIX}/x`, 'hello', 0);
      assert.equal((await anon.next(`${PREFIX}/x`)).payload, 'hello');
      anon.client.publish(`${PREFIX}/x`, 'nope', { qos: 1 });
      await anon.closed;

      // A still-connected client must not keep close() from finishing.
      const cert = await ca.issueClientCert('lingering');
      const lingering = wrap(
        await mqtt.connectAsync(`mqtts://127.0.0.1:${broker.mqttPort}`, {
          ca: ca.caCertPem,
          cert: cert.certPem,
          key: cert.keyPem,
          servername: 'localhost',
          clientId: 'lingering',
          protocolVersion: 4,
          reconnectPeriod: 0,
        }),
      );
      await broker.close();
      await lingering.closed;
      await lingering.end();
      for (const port of [broker.mqttPort, broker.wsPort, broker.anonymousPort]) {
        const free = await new Promise<boolean>((resolve) => {
          const srv = net.createServer();
          srv.once('error', () => resolve(false));
          srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
        });
        assert.equal(free, true, `port ${port} released`);
      }
      await assert.rejects(broker.publish('x', 'y'), { code: 'OTA_BROKER' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('without anonymousPort there is no anonymous listener', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ota-broker-noanon-'));
    try {
      const ca = await ensureLocalCa(dir);
      const broker = await startBroker({
        host: '127.0.0.1',
        mqttPort: 0,
        wsPort: 0,
        tls: { ca: ca.caCertPem, cert: ca.serverCertPem, key: ca.serverKeyPem },
        isRegisteredThing: () => true,
        wsCredentials: WS_CREDS,
      });
      assert.equal(broker.anonymousPort, undefined);
      await broker.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('ACL (AWS IoT policy with the iot:Connection.Thing.ThingName variable)', () => {
  const opts = { progressPrefix: PREFIX };
  const thing: ClientIdentity = { kind: 'thing', thingName: A };
  const op: ClientIdentity = { kind: 'operator', name: 'operator' };

  test('thing publish rights', () => {
    assert.equal(canPublish(thing, `${PREFIX}/${A}`, opts), true);
    assert.equal(canPublish(thing, jobs(A, 'get'), opts), true);
    assert.equal(canPublish(thing, jobs(A, 'job-1/update'), opts), true);
    assert.equal(canPublish(thing, jobs(A, 'start-next'), opts), true);
    assert.equal(canPublish(thing, jobs(A, 'get/accepted'), opts), false);
    assert.equal(canPublish(thing, jobs(A, 'notify-next'), opts), false);
    assert.equal(canPublish(thing, jobs(B, 'get'), opts), false);
    assert.equal(canPublish(thing, `${PREFIX}/${B}`, opts), false);
    assert.equal(canPublish(thing, `${PREFIX}/${A}/extra`, opts), false);
    assert.equal(canPublish(op, `${PREFIX}/${A}`, opts), false);
  });

  test('subscribe rights compare the filter text', () => {
    assert.equal(canSubscribe(thing, jobs(A, '#'), opts), true);
    assert.equal(canSubscribe(thing, jobs(A, '+/update/accepted'), opts), true);
    assert.equal(canSubscribe(thing, '$aws/things/+/jobs/#', opts), false);
    assert.equal(canSubscribe(thing, `$aws/things/${A}/#`, opts), false);
    assert.equal(canSubscribe(thing, `${PREFIX}/#`, opts), false);
    assert.equal(canSubscribe(op, `${PREFIX}/#`, opts), true);
    assert.equal(canSubscribe(op, `${PREFIX}/${B}`, opts), true);
    assert.equal(canSubscribe(op, `${PREFIX}/a/b`, opts), false);
    assert.equal(canSubscribe(op, `$aws/things/${B}/jobs/notify`, opts), true);
    assert.equal(canSubscribe(op, `$aws/things/${B}/jobs/get/accepted`, opts), false);
    assert.equal(canSubscribe(op, 'CarVi/#', opts), false);
  });
});
