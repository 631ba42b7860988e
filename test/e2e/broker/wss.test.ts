/**
 * MQTT over WebSocket over TLS, the only WebSocket transport AWS IoT Core serves (and the only one AWS's
 * device SDKs speak): the stack's WSS listener with its root CA and a SigV4-presigned URL, as written to
 * endpoints.json (`wss.url`).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import type { LocalStack } from '../../../src/cloud/stack.ts';
import { presignWebSocketUrlSync } from '../../../src/shared/ws-url.ts';
import { wsUpgradeStatus } from '../../helpers/mqtt.ts';
import { startTestStack, type TestStack } from '../../helpers/stack.ts';

const THING = 'wss-cam';

describe('MQTT over WSS (TLS + SigV4)', () => {
  let t: TestStack;
  let stack: LocalStack;
  let rootCa: string;

  before(async () => {
    t = await startTestStack('ota-wss', { things: [THING] });
    stack = t.stack;
    rootCa = await readFile(stack.endpoints.rootCA, 'utf8');
  });
  after(async () => t.close());

  const creds = () => ({
    accessKeyId: stack.endpoints.iot.accessKeyId,
    secretAccessKey: stack.endpoints.iot.secretAccessKey,
  });

  test('endpoints.json names a wss:// URL on its own port, next to the plain ws:// one', () => {
    const wss = stack.endpoints.wss;
    assert.ok(wss, 'wss present');
    const u = new URL(wss.url);
    assert.equal(u.protocol, 'wss:');
    assert.equal(u.pathname, '/mqtt');
    assert.equal(Number(u.port), stack.broker.wssPort);
    assert.notEqual(u.port, new URL(stack.endpoints.ws.url).port);
  });

  test('an MQTT.js client over wss:// (verifying the server with the root CA) watches a thing publish', async () => {
    const wssUrl = stack.endpoints.wss?.url ?? '';
    const watcher = await mqtt.connectAsync(wssUrl, {
      ca: rootCa,
      rejectUnauthorized: true,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      clientId: `ota-wss-watch-${randomBytes(4).toString('hex')}`,
      transformWsUrl: (url) => presignWebSocketUrlSync(url, creds(), stack.endpoints.region),
    });
    try {
      await watcher.subscribeAsync('CarVi/test/firmware/+', { qos: 1 });
      const got = new Promise<string>((resolve) => watcher.once('message', (_t, p) => resolve(p.toString())));
      const cert = stack.endpoints.things[THING];
      assert.ok(cert);
      const device = await mqtt.connectAsync(`mqtts://127.0.0.1:${stack.endpoints.mqtt.port}`, {
        ca: rootCa,
        cert: await readFile(cert.cert, 'utf8'),
        key: await readFile(cert.key, 'utf8'),
        servername: 'localhost',
        clientId: THING,
        protocolVersion: 4,
        reconnectPeriod: 0,
      });
      await device.publishAsync(`CarVi/test/firmware/${THING}`, '{"Progress":"12.5 %"}', { qos: 1 });
      assert.equal(await got, '{"Progress":"12.5 %"}');
      await device.endAsync(true);
    } finally {
      await watcher.endAsync(true);
    }
  });

  const upgrade = (url: string, ca: string | undefined) => wsUpgradeStatus(url, ca);

  test('WSS refuses an unsigned or wrongly signed upgrade (403); a client without the root CA refuses the server', async () => {
    const wssUrl = stack.endpoints.wss?.url ?? '';
    assert.equal(await upgrade(wssUrl, rootCa), 403);
    const wrong = presignWebSocketUrlSync(
      wssUrl,
      { ...creds(), secretAccessKey: 'wrong' },
      stack.endpoints.region,
    );
    assert.equal(await upgrade(wrong, rootCa), 403);
    const good = presignWebSocketUrlSync(wssUrl, creds(), stack.endpoints.region);
    assert.equal(await upgrade(good, rootCa), 101);
    assert.equal(await upgrade(good, undefined), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });
});
