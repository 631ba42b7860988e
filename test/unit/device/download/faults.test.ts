import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, symlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { downloadFirmware, HttpSource } from '../../../../src/device/download/download.ts';
import { DownloadError } from '../../../../src/device/errors.ts';
import type { DownloadSource, OpenRequest } from '../../../../src/device/source/sources.ts';
import { ManualClock } from '../../../../src/shared/clock.ts';
import { type FileServer, startFileServer } from './file-server.ts';

const SIZE = 256 * 1024 + 7;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A source that fails `open` with a node-style errno error while `failing()` says so, then delegates. */
function flaky(
  inner: DownloadSource,
  code: string,
  failing: () => boolean,
): DownloadSource & { opens: number } {
  const s = {
    identity: inner.identity,
    presigned: inner.presigned,
    opens: 0,
    open(req: OpenRequest) {
      s.opens++;
      if (failing()) return Promise.reject(Object.assign(new Error(`connect ${code} 127.0.0.1`), { code }));
      return inner.open(req);
    },
  };
  return s;
}

describe('download faults: each ends with a reason and leaves no debris', () => {
  let content: Buffer;
  let srv: FileServer;
  let dir: string;
  before(async () => {
    content = randomBytes(SIZE);
    srv = await startFileServer(content);
  });
  after(async () => {
    await srv.close();
  });
  const fresh = async () => {
    dir = await mkdtemp(join(tmpdir(), 'ota-dlf-'));
    return dir;
  };
  const files = () => (existsSync(dir) ? readdirSync(dir).sort() : []);

  test('ENOTFOUND (no DNS yet, a car in a tunnel) is retried like any network failure', async () => {
    await fresh();
    try {
      let n = 0;
      const src = flaky(new HttpSource(new URL(srv.url)), 'ENOTFOUND', () => n++ < 2);
      const res = await downloadFirmware({
        source: src,
        dir,
        fileName: 'fw.img',
        expectedSize: SIZE,
        sha256: sha(content),
        timers: new ManualClock({ auto: true }),
        // The auto clock jumps whenever the loop waits for I/O: a stall watchdog would see minutes pass.
        stallTimeoutMs: 0,
      });
      assert.equal(res.sha256, sha(content));
      assert.equal(src.opens, 3);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('the retry budget is time: 20 s of refused connections (fake clock) is ridden out', async () => {
    await fresh();
    try {
      const timers = new ManualClock({ auto: true });
      const until = timers.now() + 20_000;
      const src = flaky(new HttpSource(new URL(srv.url)), 'ECONNREFUSED', () => timers.now() < until);
      const res = await downloadFirmware({
        source: src,
        dir,
        fileName: 'fw.img',
        expectedSize: SIZE,
        sha256: sha(content),
        timers,
        stallTimeoutMs: 0,
        random: () => 0.5,
      });
      assert.equal(res.sha256, sha(content));
      // The old budget (5 attempts without progress) gave up after 6 requests, ~9 s in.
      assert.ok(src.opens > 6, `opens ${src.opens}`);
      assert.ok(timers.now() >= until);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('past the window without progress: exhausted, and no .part or sidecar is left behind', async () => {
    await fresh();
    try {
      const timers = new ManualClock({ auto: true });
      const t0 = timers.now();
      srv.cuts = 1;
      srv.cutAfter = 100_000;
      let opened = 0;
      // The first request gets 100 kB then a cut; after that the server is gone.
      const src = flaky(new HttpSource(new URL(srv.url)), 'ECONNREFUSED', () => opened++ > 0);
      await assert.rejects(
        downloadFirmware({
          source: src,
          dir,
          fileName: 'fw.img',
          expectedSize: SIZE,
          timers,
          stallTimeoutMs: 0,
          retryWindowMs: 60_000,
        }),
        (e: unknown) =>
          e instanceof DownloadError &&
          e.kind === 'exhausted' &&
          /s without progress: connect ECONNREFUSED/.test(e.message),
      );
      assert.ok(timers.now() - t0 >= 60_000, `gave up after ${timers.now() - t0} ms`);
      assert.deepEqual(files(), []);
    } finally {
      srv.cuts = 0;
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a response head queued longer than the stall timeout (fake clock): waited for, not re-requested', async () => {
    await fresh();
    const timers = new ManualClock();
    const inner = new HttpSource(new URL(srv.url));
    const aborted: number[] = [];
    let release: (() => void) | undefined;
    // A server whose accept queue holds the request (a fleet downloading at once): no head until released.
    const queued: DownloadSource & { opens: number } = {
      identity: inner.identity,
      presigned: inner.presigned,
      opens: 0,
      open(req: OpenRequest) {
        queued.opens++;
        if (queued.opens > 1) return inner.open(req);
        return new Promise<void>((resolve, reject) => {
          release = resolve;
          req.signal?.addEventListener('abort', () => {
            aborted.push(timers.now());
            reject(Object.assign(new Error('aborted'), { name: 'AbortError' }));
          });
        }).then(() => inner.open(req));
      },
    };
    try {
      const t0 = timers.now();
      const run = downloadFirmware({
        source: queued,
        dir,
        fileName: 'fw.img',
        expectedSize: SIZE,
        sha256: sha(content),
        timers,
        stallTimeoutMs: 60_000,
        retryWindowMs: 300_000,
      });
      while (!release) await new Promise((r) => setImmediate(r));
      await timers.advance(200_000);
      assert.deepEqual(aborted, [], 'not dropped at the 60 s stall timeout');
      release();
      const res = await run;
      assert.equal(res.sha256, sha(content));
      assert.equal(queued.opens, 1);
      assert.equal(res.requests, 1);
      assert.ok(timers.now() - t0 >= 200_000);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('no response head within the retry window (fake clock): dropped then, as "no response"', async () => {
    await fresh();
    const timers = new ManualClock();
    const aborted: number[] = [];
    let opens = 0;
    const silent: DownloadSource = {
      identity: 'silent',
      presigned: false,
      open(req: OpenRequest) {
        opens++;
        return new Promise((_, reject) => {
          req.signal?.addEventListener('abort', () => {
            aborted.push(timers.now());
            reject(Object.assign(new Error('aborted'), { name: 'AbortError' }));
          });
        });
      },
    };
    try {
      const t0 = timers.now();
      const run = downloadFirmware({
        source: silent,
        dir,
        fileName: 'fw.img',
        expectedSize: SIZE,
        timers,
        stallTimeoutMs: 60_000,
        retryWindowMs: 120_000,
        retries: 1,
      });
      const failed = assert.rejects(
        run,
        (e: unknown) => e instanceof DownloadError && /no response for 120 s; reconnecting/.test(e.message),
      );
      while (opens === 0) await new Promise((r) => setImmediate(r));
      await timers.advance(119_000);
      assert.deepEqual(aborted, []);
      await timers.advance(2_000);
      assert.equal(aborted[0], t0 + 120_000);
      await timers.advance(600_000);
      await failed;
      assert.deepEqual(files(), []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('disk full: a "disk" error naming the file and ENOSPC, nothing left behind', async () => {
    await fresh();
    try {
      symlinkSync('/dev/full', join(dir, 'fw.img.part'));
      await assert.rejects(
        downloadFirmware({
          source: new HttpSource(new URL(srv.url)),
          dir,
          fileName: 'fw.img',
          expectedSize: SIZE,
        }),
        (e: unknown) =>
          e instanceof DownloadError &&
          e.kind === 'disk' &&
          e.message ===
            `cannot write ${join(dir, 'fw.img.part')}: disk full, no space left on device (ENOSPC)`,
      );
      assert.deepEqual(files(), []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a download dir under /proc fails at once (Node 20 recursive mkdir would spin forever there)', async () => {
    await assert.rejects(
      downloadFirmware({
        source: new HttpSource(new URL(srv.url)),
        dir: '/proc/x/y',
        fileName: 'fw.img',
        expectedSize: SIZE,
      }),
      (e: unknown) =>
        e instanceof DownloadError &&
        e.kind === 'disk' &&
        /^cannot create directory \/proc\/x: no such file or directory \(ENOENT\)$/.test(e.message),
    );
  });
});
