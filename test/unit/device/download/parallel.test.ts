import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ByteRanges } from '../../../../src/device/download/byte-ranges.ts';
import { downloadFirmware, HttpSource } from '../../../../src/device/download/download.ts';
import { TokenBucket } from '../../../../src/device/download/token-bucket.ts';
import { DownloadError } from '../../../../src/device/errors.ts';
import { startLink } from '../../../../src/operator/paced-link.ts';
import { AbortedError } from '../../../../src/shared/errors.ts';
import { type FileServer, servePerTest, startFileServer } from './file-server.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const SIZE = 3 * MiB + 4321;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** `bytes=a-b` / `bytes=a-` of a recorded request → [a, b+1) (b+1 = size for an open range). */
function rangeOf(h: string | undefined, size: number): [number, number] {
  const m = /^bytes=(\d+)-(\d*)$/.exec(h ?? '');
  if (!m) return [0, size];
  return [Number(m[1]), m[2] ? Number(m[2]) + 1 : size];
}

describe('parallel ranged download', () => {
  let content: Buffer;
  let srv: FileServer;
  let dir: string;
  servePerTest(SIZE, 'ota-dlp-', (f) => {
    ({ content, srv, dir } = f);
  });
  const files = () => readdirSync(dir).sort();

  test('--connections 4 on loopback: four bounded ranges, each with If-Range, the file exact', async () => {
    const res = await downloadFirmware({
      source: new HttpSource(new URL(srv.url)),
      dir,
      fileName: 'fw.img',
      expectedSize: SIZE,
      sha256: sha(content),
      connections: 4,
    });
    assert.equal(res.sha256, sha(content));
    assert.equal(sha(readFileSync(join(dir, 'fw.img'))), sha(content));
    assert.equal(res.connections, 4);
    assert.ok(res.requests >= 4);
    assert.equal(srv.requests[0]?.range, undefined, 'the first request asks for the whole object');
    for (const r of srv.requests.slice(1)) {
      assert.match(r.range ?? '', /^bytes=\d+-\d*$/);
      assert.equal(r.ifRange, srv.etag);
    }
    assert.deepEqual(files(), ['fw.img']);
  });

  test('auto on a long capped link adds connections; a cut of all of them resumes exactly', async () => {
    const link = await startLink({
      upstream: srv.url,
      rttMs: 20,
      perConnectionBytesPerSec: 256 * KiB,
      totalBytesPerSec: 2048 * KiB,
    });
    try {
      const url = new URL(srv.url);
      url.port = new URL(link.endpoint).port;
      let cut = false;
      let most = 0;
      const res = await downloadFirmware({
        source: new HttpSource(url),
        dir,
        fileName: 'fw.img',
        expectedSize: SIZE,
        sha256: sha(content),
        baseDelayMs: 10,
        maxDelayMs: 50,
        onConnections: (n) => {
          most = Math.max(most, n);
        },
        onProgress: (done) => {
          if (!cut && done > 2 * MiB && most > 1) {
            cut = true;
            link.cut();
          }
        },
      });
      assert.ok(res.connections !== undefined && res.connections > 1, `connections ${res.connections}`);
      assert.ok(cut, 'the link was cut with several ranges in flight');
      assert.equal(res.restarts, 0);
      assert.equal(sha(readFileSync(join(dir, 'fw.img'))), sha(content));
      assert.ok(link.stats().maxConcurrent > 1);
    } finally {
      await link.close();
    }
  });

  test('auto: a probe connection the server drops before any byte is retired, not retried', async () => {
    // Slow enough per connection that the rest of the download, after the baseline window, pays for a
    // probe even when a loaded machine delays the first byte (connection-count.ts, step()).
    const link = await startLink({
      upstream: srv.url,
      rttMs: 5,
      perConnectionBytesPerSec: 512 * KiB,
      totalBytesPerSec: 8 * 1024 * KiB,
    });
    let refused = 0;
    // A server that takes no second request from this device (a full accept queue, a per-client cap).
    srv.onRequest = (req, res) => {
      if (!/^bytes=[1-9]/.test(req.headers.range ?? '')) return false;
      refused++;
      res.socket?.destroy();
      return true;
    };
    try {
      const url = new URL(srv.url);
      url.port = new URL(link.endpoint).port;
      const res = await downloadFirmware({
        source: new HttpSource(url),
        dir,
        fileName: 'fw.img',
        expectedSize: SIZE,
        sha256: sha(content),
        baseDelayMs: 20,
        maxDelayMs: 20,
      });
      assert.equal(sha(readFileSync(join(dir, 'fw.img'))), sha(content));
      assert.ok(res.connections !== undefined && res.connections > 1, 'it probed');
      assert.equal(refused, 1, 'the refused probe was retired after its first failure, not retried');
    } finally {
      await link.close();
    }
  });

  test('stopped with 4 ranges in flight: the sidecar lists only bytes on disk; the resume asks only for the rest', async () => {
    const link = await startLink({ upstream: srv.url, rttMs: 10, perConnectionBytesPerSec: 256 * KiB });
    try {
      const url = new URL(srv.url);
      url.port = new URL(link.endpoint).port;
      const ac = new AbortController();
      await assert.rejects(
        downloadFirmware({
          source: new HttpSource(url),
          dir,
          fileName: 'fw.img',
          expectedSize: SIZE,
          connections: 4,
          signal: ac.signal,
          persistEveryMs: 50,
          onProgress: (done) => {
            if (done >= 1.2 * MiB) ac.abort();
          },
        }),
        (e: unknown) => e instanceof AbortedError,
      );
      const side = JSON.parse(readFileSync(join(dir, 'fw.img.part.json'), 'utf8')) as {
        done: [number, number][];
      };
      assert.ok(side.done.length > 1, `several ranges: ${JSON.stringify(side.done)}`);
      const part = readFileSync(join(dir, 'fw.img.part'));
      let onDisk = 0;
      for (const [a, b] of side.done) {
        assert.ok(part.subarray(a, b).equals(content.subarray(a, b)), `range ${a}-${b} is what it claims`);
        onDisk += b - a;
      }
      const before = srv.requests.length;
      const res = await downloadFirmware({
        source: new HttpSource(url),
        dir,
        fileName: 'fw.img',
        expectedSize: SIZE,
        sha256: sha(content),
        connections: 4,
      });
      assert.equal(res.resumedFrom, onDisk);
      assert.equal(res.sha256, sha(content));
      const done = ByteRanges.parse(side.done, SIZE) as ByteRanges;
      for (const r of srv.requests.slice(before)) {
        const [a] = rangeOf(r.range, SIZE);
        assert.equal(done.runEnd(a), a, `request ${r.range} starts inside bytes already on disk`);
        assert.equal(r.ifRange, srv.etag);
      }
      assert.deepEqual(files(), ['fw.img']);
    } finally {
      await link.close();
    }
  });
});

describe('parallel download under --max-rate', () => {
  test('--max-rate with a stall timeout shorter than its pauses: no false stalls, exact file', async () => {
    const small = randomBytes(256 * KiB);
    const one = await startFileServer(small);
    const dir = await mkdtemp(join(tmpdir(), 'ota-dlp-'));
    try {
      const res = await downloadFirmware({
        source: new HttpSource(new URL(one.url)),
        dir,
        fileName: 'fw.img',
        expectedSize: small.length,
        sha256: sha(small),
        // 64 KiB reads at 1 MiB/s: pauses of ~60 ms, longer than the 40 ms stall timeout.
        bucket: new TokenBucket(MiB, { burst: 16 * KiB }),
        stallTimeoutMs: 40,
      });
      assert.equal(res.sha256, sha(small));
      assert.equal(one.requests.length, 1, 'never dropped as stalled while paused by the bucket');
    } finally {
      await one.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('parallel ranges against a hostile or broken server', () => {
  let content: Buffer;
  let srv: FileServer;
  let dir: string;
  servePerTest(SIZE, 'ota-dlh-', (f) => {
    ({ content, srv, dir } = f);
  });
  const get = (extra: Partial<Parameters<typeof downloadFirmware>[0]> = {}) =>
    downloadFirmware({
      source: new HttpSource(new URL(srv.url)),
      dir,
      fileName: 'fw.img',
      expectedSize: SIZE,
      sha256: sha(content),
      connections: 4,
      baseDelayMs: 1,
      maxDelayMs: 5,
      ...extra,
    });
  const nothingLeft = () => assert.deepEqual(readdirSync(dir), []);
  /**
   * Answers every ranged GET with a 206 that `shape` bends: the Content-Range it claims (`from`..`to`,
   * exclusive) and the bytes it actually sends (`bodyFrom`..`bodyTo`); requests without Range go on.
   */
  const partial =
    (shape: (a: number, b: number) => { from: number; to: number; bodyFrom?: number; bodyTo?: number }) =>
    (req: IncomingMessage, res: ServerResponse): boolean => {
      if (!req.headers.range) return false;
      const [a, b] = rangeOf(req.headers.range, SIZE);
      const { from, to, bodyFrom = from, bodyTo = to } = shape(a, b);
      res.writeHead(206, {
        etag: srv.etag,
        'content-length': bodyTo - bodyFrom,
        'content-range': `bytes ${from}-${to - 1}/${SIZE}`,
      });
      res.end(content.subarray(bodyFrom, bodyTo));
      return true;
    };

  test('short ranges (100 KiB of whatever was asked): continued by the next requests, exact file', async () => {
    srv.onRequest = partial((a, b) => ({ from: a, to: Math.min(b, a + 100 * KiB) }));
    const res = await get({ maxAttempts: 1000 });
    assert.equal(res.sha256, sha(content));
    assert.ok(res.requests > 10);
  });

  test('a Content-Range that does not start where asked: a clear error, nothing left', async () => {
    // Starts 1000 bytes early: overlaps the range before it.
    srv.onRequest = partial((a, b) => ({ from: Math.max(0, a - 1000), to: b }));
    await assert.rejects(get(), (e: unknown) => {
      assert.ok(e instanceof DownloadError && e.kind === 'http', String(e));
      assert.match(e.message, /asked for bytes from \d+, the server sent Content-Range from \d+/);
      return true;
    });
    nothingLeft();
  });

  test('more body than its Content-Range (data overlapping the next range): refused, nothing left', async () => {
    // The header claims the range; the body runs 5000 bytes into the next one.
    srv.onRequest = partial((a, b) => ({ from: a, to: b, bodyTo: Math.min(SIZE, b + 5000) }));
    await assert.rejects(get(), (e: unknown) => {
      assert.ok(e instanceof DownloadError && e.kind === 'http', String(e));
      assert.match(e.message, /more bytes than its Content-Range/);
      return true;
    });
    nothingLeft();
  });

  test('200 instead of 206 (the server ignores Range, same ETag): one connection, exact file', async () => {
    srv.onRequest = (_req, res) => {
      res.writeHead(200, { etag: srv.etag, 'content-length': SIZE, 'accept-ranges': 'bytes' });
      res.end(content);
      return true;
    };
    const res = await get();
    assert.equal(res.sha256, sha(content));
    // The extra connections step aside; a restart at 0 happens only when the first connection had
    // already stopped at a split point (loopback is fast) and then met the 200 itself.
    assert.ok(res.restarts <= 1, `restarts ${res.restarts}`);
    assert.ok(srv.requests.length <= 6, `${srv.requests.length} requests`);
  });

  test('the object changes mid-way (new ETag): If-Range gets the new object, restart at 0, exact new file', async () => {
    const changed = randomBytes(SIZE);
    srv.onRequest = () => {
      if (srv.requests.length === 2) {
        srv.content = changed;
        srv.etag = '"v2"';
      }
      return false;
    };
    const res = await get({ sha256: undefined });
    assert.ok(res.restarts >= 1);
    assert.equal(res.sha256, sha(changed));
    assert.equal(sha(readFileSync(join(dir, 'fw.img'))), sha(changed));
  });

  test('another size in Content-Range than the document says: size error, nothing left', async () => {
    srv.onRequest = (req, res) => {
      if (!req.headers.range) return false;
      const [a, b] = rangeOf(req.headers.range, SIZE);
      res.writeHead(206, {
        etag: srv.etag,
        'content-length': b - a,
        'content-range': `bytes ${a}-${b - 1}/${SIZE + 1}`,
      });
      res.end(content.subarray(a, b));
      return true;
    };
    await assert.rejects(get(), (e: unknown) => e instanceof DownloadError && e.kind === 'size');
    nothingLeft();
  });
});
