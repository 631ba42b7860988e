import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { ensureLocalCa } from '../../../../src/cloud/pki/pki.ts';
import { iotCredentialsProvider } from '../../../../src/device/source/credentials.ts';

test('IoT credentials provider: mTLS + ALPN http/1.1 + thing header; cached and refreshed before expiry', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ota-cred-'));
  const ca = await ensureLocalCa(join(dir, 'certs'), { hosts: ['127.0.0.1'] });
  const thing = await ca.issueClientCert('Cam_7');
  const seen: { path?: string; thing?: string; alpn?: string | false | null; cn?: string }[] = [];
  let n = 0;
  const server = createServer(
    {
      key: ca.serverKeyPem,
      cert: ca.serverCertPem,
      ca: ca.caCertPem,
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ['http/1.1'],
    },
    (req, res) => {
      const sock = req.socket as TLSSocket;
      seen.push({
        path: req.url,
        thing: req.headers['x-amzn-iot-thingname'] as string,
        alpn: sock.alpnProtocol,
        cn: sock.getPeerCertificate().subject?.CN as string,
      });
      n++;
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          credentials: {
            accessKeyId: `AKIA${n}`,
            secretAccessKey: 's',
            sessionToken: 't',
            expiration: new Date(now + 10 * 60_000).toISOString(),
          },
        }),
      );
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  let now = Date.now();
  try {
    const provider = iotCredentialsProvider({
      endpoint: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
      roleAlias: 'ota-firmware-download',
      thingName: 'Cam_7',
      ca: ca.caCertPem,
      cert: thing.certPem,
      key: thing.keyPem,
      clock: { now: () => now },
    });
    const [a, b] = await Promise.all([provider(), provider()]);
    assert.equal(a.accessKeyId, 'AKIA1');
    assert.equal(b.accessKeyId, 'AKIA1', 'concurrent callers share one request');
    assert.equal((await provider()).accessKeyId, 'AKIA1', 'cached');
    now += 6 * 60_000; // within 5 minutes of expiry
    assert.equal((await provider()).accessKeyId, 'AKIA2', 'refreshed before expiration');
    assert.deepEqual(seen[0], {
      path: '/role-aliases/ota-firmware-download/credentials',
      thing: 'Cam_7',
      alpn: 'http/1.1',
      cn: 'Cam_7',
    });
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  }
});
