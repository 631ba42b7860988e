import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, type TestContext, test } from 'node:test';
import * as tls from 'node:tls';
import { ensureLocalCa, type LocalCa } from '../../../../src/cloud/pki/pki.ts';
import { rawGet } from '../../../../src/device/download/http-body.ts';
import { rawHeadServer } from './raw-server.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * A TLS server with a certificate from a local CA that answers every request with `respond`, until `t`
 * ends. It records, per connection, whether the TLS session was resumed.
 */
async function tlsServer(t: TestContext, ca: LocalCa, respond: (s: tls.TLSSocket, head: string) => void) {
  const resumed: boolean[] = [];
  const { port } = await rawHeadServer<tls.TLSSocket>(
    t,
    (onSocket) =>
      tls.createServer({ cert: ca.serverCertPem, key: ca.serverKeyPem }, (s) => {
        resumed.push(s.isSessionReused());
        onSocket(s);
      }),
    respond,
  );
  return { url: new URL(`https://127.0.0.1:${port}/bucket/fw.img`), resumed };
}

describe('http-body over TLS: the same reused-buffer read path as plain HTTP', () => {
  let dir: string;
  let ca: LocalCa;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ota-https-body-'));
    ca = await ensureLocalCa(join(dir, 'certs'), { hosts: ['127.0.0.1'] });
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('a 3 MiB body with backpressure arrives intact; the extra CA is trusted', async (t) => {
    const body = randomBytes(3 * 1024 * 1024 + 5);
    const srv = await tlsServer(t, ca, (s) => {
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`);
      s.write(body);
    });
    const res = await rawGet(srv.url, { ca: ca.caCertPem, readBufferSize: 16 * 1024 });
    assert.equal(res.status, 200);
    const chunks: Buffer[] = [];
    let calls = 0;
    let maxChunk = 0;
    await res.body.pump((c) => {
      chunks.push(Buffer.from(c));
      maxChunk = Math.max(maxChunk, c.length);
      // Pause every 7th chunk and resume on a later tick: nothing is lost or reordered.
      if (++calls % 7 === 0) {
        setTimeout(() => res.body.resume(), 1);
        return false;
      }
      return true;
    });
    const got = Buffer.concat(chunks);
    assert.equal(got.length, body.length);
    assert.equal(sha(got), sha(body));
    // Delivered as views of the one 16 KiB read buffer (the onread path), not TLS 'data' chunks.
    assert.ok(maxChunk <= 16 * 1024, `chunk of ${maxChunk} bytes`);
  });

  test('chunked framing over TLS, and a connection cut mid-body fails as premature close', async (t) => {
    const part = randomBytes(70_000);
    let n = 0;
    const srv = await tlsServer(t, ca, (s) => {
      n++;
      s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
      s.write(`${part.length.toString(16)}\r\n`);
      s.write(part);
      if (n === 1) s.write('\r\n0\r\n\r\n');
      else s.end(); // cut: no terminating chunk
    });
    const ok = await rawGet(srv.url, { ca: ca.caCertPem });
    const chunks: Buffer[] = [];
    await ok.body.pump((c) => {
      chunks.push(Buffer.from(c));
      return true;
    });
    assert.equal(sha(Buffer.concat(chunks)), sha(part));

    const cut = await rawGet(srv.url, { ca: ca.caCertPem });
    await assert.rejects(
      cut.body.pump(() => true),
      (err: NodeJS.ErrnoException) => ['ERR_STREAM_PREMATURE_CLOSE', 'ECONNRESET'].includes(err.code ?? ''),
    );
  });

  test('the next request to the same host resumes the TLS session', async (t) => {
    const srv = await tlsServer(t, ca, (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
    for (let i = 0; i < 3; i++) {
      const res = await rawGet(srv.url, { ca: ca.caCertPem });
      await res.body.pump(() => true);
      // TLS 1.3 tickets arrive after the handshake; give the 'session' event a tick.
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(srv.resumed[0], false);
    assert.ok(srv.resumed.slice(1).includes(true), `resumed: ${srv.resumed.join(',')}`);
    // A session made while trusting the extra CA is never offered without it: resuming would skip
    // the certificate check.
    await assert.rejects(rawGet(srv.url), (err: NodeJS.ErrnoException) =>
      /CERT|SIGNATURE|ISSUER/.test(err.code ?? ''),
    );
  });
});
