/**
 * DeleteThing through the whole stack: the control plane deletes the thing, the Jobs
 * service's `onThingDeleted` fires, and the broker drops the thing's open connection and refuses it later.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { DeleteThingCommand } from '@aws-sdk/client-iot';
import { iotClientFor } from '../../../src/operator/clients.ts';
import { connectWithCert } from '../../helpers/mqtt.ts';
import { startTestStack } from '../../helpers/stack.ts';

test('DeleteThing drops the thing connection and refuses its next CONNECT; other things stay', {
  timeout: 30_000,
}, async () => {
  const t = await startTestStack('ota-delete-thing', { things: ['doomed-cam', 'bystander-cam'] });
  const { endpoints } = t.stack;
  const pem = (thing: string) => {
    const files = endpoints.things[thing];
    assert.ok(files, `no certificate for ${thing}`);
    return {
      ca: readFileSync(endpoints.rootCA, 'utf8'),
      cert: readFileSync(files.cert, 'utf8'),
      key: readFileSync(files.key, 'utf8'),
    };
  };
  const doomedPem = pem('doomed-cam');
  const iot = iotClientFor({ kind: 'local', endpoints });
  try {
    const doomed = await connectWithCert(endpoints.mqtt.port, doomedPem, 'doomed-cam');
    const other = await connectWithCert(endpoints.mqtt.port, pem('bystander-cam'), 'bystander-cam');
    const closed = new Promise<void>((resolve) => doomed.once('close', () => resolve()));

    await iot.send(new DeleteThingCommand({ thingName: 'doomed-cam' }));
    await closed;
    assert.equal(doomed.connected, false);
    assert.equal(other.connected, true, 'the other thing keeps its connection');
    await assert.rejects(
      connectWithCert(endpoints.mqtt.port, doomedPem, 'doomed-cam'),
      (err: Error & { code?: number }) => err.code === 5,
    );
    await other.endAsync(true);
    await doomed.endAsync(true);
  } finally {
    iot.destroy();
    await t.close();
  }
});
