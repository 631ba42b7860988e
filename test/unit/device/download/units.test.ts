import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ByteRanges } from '../../../../src/device/download/byte-ranges.ts';
import { ConnectionController } from '../../../../src/device/download/connection-count.ts';
import { RangeScheduler } from '../../../../src/device/download/range-scheduler.ts';
import { StallWatchdog } from '../../../../src/device/download/stall-watchdog.ts';
import { TokenBucket } from '../../../../src/device/download/token-bucket.ts';
import { ManualClock } from '../../../../src/shared/clock.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

describe('ByteRanges: the done set of a .part', () => {
  test('merges touching and overlapping ranges, keeps a running total', () => {
    const r = new ByteRanges();
    r.add(10, 20);
    r.add(30, 40);
    r.add(20, 30);
    assert.deepEqual(r.toJSON(), [[10, 40]]);
    r.add(0, 5);
    r.add(35, 50);
    r.add(3, 12);
    assert.deepEqual(r.toJSON(), [[0, 50]]);
    assert.equal(r.total, 50);
    r.add(60, 70);
    assert.equal(r.total, 60);
    assert.deepEqual(r.gaps(100), [
      [50, 60],
      [70, 100],
    ]);
    assert.equal(r.runEnd(0), 50);
    assert.equal(r.runEnd(55), 55);
    assert.equal(r.covers(100), false);
    r.add(50, 100);
    assert.equal(r.covers(100), true);
  });

  test('parse trusts only integer pairs inside the object', () => {
    const r = ByteRanges.parse([[0, 10], [5, 'x'], [-5, 3], [90, 1e9], [20, 10], 'junk', [30, 40, 50]], 100);
    assert.deepEqual(r?.toJSON(), [
      [0, 10],
      [90, 100],
    ]);
    assert.equal(ByteRanges.parse({ not: 'a list' }, 100), undefined);
  });
});

describe('RangeScheduler: work stealing over the gaps', () => {
  test('one connection takes the whole rest; a second one steals the back half on a 64 KiB boundary', () => {
    const done = new ByteRanges();
    const s = new RangeScheduler(10 * MiB, done);
    const a = s.take();
    assert.deepEqual(a, { start: 0, cursor: 0, end: 10 * MiB, reach: 10 * MiB });
    a!.cursor = MiB + 5;
    const b = s.take();
    assert.ok(b);
    assert.equal(b.start % (64 * KiB), 0);
    assert.equal(a!.end, b.start);
    assert.equal(b.end, 10 * MiB);
    assert.ok(b.start > a!.cursor);
  });

  test('gaps first, lowest first; nothing to steal below 2 × minSplit', () => {
    const done = new ByteRanges();
    done.add(0, MiB);
    done.add(2 * MiB, 3 * MiB);
    const s = new RangeScheduler(3 * MiB + 100, done, 300 * KiB);
    assert.deepEqual(s.take(), { start: MiB, cursor: MiB, end: 2 * MiB, reach: 2 * MiB });
    assert.deepEqual(s.take(), { start: 3 * MiB, cursor: 3 * MiB, end: 3 * MiB + 100, reach: 3 * MiB + 100 });
    const c = s.take(); // steals half of the 1 MiB span
    assert.equal(c?.start, MiB + 512 * KiB);
    assert.equal(s.take(), undefined, 'two 512 KiB halves are left: too short to split again');
  });

  test('a steal that got nothing goes back to the span it was cut from', () => {
    const done = new ByteRanges();
    const s = new RangeScheduler(8 * MiB, done);
    const a = s.take()!;
    const b = s.take()!;
    assert.equal(a.end, b.start);
    s.release(b); // its request failed before any byte
    assert.equal(a.end, 8 * MiB);
    assert.deepEqual(s.unclaimed(), []);
  });

  test('released work (a retired connection) is taken by the next free one', () => {
    const done = new ByteRanges();
    const s = new RangeScheduler(8 * MiB, done);
    const a = s.take()!;
    const b = s.take()!;
    b.cursor = b.start + MiB;
    done.add(b.start, b.cursor);
    s.release(b);
    assert.equal(a.end, b.start, 'a half-done steal is not merged back');
    assert.deepEqual(s.unclaimed(), [[b.cursor, 8 * MiB]]);
  });
});

describe('TokenBucket (--max-rate) on the fake clock', () => {
  /** n readers, each reading `chunk` and pausing as told, for `ms` of fake time: bytes read. */
  async function simulate(bucket: TokenBucket, timers: ManualClock, n: number, chunk: number, ms: number) {
    let bytes = 0;
    const end = timers.now() + ms;
    const reader = async () => {
      while (timers.now() < end) {
        bytes += chunk;
        const wait = bucket.take(chunk);
        await new Promise<void>((r) => timers.setTimeout(r, Math.max(1, wait)));
      }
    };
    const all = Promise.all(Array.from({ length: n }, reader));
    await timers.advance(ms + 5000);
    await all;
    return bytes;
  }

  test('1, 4 and 8 connections together stay within 5 % of the rate', async () => {
    for (const n of [1, 4, 8]) {
      const timers = new ManualClock();
      const rate = 500_000;
      const bucket = new TokenBucket(rate, { timers });
      const seconds = 60;
      const bytes = await simulate(bucket, timers, n, 16 * KiB, seconds * 1000);
      const got = bytes / seconds;
      assert.ok(Math.abs(got / rate - 1) <= 0.05, `${n} connections: ${Math.round(got)} B/s vs ${rate}`);
    }
  });

  test('a new rate applies from then on, without a burst', async () => {
    const timers = new ManualClock();
    const bucket = new TokenBucket(100_000, { timers });
    const first = await simulate(bucket, timers, 2, 8 * KiB, 20_000);
    bucket.setRate(400_000);
    const second = await simulate(bucket, timers, 2, 8 * KiB, 20_000);
    assert.ok(Math.abs(first / 20 / 100_000 - 1) <= 0.05, `before: ${first / 20}`);
    assert.ok(Math.abs(second / 20 / 400_000 - 1) <= 0.05, `after: ${second / 20}`);
    bucket.setRate(0);
    assert.equal(bucket.take(10 * MiB), 0, 'rate 0 = unlimited');
  });

  test('read size follows the rate (short pauses at low rates)', () => {
    assert.equal(new TokenBucket(0).readSize(), 128 * KiB);
    assert.equal(new TokenBucket(20_000).readSize(), 1024 * 1 * 4);
    assert.ok(new TokenBucket(1_000_000).readSize() <= 64 * KiB);
  });
});

describe('StallWatchdog on the fake clock', () => {
  test('fires after the timeout without bytes; bytes keep it quiet', async () => {
    const timers = new ManualClock();
    let fired = 0;
    const dog = new StallWatchdog(60_000, () => fired++, timers);
    for (let i = 0; i < 10; i++) {
      await timers.advance(30_000);
      dog.kick();
    }
    assert.equal(fired, 0);
    await timers.advance(59_000);
    assert.equal(fired, 0);
    await timers.advance(2000);
    assert.equal(fired, 1);
    await timers.advance(120_000);
    assert.equal(fired, 1, 'once');
  });

  test('time paused on purpose (the rate cap, a busy disk) does not count', async () => {
    const timers = new ManualClock();
    let fired = 0;
    const dog = new StallWatchdog(10_000, () => fired++, timers);
    await timers.advance(5000);
    dog.pause();
    await timers.advance(60_000);
    assert.equal(fired, 0);
    dog.resume();
    await timers.advance(9000);
    assert.equal(fired, 0);
    await timers.advance(2000);
    assert.equal(fired, 1);
    dog.stop();
  });
});

describe('ConnectionController: adds connections while the aggregate grows', () => {
  /**
   * Feeds the controller a model link on a fake clock: aggregate rate = min(n × perConn, total), new
   * connections get their first byte after `ttfbMs`. Returns the connection count over time.
   */
  function run(perConn: number, total: number, size: number, ttfbMs = 200, max = 8) {
    const c = new ConnectionController({ max });
    let now = 0;
    let bytes = 0;
    let n = 1;
    const pending: number[] = [];
    const history: number[] = [];
    c.firstByte(ttfbMs);
    while (bytes < size) {
      now += 50;
      for (let i = pending.length - 1; i >= 0; i--) {
        if ((pending[i] as number) <= now) {
          pending.splice(i, 1);
          c.firstByte(ttfbMs);
          n++;
        }
      }
      bytes += (Math.min(n * perConn, total) * 50) / 1000;
      const d = c.sample(now, bytes, size - bytes);
      if (d && 'add' in d) for (let i = 0; i < d.add; i++) pending.push(now + ttfbMs);
      if (d && 'retire' in d) n -= d.retire;
      history.push(n);
    }
    return { final: n, max: Math.max(...history), seconds: now / 1000, settled: c.settled };
  }

  test('a long capped link: 1 → 2 → 4 → 8 within a few seconds', () => {
    const r = run(256 * KiB, 8 * 256 * KiB, 64 * MiB);
    assert.equal(r.final, 8);
    const ideal = (64 * MiB) / (8 * 256 * KiB);
    assert.ok(r.seconds / ideal < 1.1, `${r.seconds} s vs ideal ${ideal} s`);
  });

  test('loopback (one stream fills it): probes once, goes back to 1', () => {
    const r = run(200 * MiB, 200 * MiB, 2048 * MiB, 1);
    assert.equal(r.final, 1);
    assert.ok(r.max <= 2);
    assert.ok(r.settled);
  });

  test('a short download never probes', () => {
    const r = run(200 * MiB, 200 * MiB, 83 * MiB, 1);
    assert.equal(r.max, 1);
  });

  test('a link that saturates at 5 connections keeps about 5', () => {
    const r = run(256 * KiB, 5 * 256 * KiB, 128 * MiB);
    assert.ok(r.final >= 4 && r.final <= 6, `${r.final}`);
  });

  test('a probe whose connection fails before its first byte: retired at once, probing over', () => {
    const c = new ConnectionController({ max: 8 });
    c.firstByte(10);
    assert.equal(c.sample(0, 0, 64 * MiB), undefined);
    assert.deepEqual(c.sample(600, 600 * KiB, 64 * MiB), { add: 1 });
    assert.equal(c.target, 2);
    // The new connection's request waited in the server's queue until the stall watchdog dropped it.
    assert.deepEqual(c.lostProbe(), { retire: 1 });
    assert.equal(c.target, 1);
    assert.ok(c.settled);
    assert.equal(c.sample(5000, 64 * MiB, 32 * MiB), undefined, 'never probes again');
  });

  test('a lost connection outside a probe (the first one) changes nothing', () => {
    const c = new ConnectionController({ max: 8 });
    assert.equal(c.lostProbe(), undefined);
    c.firstByte(10);
    assert.equal(c.sample(0, 0, 64 * MiB), undefined);
    assert.deepEqual(c.sample(600, 600 * KiB, 64 * MiB), { add: 1 });
  });

  test('--connections 1 (max 1) never adds', () => {
    const r = run(256 * KiB, 8 * 256 * KiB, 16 * MiB, 200, 1);
    assert.equal(r.max, 1);
  });
});
