/**
 * A valid certificate announcing huge MQTT packets: the broker must refuse them from the fixed header
 * (MQTT 3.1.1 §2.2.3 Remaining Length) and close the connection, instead of buffering the body. Measured
 * in bytes the attacker got to send before the close, never in time.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import mqtt from 'mqtt';
import { MAX_PACKET_BYTES, MAX_PAYLOAD_BYTES } from '../../../src/cloud/broker/broker.ts';
import type { RunningBroker } from '../../../src/cloud/broker/types.ts';
import type { LocalCa } from '../../../src/cloud/pki/pki.ts';
import { startCaBroker } from '../../helpers/broker.ts';
import { varInt } from '../../helpers/mqtt.ts';

const WS_CREDS = { accessKeyId: 'AKIDLIMITS', secretAccessKey: 'limits-secret', region: 'us-west-2' };
const PREFIX = 'CarVi/test/firmware';
const ANNOUNCED = 250 * 1024 * 1024;
/**
 * What may pass before the close: the broker's first read plus the loopback socket buffers in both
 * directions (Linux autotunes them to a few MiB). Far below the 250 MiB the packet announces.
 */
const MAX_BYTES_BEFORE_CLOSE = 32 * 1024 * 1024;

/** MQTT 3.1.1 CONNECT (§3.1), clean session, keep-alive 60 s. */
function connectPacket(clientId: string): Buffer {
  const id = Buffer.from(clientId);
  const body = Buffer.concat([
    Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 60]),
    Buffer.from([id.length >> 8, id.length & 0xff]),
    id,
  ]);
  return Buffer.concat([Buffer.from([0x10, ...varInt(body.length)]), body]);
}

/**
 * Connects with the thing's certificate, gets CONNACK 0, announces a PUBLISH of `ANNOUNCED` bytes and
 * keeps writing its body (respecting backpressure) until the broker closes the connection. Returns how
 * many bytes of the packet the kernel accepted before that.
 */
async function floodOnePacket(port: number, ca: LocalCa, thing: string): Promise<number> {
  const cert = await ca.issueClientCert(thing);
  const socket = tls.connect({
    host: '127.0.0.1',
    port,
    servername: 'localhost',
    ca: ca.caCertPem,
    cert: cert.certPem,
    key: cert.keyPem,
  });
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  });
  socket.write(connectPacket(thing));
  const connack = await new Promise<Buffer>((resolve) => socket.once('data', resolve));
  assert.deepEqual([...connack], [0x20, 2, 0, 0], 'CONNACK accepted');

  const topic = Buffer.from(`${PREFIX}/${thing}`);
  socket.write(
    Buffer.concat([
      Buffer.from([0x30, ...varInt(ANNOUNCED)]),
      Buffer.from([topic.length >> 8, topic.length & 0xff]),
      topic,
    ]),
  );
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let written = 0;
  let isClosed = false;
  void closed.then(() => {
    isClosed = true;
  });
  while (!isClosed && written < ANNOUNCED) {
    written += chunk.length;
    if (!socket.write(chunk)) {
      await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), closed]);
    }
  }
  await closed;
  return written;
}

describe('broker: oversized packets are refused from their fixed header', () => {
  let dir: string;
  let ca: LocalCa;
  let broker: RunningBroker;
  const things = ['flood-1', 'flood-2', 'flood-3', 'flood-4', 'legit'];

  before(async () => {
    ({ dir, ca, broker } = await startCaBroker('ota-broker-limits-', {
      progressPrefix: PREFIX,
      isRegisteredThing: (name) => things.includes(name),
      wsCredentials: WS_CREDS,
    }));
  });

  after(async () => {
    await broker.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('four parallel 250 MB PUBLISH packets: each connection is closed after a bounded number of bytes', async () => {
    const sent = await Promise.all(things.slice(0, 4).map((t) => floodOnePacket(broker.mqttPort, ca, t)));
    for (const [i, bytes] of sent.entries()) {
      assert.ok(bytes < MAX_BYTES_BEFORE_CLOSE, `connection ${i}: ${bytes} bytes accepted before the close`);
    }
    assert.equal(broker.stats().oversizedPackets, 4);
  });

  test('normal traffic and a packet of exactly the largest legal payload still work', async () => {
    const cert = await ca.issueClientCert('legit');
    const client = await mqtt.connectAsync(`mqtts://127.0.0.1:${broker.mqttPort}`, {
      ca: ca.caCertPem,
      cert: cert.certPem,
      key: cert.keyPem,
      servername: 'localhost',
      clientId: 'legit',
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    try {
      const topic = `${PREFIX}/legit`;
      await client.subscribeAsync(topic, { qos: 1 });
      const got = new Promise<Buffer>((resolve) => client.once('message', (_t, p) => resolve(p)));
      await client.publishAsync(topic, Buffer.alloc(MAX_PAYLOAD_BYTES, 7), { qos: 1 });
      assert.equal((await got).length, MAX_PAYLOAD_BYTES);
      const small = new Promise<Buffer>((resolve) => client.once('message', (_t, p) => resolve(p)));
      await client.publishAsync(topic, '{"Progress":"1.0 %"}', { qos: 1 });
      assert.equal((await small).toString(), '{"Progress":"1.0 %"}');
      assert.ok(MAX_PACKET_BYTES > MAX_PAYLOAD_BYTES + 2 + 256 + 2, 'the limit leaves room for topic and id');
      assert.equal(broker.stats().oversizedPackets, 4, 'nothing legal was refused');
    } finally {
      await client.endAsync(true);
    }
  });
});
