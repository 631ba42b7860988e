/**
 * A burst of publishes must not take the broker down: over aedes' default in-flight cap (100) mqemitter
 * queued them, and messages without subscribers then completed recursively, one stack frame chain per
 * queued message, until "Maximum call stack size exceeded" killed the stack (seen with 10,000 devices).
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { describe, test } from 'node:test';
import { startCaBroker } from '../../helpers/broker.ts';
import { connectWithCert } from '../../helpers/mqtt.ts';

describe('broker under a burst of publishes', () => {
  // An overflow thrown inside aedes' callbacks would leave the publishes never settling: the timeout
  // turns that into a failure.
  test('deliveries held by a slow subscriber, then 20,000 publishes without subscribers', {
    timeout: 60_000,
  }, async () => {
    const { dir, ca, broker } = await startCaBroker('ota-broker-burst-', {
      isRegisteredThing: (name) => name === 'burst-cam',
      wsCredentials: { accessKeyId: 'AKIDBURST', secretAccessKey: 'burst-secret', region: 'us-west-2' },
    });
    const cert = await ca.issueClientCert('burst-cam');
    const client = await connectWithCert(
      broker.mqttPort,
      { ca: ca.caCertPem, cert: cert.certPem, key: cert.keyPem },
      'burst-cam',
    );
    try {
      const topic = '$aws/things/burst-cam/jobs/notify-next';
      await client.subscribeAsync(topic, { qos: 1 });
      let received = 0;
      client.on('message', () => {
        received++;
      });
      // A subscriber that does not read (a device whose event loop is busy): deliveries to it wait for
      // its socket to drain and hold the broker's in-flight slots …
      client.stream.pause();
      const big = 'x'.repeat(100_000);
      const sent: Promise<void>[] = [];
      for (let i = 0; i < 200; i++) sent.push(broker.publish(topic, big, 0));
      await new Promise((r) => setTimeout(r, 500));
      // … while publishes without subscribers (progress nobody watches) keep coming.
      for (let i = 0; i < 20_000; i++) sent.push(broker.publish(`CarVi/test/firmware/nobody-${i}`, 'x', 0));
      await new Promise((r) => setTimeout(r, 500));
      client.stream.resume();
      await Promise.all(sent);
      const until = Date.now() + 10_000;
      while (received < 200 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      assert.equal(received, 200);
    } finally {
      await client.endAsync();
      await broker.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
