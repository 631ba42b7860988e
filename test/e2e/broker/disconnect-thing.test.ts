/** A deleted thing's live connections are dropped, and it cannot connect again. */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCaBroker } from '../../helpers/broker.ts';
import { connectWithCert } from '../../helpers/mqtt.ts';

test('disconnectThing closes every connection of that thing only; its later CONNECTs are refused', async () => {
  const registered = new Set(['doomed', 'bystander']);
  const { dir, ca, broker } = await startCaBroker('ota-disconnect-thing-', {
    isRegisteredThing: (name) => registered.has(name),
    wsCredentials: { accessKeyId: 'AKIDDEL', secretAccessKey: 'del-secret', region: 'us-west-2' },
    clientIds: 'any', // two connections of the doomed thing
  });
  const connect = async (cn: string, clientId: string) => {
    const cert = await ca.issueClientCert(cn);
    return connectWithCert(
      broker.mqttPort,
      { ca: ca.caCertPem, cert: cert.certPem, key: cert.keyPem },
      clientId,
    );
  };
  try {
    const d1 = await connect('doomed', 'doomed');
    const d2 = await connect('doomed', 'doomed-2');
    const other = await connect('bystander', 'bystander');
    const closed = Promise.all([d1, d2].map((c) => new Promise<void>((r) => c.once('close', () => r()))));
    assert.equal(broker.disconnectThing('nobody'), 0);

    registered.delete('doomed');
    assert.equal(broker.disconnectThing('doomed'), 2);
    await closed;
    await sleep(100);
    assert.equal(other.connected, true, 'other things keep their connections');
    await assert.rejects(connect('doomed', 'doomed'), (err: Error & { code?: number }) => err.code === 5);
    await other.endAsync(true);
  } finally {
    await broker.close();
    await rm(dir, { recursive: true, force: true });
  }
});
