/**
 * Client ids bound to the certificate's thing (AWS's recommended `iot:Connect` on
 * `client/${iot:Connection.Thing.ThingName}`): no certificate can take over another thing's session by
 * connecting with its name (MQTT 3.1.1 §3.1.4: a second CONNECT with a client id disconnects the first).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MqttClient } from 'mqtt';
import { startBroker } from '../../../src/cloud/broker/broker.ts';
import type { ClientIdPolicy, RunningBroker } from '../../../src/cloud/broker/types.ts';
import { ensureLocalCa, type LocalCa } from '../../../src/cloud/pki/pki.ts';
import { connectWithCert } from '../../helpers/mqtt.ts';
import { startTestStack } from '../../helpers/stack.ts';

const WS_CREDS = { accessKeyId: 'AKIDCLIENTIDS', secretAccessKey: 'client-ids-secret', region: 'us-west-2' };
const VICTIM = 'victim-cam';
const ATTACKER = 'attacker-cam';

async function connectAs(
  port: number,
  ca: { caCertPem: string; issueClientCert: LocalCa['issueClientCert'] },
  cn: string,
  clientId: string,
): Promise<MqttClient> {
  const cert = await ca.issueClientCert(cn);
  return connectWithCert(port, { ca: ca.caCertPem, cert: cert.certPem, key: cert.keyPem }, clientId);
}

const refusedWith5 = (err: Error & { code?: number }) => {
  assert.equal(err.code, 5);
  return true;
};

describe('client ids bound to the thing name (default)', () => {
  let dir: string;
  let ca: LocalCa;
  const brokers: RunningBroker[] = [];
  const start = async (clientIds?: ClientIdPolicy) => {
    const b = await startBroker({
      host: '127.0.0.1',
      mqttPort: 0,
      wsPort: 0,
      tls: { ca: ca.caCertPem, cert: ca.serverCertPem, key: ca.serverKeyPem },
      isRegisteredThing: (name) => name === VICTIM || name === ATTACKER,
      wsCredentials: WS_CREDS,
      ...(clientIds ? { clientIds } : {}),
    });
    brokers.push(b);
    return b;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ota-client-ids-'));
    ca = await ensureLocalCa(join(dir, 'pki'));
  });
  after(async () => {
    for (const b of brokers) await b.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("another thing's certificate cannot use the victim's client id, however often it tries", async () => {
    const broker = await start();
    const victim = await connectAs(broker.mqttPort, ca, VICTIM, VICTIM);
    let victimClosed = false;
    victim.on('close', () => {
      victimClosed = true;
    });
    for (let i = 0; i < 5; i++) {
      await assert.rejects(connectAs(broker.mqttPort, ca, ATTACKER, VICTIM), refusedWith5);
    }
    await sleep(200);
    assert.equal(victimClosed, false, 'the victim kept its connection');
    assert.equal(victim.connected, true);
    // The victim still works.
    await victim.subscribeAsync(`CarVi/test/firmware/${VICTIM}`, { qos: 1 });
    await victim.endAsync(true);
  });

  test('a thing must use exactly its thing name; the operator may not use a thing name', async () => {
    const broker = await start();
    await assert.rejects(connectAs(broker.mqttPort, ca, ATTACKER, `${ATTACKER}-2`), refusedWith5);
    await assert.rejects(connectAs(broker.mqttPort, ca, 'operator', VICTIM), refusedWith5);
    const own = await connectAs(broker.mqttPort, ca, ATTACKER, ATTACKER);
    const op = await connectAs(broker.mqttPort, ca, 'operator', 'ota-watch-1');
    assert.equal(own.connected && op.connected, true);
    await own.endAsync(true);
    await op.endAsync(true);
  });

  test("with the looser policy ('any') a certificate may use any client id, and so can kick another thing", async () => {
    const broker = await start('any');
    const victim = await connectAs(broker.mqttPort, ca, VICTIM, VICTIM);
    const closed = new Promise<void>((resolve) => victim.once('close', () => resolve()));
    const attacker = await connectAs(broker.mqttPort, ca, ATTACKER, VICTIM);
    await closed;
    const second = await connectAs(broker.mqttPort, ca, ATTACKER, `${ATTACKER}-sub`);
    await attacker.endAsync(true);
    await second.endAsync(true);
  });

  test('the local stack binds by default and takes `clientIds: any`', async () => {
    for (const [clientIds, allowed] of [
      [undefined, false],
      ['any', true],
    ] as const) {
      const { stack, close } = await startTestStack('ota-client-ids-stack', {
        things: [VICTIM],
        ...(clientIds ? { clientIds } : {}),
      });
      try {
        const stackCa = await ensureLocalCa(join(stack.dataDir, 'certs'));
        const attempt = connectAs(stack.endpoints.mqtt.port, stackCa, VICTIM, `${VICTIM}-second`);
        if (allowed) await (await attempt).endAsync(true);
        else await assert.rejects(attempt, refusedWith5);
      } finally {
        await close();
      }
    }
  });
});
