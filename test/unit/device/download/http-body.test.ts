import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { downloadFirmware, HttpSource } from '../../../../src/device/download/download.ts';
import { rawGet } from '../../../../src/device/download/http-body.ts';
import { rawHeadServer } from './raw-server.ts';

/** A raw TCP server that answers every request with `respond(socket, requestHead)`, until `t` ends. */
async function rawServer(t: TestContext, respond: (s: Socket, head: string) => void): Promise<{ url: URL }> {
  const { port } = await rawHeadServer<Socket>(t, (onSocket) => createServer(onSocket), respond);
  return { url: new URL(`http://127.0.0.1:${port}/bucket/fw.img?X-Amz-Signature=abc`) };
}

/** Writes `parts` one by one with a pause between them, so they arrive as separate reads. */
async function trickle(s: Socket, parts: (string | Buffer)[], end = false): Promise<void> {
  for (const p of parts) {
    s.write(p);
    await new Promise((r) => setTimeout(r, 5));
  }
  if (end) s.end();
}

async function collect(url: URL, opts: Parameters<typeof rawGet>[1] = {}) {
  const res = await rawGet(url, opts);
  const chunks: Buffer[] = [];
  await res.body.pump((c) => {
    chunks.push(Buffer.from(c));
    return true;
  });
  return { res, body: Buffer.concat(chunks) };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('http-body: the download transport', () => {
  test('Content-Length body split across reads, head split mid-line; request carries the headers', async (t) => {
    const body = randomBytes(300_000);
    let seen = '';
    const srv = await rawServer(t, (s, head) => {
      seen = head;
      void trickle(s, [
        'HTTP/1.1 200 OK\r\nEtag: "e1"\r\nContent-Le',
        `ngth: ${body.length}\r\n\r\n`,
        body.subarray(0, 1000),
        body.subarray(1000),
      ]);
    });
    const { res, body: got } = await collect(srv.url, { headers: { range: 'bytes=0-' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('etag'), '"e1"');
    assert.equal(sha(got), sha(body));
    assert.match(seen, /^GET \/bucket\/fw\.img\?X-Amz-Signature=abc HTTP\/1\.1\r\n/);
    assert.match(seen, /\r\nrange: bytes=0-/);
    assert.match(seen, new RegExp(`\\r\\nhost: ${srv.url.host}`));
  });

  test('chunked body with extensions and trailers, split at awkward places; 1xx responses skipped', async (t) => {
    const a = randomBytes(70_000);
    const b = randomBytes(5);
    const srv = await rawServer(t, (s) => {
      void trickle(s, [
        'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n',
        'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n',
        `${a.length.toString(16)};name=val\r`,
        '\n',
        a.subarray(0, 10),
        a.subarray(10),
        `\r\n${b.length.toString(16)}\r\n`,
        b,
        '\r',
        '\n0\r\nX-Trailer: 1\r\n',
        '\r\n',
      ]);
    });
    const { res, body } = await collect(srv.url);
    assert.equal(res.status, 200);
    assert.equal(sha(body), sha(Buffer.concat([a, b])));
  });

  test('body delimited by the connection close', async (t) => {
    const body = randomBytes(200_000);
    const srv = await rawServer(t, (s) => {
      void trickle(s, ['HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n', body], true);
    });
    const { body: got } = await collect(srv.url);
    assert.equal(sha(got), sha(body));
  });

  test('connection cut before Content-Length bytes: pump rejects with a network code', async (t) => {
    const srv = await rawServer(t, (s) => {
      void trickle(s, ['HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n', randomBytes(5000)]).then(() =>
        s.destroy(),
      );
    });
    const res = await rawGet(srv.url);
    await assert.rejects(
      res.body.pump(() => true),
      (e: NodeJS.ErrnoException) => e.code === 'ECONNRESET' || e.code === 'ERR_STREAM_PREMATURE_CLOSE',
    );
  });

  test('a paused consumer gets nothing until resume(), then every byte in order', async (t) => {
    const body = randomBytes(1_000_000);
    const srv = await rawServer(t, (s) => {
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`);
      s.write(body);
    });
    const res = await rawGet(srv.url, { readBufferSize: 16 * 1024 });
    const chunks: Buffer[] = [];
    let pausedAt = -1;
    let deliveredWhilePaused = 0;
    const done = res.body.pump((c) => {
      if (pausedAt >= 0) deliveredWhilePaused += c.length;
      chunks.push(Buffer.from(c));
      if (chunks.length === 3) {
        pausedAt = chunks.length;
        setTimeout(() => {
          pausedAt = -1;
          res.body.resume();
        }, 50);
        return false;
      }
      return true;
    });
    await done;
    assert.equal(deliveredWhilePaused, 0);
    assert.equal(sha(Buffer.concat(chunks)), sha(body));
  });

  test('abort while the server stalls: AbortError', async (t) => {
    const srv = await rawServer(t, (s) => {
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nabc');
    });
    const ac = new AbortController();
    const res = await rawGet(srv.url, { signal: ac.signal });
    setTimeout(() => ac.abort(), 20);
    await assert.rejects(
      res.body.pump(() => true),
      (e: Error) => e.name === 'AbortError',
    );
  });

  test('stalled socket: idle timeout fails with ETIMEDOUT (retryable)', async (t) => {
    const srv = await rawServer(t, (s) => {
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nabc');
    });
    const res = await rawGet(srv.url, { idleTimeoutMs: 50 });
    await assert.rejects(
      res.body.pump(() => true),
      (e: NodeJS.ErrnoException) => e.code === 'ETIMEDOUT',
    );
  });

  test('garbage instead of a status line is rejected', async (t) => {
    const srv = await rawServer(t, (s) => {
      s.write('SSH-2.0-OpenSSH\r\n\r\n');
    });
    await assert.rejects(rawGet(srv.url), /bad status line/);
  });

  test('downloadFirmware over chunked framing with tiny staging buffers: many positional writes, right sha256', async (t) => {
    const content = randomBytes(2 * 1024 * 1024 + 7);
    const srv = await rawServer(t, (s) => {
      const parts: (string | Buffer)[] = ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'];
      for (let i = 0; i < content.length; i += 100_003) {
        const c = content.subarray(i, i + 100_003);
        parts.push(`${c.length.toString(16)}\r\n`, c, '\r\n');
      }
      parts.push('0\r\n\r\n');
      for (const p of parts) s.write(p);
    });
    const dir = await mkdtemp(join(tmpdir(), 'ota-dl-raw-'));
    try {
      let progressCalls = 0;
      const res = await downloadFirmware({
        source: new HttpSource(srv.url),
        dir,
        fileName: 'fw.img',
        expectedSize: content.length,
        sha256: sha(content),
        highWaterMark: 4096,
        onProgress: () => {
          progressCalls++;
        },
      });
      assert.equal(res.sha256, sha(content));
      assert.equal(sha(readFileSync(join(dir, 'fw.img'))), sha(content));
      assert.ok(progressCalls > 10, `${progressCalls} progress calls`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a source returning only a Readable (no raw body) still downloads', async (t) => {
    const content = randomBytes(1_500_000);
    const srv = await rawServer(t, (s) => {
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${content.length}\r\n\r\n`);
      s.write(content);
    });
    const dir = await mkdtemp(join(tmpdir(), 'ota-dl-raw-'));
    try {
      const inner = new HttpSource(srv.url);
      const res = await downloadFirmware({
        source: {
          identity: inner.identity,
          presigned: false,
          // Strip `raw` so downloadFirmware takes the Readable path (the public OpenedBody contract).
          open: async (req) => {
            const o = await inner.open(req);
            return { status: o.status, body: o.body, start: o.start, ...(o.total ? { total: o.total } : {}) };
          },
        },
        dir,
        fileName: 'fw.img',
        expectedSize: content.length,
        sha256: sha(content),
      });
      assert.equal(res.sha256, sha(content));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
