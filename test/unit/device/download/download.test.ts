import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { downloadFirmware, HttpSource } from '../../../../src/device/download/download.ts';
import type { DownloadOptions } from '../../../../src/device/download/options.ts';
import { DownloadError } from '../../../../src/device/errors.ts';
import { AbortedError } from '../../../../src/shared/errors.ts';
import { type FileServer, servePerTest } from './file-server.ts';

const SIZE = 3 * 1024 * 1024 + 123;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('downloadFirmware over HTTP', () => {
  let content: Buffer;
  let srv: FileServer;
  let dir: string;
  servePerTest(SIZE, 'ota-dl-', (f) => {
    ({ content, srv, dir } = f);
  });

  /** downloadFirmware of the served object into `dir` as fw.img, with its size and sha256; `extra` over them. */
  const download = (extra: Partial<DownloadOptions> = {}) =>
    downloadFirmware({
      source: new HttpSource(new URL(srv.url)),
      dir,
      fileName: 'fw.img',
      expectedSize: SIZE,
      sha256: sha(content),
      ...extra,
    });

  test('happy path: file, sha256, progress per chunk, no leftovers', async () => {
    let calls = 0;
    let last = 0;
    let monotonic = true;
    const res = await download({
      onProgress: (done, total) => {
        calls++;
        if (done < last) monotonic = false;
        last = done;
        assert.equal(total, SIZE);
      },
    });
    assert.equal(res.bytes, SIZE);
    assert.equal(res.sha256, sha(content));
    assert.equal(sha(readFileSync(join(dir, 'fw.img'))), sha(content));
    assert.ok(calls > 1);
    assert.ok(monotonic);
    assert.equal(last, SIZE);
    assert.equal(existsSync(join(dir, 'fw.img.part')), false);
    assert.equal(existsSync(join(dir, 'fw.img.part.json')), false);
    assert.ok(res.renamedAt >= res.startedAt);
  });

  test('resume after cuts: Range from bytes on disk, re-downloaded bytes bounded', async () => {
    srv.cuts = 3;
    srv.cutAfter = 700_000;
    const res = await download({
      baseDelayMs: 1,
      maxDelayMs: 5,
    });
    assert.equal(sha(readFileSync(join(dir, 'fw.img'))), sha(content));
    assert.equal(srv.requests.length, 4);
    assert.equal(srv.requests[0]?.range, undefined);
    for (const r of srv.requests.slice(1)) {
      assert.match(r.range ?? '', /^bytes=\d+-$/);
      assert.equal(r.ifRange, srv.etag);
    }
    const totalSent = srv.requests.reduce((a, r) => a + r.sent, 0);
    // every byte the server sent before a cut reached the disk except at most one chunk per cut
    assert.ok(totalSent - SIZE <= 3 * 64 * 1024, `re-sent ${totalSent - SIZE} bytes`);
    assert.equal(res.requests, 4);
  });

  test('hard cuts while a disk write is in flight: resume offset and sha256 stay right', async () => {
    srv.cuts = 8;
    srv.cutAfter = 333_333;
    srv.cutHard = true;
    const res = await download({
      baseDelayMs: 1,
      maxDelayMs: 2,
      highWaterMark: 16 * 1024,
    });
    assert.equal(res.sha256, sha(content));
    assert.equal(sha(readFileSync(join(dir, 'fw.img'))), sha(content));
    assert.ok(res.requests >= 2);
  });

  test('resume from an existing .part left by an earlier run (sidecar validator)', async () => {
    // An earlier run stopped (aborted) after ~1 MB: the .part and its sidecar stay for a resume.
    const ac = new AbortController();
    await assert.rejects(
      downloadFirmware({
        source: new HttpSource(new URL(srv.url)),
        dir,
        fileName: 'fw.img',
        expectedSize: SIZE,
        signal: ac.signal,
        highWaterMark: 64 * 1024,
        onProgress: (done) => {
          if (done >= 1_000_000) ac.abort();
        },
      }),
      (e: unknown) => e instanceof AbortedError,
    );
    assert.equal(existsSync(join(dir, 'fw.img')), false);
    const partSize = statSync(join(dir, 'fw.img.part')).size;
    assert.ok(partSize >= 1_000_000 && partSize < SIZE, `part ${partSize}`);
    const res = await download();
    assert.equal(res.resumedFrom, partSize);
    assert.equal(srv.requests.at(-1)?.range, `bytes=${partSize}-`);
    assert.equal(sha(readFileSync(join(dir, 'fw.img'))), sha(content));
  });

  test('object changed between attempts: If-Range gets a 200 and the download restarts at 0', async () => {
    srv.cuts = 1;
    srv.cutAfter = 500_000;
    const changed = randomBytes(SIZE);
    let first = true;
    srv.onRequest = () => {
      if (!first) {
        srv.content = changed;
        srv.etag = '"v2"';
      }
      first = false;
      return false;
    };
    const res = await downloadFirmware({
      source: new HttpSource(new URL(srv.url)),
      dir,
      fileName: 'fw.img',
      expectedSize: SIZE,
      baseDelayMs: 1,
    });
    assert.equal(res.restarts, 1);
    assert.equal(sha(readFileSync(join(dir, 'fw.img'))), sha(changed));
  });

  test('size mismatch with the document: error, no file, no .part', async () => {
    await assert.rejects(
      downloadFirmware({
        source: new HttpSource(new URL(srv.url)),
        dir,
        fileName: 'fw.img',
        expectedSize: SIZE - 1,
      }),
      (e: unknown) => e instanceof DownloadError && e.kind === 'size' && /firmware.size/.test(e.message),
    );
    assert.equal(existsSync(join(dir, 'fw.img')), false);
    assert.equal(existsSync(join(dir, 'fw.img.part')), false);
  });

  test('more bytes than announced (no Content-Length): size error, nothing left', async () => {
    srv.onRequest = (_req, res) => {
      res.writeHead(200, { 'transfer-encoding': 'chunked' });
      res.end(content);
      return true;
    };
    await assert.rejects(
      downloadFirmware({
        source: new HttpSource(new URL(srv.url)),
        dir,
        fileName: 'fw.img',
        expectedSize: 1000,
      }),
      (e: unknown) => e instanceof DownloadError && e.kind === 'size',
    );
    assert.equal(existsSync(join(dir, 'fw.img')), false);
    assert.equal(existsSync(join(dir, 'fw.img.part')), false);
  });

  test('sha256 mismatch: error, no file, .part deleted, stale file untouched rule', async () => {
    await assert.rejects(
      downloadFirmware({
        source: new HttpSource(new URL(srv.url)),
        dir,
        fileName: 'fw.img',
        expectedSize: SIZE,
        sha256: 'a'.repeat(64),
      }),
      (e: unknown) => e instanceof DownloadError && e.kind === 'checksum',
    );
    assert.equal(existsSync(join(dir, 'fw.img')), false);
    assert.equal(existsSync(join(dir, 'fw.img.part')), false);
  });

  test('404 is fatal, not retried', async () => {
    srv.onRequest = (_req, res) => {
      res.writeHead(404);
      res.end();
      return true;
    };
    await assert.rejects(
      downloadFirmware({
        source: new HttpSource(new URL(srv.url)),
        dir,
        fileName: 'fw.img',
        expectedSize: SIZE,
      }),
      (e: unknown) => e instanceof DownloadError && e.kind === 'http' && e.status === 404,
    );
    assert.equal(srv.requests.length, 1);
    assert.equal(existsSync(join(dir, 'fw.img')), false);
  });

  test('403 on a presigned URL: refreshSource is called and the download resumes', async () => {
    let n = 0;
    srv.onRequest = (req, res) => {
      n++;
      if (!req.url?.includes('fresh=1')) {
        res.writeHead(403);
        res.end();
        return true;
      }
      return false;
    };
    let refreshed = 0;
    const res = await downloadFirmware({
      source: new HttpSource(new URL(`${srv.url}?X-Amz-Signature=old`)),
      dir,
      fileName: 'fw.img',
      expectedSize: SIZE,
      sha256: sha(content),
      refreshSource: async () => {
        refreshed++;
        return new HttpSource(new URL(`${srv.url}?X-Amz-Signature=new&fresh=1`));
      },
    });
    assert.equal(refreshed, 1);
    assert.equal(n, 2);
    assert.equal(res.refreshes, 1);
  });

  test('abort signal mid-download: AbortedError, no final file, .part kept for resume', async () => {
    const ac = new AbortController();
    srv.onRequest = (_req, res) => {
      res.writeHead(200, { 'content-length': SIZE, etag: srv.etag });
      res.write(content.subarray(0, 100_000));
      return true; // never finishes
    };
    await assert.rejects(
      downloadFirmware({
        source: new HttpSource(new URL(srv.url)),
        dir,
        fileName: 'fw.img',
        expectedSize: SIZE,
        signal: ac.signal,
        onProgress: (done) => {
          if (done >= 50_000) ac.abort();
        },
      }),
      (e: unknown) => e instanceof AbortedError,
    );
    assert.equal(existsSync(join(dir, 'fw.img')), false);
    assert.equal(existsSync(join(dir, 'fw.img.part')), true);
  });

  test('a .part of a different object is not resumed', async () => {
    writeFileSync(join(dir, 'fw.img.part'), Buffer.alloc(1000, 7));
    writeFileSync(join(dir, 'fw.img.part.json'), JSON.stringify({ identity: 'http://other/x', size: SIZE }));
    const res = await download();
    assert.equal(res.resumedFrom, 0);
    assert.equal(srv.requests[0]?.range, undefined);
  });
});
