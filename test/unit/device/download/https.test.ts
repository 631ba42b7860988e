import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ensureLocalCa, type LocalCa } from '../../../../src/cloud/pki/pki.ts';
import { rawGet } from '../../../../src/device/download/http-body.ts';

/**
 * The agent's GET over TLS (presigned S3 URLs on AWS are https): certificate and host name verified,
 * Content-Length and chunked bodies delivered byte for byte.
 */
let dir: string;
let ca: LocalCa;
let server: Server;
let base: string;
const body = randomBytes(3 * 1024 * 1024 + 5);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ota-https-'));
  ca = await ensureLocalCa(dir);
  server = createServer({ cert: ca.serverCertPem, key: ca.serverKeyPem }, (req, res) => {
    if (req.url === '/chunked') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      for (let i = 0; i < body.length; i += 100_000) res.write(body.subarray(i, i + 100_000));
      res.end();
      return;
    }
    res.writeHead(200, { 'content-length': String(body.length), etag: '"abc"' });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `https://localhost:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await rm(dir, { recursive: true, force: true });
});

async function download(url: string, ca?: string): Promise<{ status: number; bytes: Buffer; etag?: string }> {
  const res = await rawGet(new URL(url), ca ? { ca } : {});
  const parts: Buffer[] = [];
  await res.body.pump((chunk) => {
    parts.push(Buffer.from(chunk));
    return true;
  });
  return { status: res.status, bytes: Buffer.concat(parts), etag: res.headers.get('etag') };
}

test('https with the server’s CA: Content-Length body byte for byte, by host name and by IP', async () => {
  const byName = await download(`${base}/fixed`, ca.caCertPem);
  assert.equal(byName.status, 200);
  assert.equal(byName.etag, '"abc"');
  assert.equal(sha(byName.bytes), sha(body));
  const byIp = await download(`${base.replace('localhost', '127.0.0.1')}/fixed`, ca.caCertPem);
  assert.equal(sha(byIp.bytes), sha(body));
});

test('https chunked body byte for byte', async () => {
  const r = await download(`${base}/chunked`, ca.caCertPem);
  assert.equal(r.bytes.length, body.length);
  assert.equal(sha(r.bytes), sha(body));
});

test('https refuses a server whose certificate does not chain to a trusted CA', async () => {
  await assert.rejects(download(`${base}/fixed`), /self[- ]signed|unable to (verify|get local issuer)/i);
});
