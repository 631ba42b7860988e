import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import {
  createEphemeralCa,
  ensureLocalCa,
  type LocalCa,
  subjectAltNames,
} from '../../../../src/cloud/pki/pki.ts';

/** Runs one mutual-TLS handshake against a server using the local CA; resolves with both sides' view. */
async function handshake(
  ca: LocalCa,
  client: { cert: string; key: string; ca?: string },
  connectHost: string,
  servername?: string,
): Promise<{ serverSawCn: string | undefined; clientAuthorized: boolean }> {
  let serverSawCn: string | undefined;
  const server = tls.createServer({
    cert: ca.serverCertPem,
    key: ca.serverKeyPem,
    ca: ca.caCertPem,
    requestCert: true,
    rejectUnauthorized: true,
  });
  server.on('secureConnection', (socket) => {
    const cn = socket.getPeerCertificate().subject?.CN;
    serverSawCn = Array.isArray(cn) ? cn[0] : cn;
    socket.on('error', () => {});
    socket.end('hi');
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    const clientAuthorized = await new Promise<boolean>((resolve, reject) => {
      const socket = tls.connect({
        host: connectHost,
        port,
        ...(servername ? { servername } : {}),
        ca: client.ca ?? ca.caCertPem,
        cert: client.cert,
        key: client.key,
      });
      socket.on('error', reject);
      socket.on('close', () => reject(new Error('connection closed before any data')));
      // TLS 1.3: the server's verdict on the client certificate arrives after the client's handshake
      // completes, so wait for application data (or an error) rather than just 'secureConnect'.
      socket.on('data', () => {
        resolve(socket.authorized);
        socket.end();
      });
    });
    return { serverSawCn, clientAuthorized };
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describe('local CA', () => {
  let dir: string;
  let ca: LocalCa;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ota-pki-'));
    ca = await ensureLocalCa(dir);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('writes CA and server files, keys as PKCS#8 PEM with mode 0600', async () => {
    assert.equal(ca.caCertPath, join(dir, 'ca.pem'));
    assert.equal(ca.serverCertPath, join(dir, 'server.pem'));
    assert.equal(ca.serverKeyPath, join(dir, 'server.key'));
    for (const keyFile of ['ca.key', 'server.key']) {
      const st = await stat(join(dir, keyFile));
      assert.equal(st.mode & 0o777, 0o600, `${keyFile} mode`);
      assert.match(await readFile(join(dir, keyFile), 'utf8'), /^-----BEGIN PRIVATE KEY-----\n/);
    }
    assert.equal(await readFile(ca.caCertPath, 'utf8'), ca.caCertPem);
  });

  test('CA is a CA; server cert has serverAuth and SANs localhost + 127.0.0.1, chained to the CA', () => {
    const caCert = new X509Certificate(ca.caCertPem);
    assert.equal(caCert.ca, true);
    assert.equal(caCert.checkIssued(caCert), true);
    const server = new X509Certificate(ca.serverCertPem);
    assert.equal(server.ca, false);
    assert.equal(server.checkIssued(caCert), true);
    assert.equal(server.verify(caCert.publicKey), true);
    assert.equal(server.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.ok(server.keyUsage?.includes('1.3.6.1.5.5.7.3.1'), 'serverAuth EKU');
    assert.deepEqual(subjectAltNames(ca.serverCertPem).sort(), ['127.0.0.1', 'localhost']);
    assert.equal(server.checkHost('localhost'), 'localhost');
    assert.equal(server.checkIP('127.0.0.1'), '127.0.0.1');
  });

  test('client certificate: clientAuth EKU, CN, files under clients/, idempotent', async () => {
    const a = await ca.issueClientCert('RaspberryPi_2');
    assert.equal(a.certPath, join(dir, 'clients', 'RaspberryPi_2.cert.pem'));
    assert.equal(a.keyPath, join(dir, 'clients', 'RaspberryPi_2.key.pem'));
    assert.equal((await stat(a.keyPath)).mode & 0o777, 0o600);
    const cert = new X509Certificate(a.certPem);
    assert.match(cert.subject, /CN=RaspberryPi_2/);
    assert.ok(cert.keyUsage?.includes('1.3.6.1.5.5.7.3.2'), 'clientAuth EKU');
    assert.equal(cert.checkIssued(new X509Certificate(ca.caCertPem)), true);
    const again = await ca.issueClientCert('RaspberryPi_2');
    assert.equal(again.certPem, a.certPem);
    assert.equal(again.keyPem, a.keyPem);
    const [p, q] = await Promise.all([ca.issueClientCert('concurrent'), ca.issueClientCert('concurrent')]);
    assert.equal(p.certPem, q.certPem);
  });

  test('a corrupted client pair is reissued', async () => {
    const a = await ca.issueClientCert('broken-thing');
    await writeFile(a.keyPath, 'garbage');
    const b = await ca.issueClientCert('broken-thing');
    assert.notEqual(b.certPem, a.certPem);
    assert.match(b.keyPem, /BEGIN PRIVATE KEY/);
  });

  test('rejects a CN that is not a valid thing name (it becomes a file name)', async () => {
    await assert.rejects(ca.issueClientCert('../evil'), { code: 'OTA_VALIDATION' });
  });

  test('second ensureLocalCa loads the same files; a new host reissues only the server cert', async () => {
    const again = await ensureLocalCa(dir);
    assert.equal(again.caCertPem, ca.caCertPem);
    assert.equal(again.serverCertPem, ca.serverCertPem);
    assert.equal(again.serverKeyPem, ca.serverKeyPem);

    const withHost = await ensureLocalCa(dir, { hosts: ['ota.example.test', '10.0.0.7'] });
    assert.equal(withHost.caCertPem, ca.caCertPem);
    assert.notEqual(withHost.serverCertPem, ca.serverCertPem);
    assert.deepEqual(subjectAltNames(withHost.serverCertPem).sort(), [
      '10.0.0.7',
      '127.0.0.1',
      'localhost',
      'ota.example.test',
    ]);
    // Asking with no extra hosts keeps the bigger certificate instead of flapping.
    const plain = await ensureLocalCa(dir);
    assert.equal(plain.serverCertPem, withHost.serverCertPem);
    // Client certs issued before still chain to the unchanged CA.
    const c = await plain.issueClientCert('RaspberryPi_2');
    assert.equal(new X509Certificate(c.certPem).checkIssued(new X509Certificate(plain.caCertPem)), true);
  });

  test('node tls mutual handshake with hostname verification for localhost and 127.0.0.1', async () => {
    const current = await ensureLocalCa(dir);
    const thing = await current.issueClientCert('RaspberryPi_2');
    const viaName = await handshake(
      current,
      { cert: thing.certPem, key: thing.keyPem },
      '127.0.0.1',
      'localhost',
    );
    assert.deepEqual(viaName, { serverSawCn: 'RaspberryPi_2', clientAuthorized: true });
    const viaIp = await handshake(current, { cert: thing.certPem, key: thing.keyPem }, '127.0.0.1');
    assert.deepEqual(viaIp, { serverSawCn: 'RaspberryPi_2', clientAuthorized: true });
  });

  test('hostname verification fails for a name not in the SANs', async () => {
    const current = await ensureLocalCa(dir);
    const thing = await current.issueClientCert('RaspberryPi_2');
    await assert.rejects(
      handshake(current, { cert: thing.certPem, key: thing.keyPem }, '127.0.0.1', 'not-in-san.test'),
      { code: 'ERR_TLS_CERT_ALTNAME_INVALID' },
    );
  });

  test('a client certificate from a foreign CA is refused by the server', async () => {
    const current = await ensureLocalCa(dir);
    const foreign = await createEphemeralCa('foreign CA');
    const intruder = await foreign.issueClientCert('RaspberryPi_2');
    assert.equal(
      new X509Certificate(intruder.certPem).checkIssued(new X509Certificate(current.caCertPem)),
      false,
    );
    await assert.rejects(
      handshake(current, { cert: intruder.certPem, key: intruder.keyPem }, '127.0.0.1', 'localhost'),
    );
  });
});
