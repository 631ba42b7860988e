/** A deleted thing's live connections are dropped, and it cannot connect again (issue 8, section 3). */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startBroker } from '../../../src/cloud/broker/broker.ts';
import { ensureLocalCa } from '../../../src/cloud/pki/pki.ts';
import { connectWithCert } from '../../helpers/mqtt.ts';

test('disconnectThing closes every connection of that thing only; its later CONNECTs are refused', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ota-disconnect-thing-'));
  const registered = new Set(['doomed', 'bystander']);
  const ca = await ensureLocalCa(join(dir, 'pki'));
  const broker = await startBroker({
    host: '127.0.0.1',
    mqttPort: 0,
    wsPort: 0,
    tls: { ca: ca.caCertPem, cert: ca.serverCertPem, key: ca.serverKeyPem },
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
