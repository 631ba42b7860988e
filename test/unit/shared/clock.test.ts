import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ManualClock, sleep, systemClock, unrefTimer } from '../../../src/shared/clock.ts';
import { AbortedError } from '../../../src/shared/errors.ts';

describe('ManualClock', () => {
  test('advance fires due timers in due order, ties in the order they were set, each at its own time', async () => {
    const clock = new ManualClock({ start: 1000 });
    const fired: [string, number][] = [];
    clock.setTimeout(() => fired.push(['b', clock.now()]), 20);
    clock.setTimeout(() => fired.push(['a', clock.now()]), 10);
    clock.setTimeout(() => fired.push(['c', clock.now()]), 20);
    clock.setTimeout(() => fired.push(['late', clock.now()]), 31);
    await clock.advance(30);
    assert.deepEqual(fired, [
      ['a', 1010],
      ['b', 1020],
      ['c', 1020],
    ]);
    assert.equal(clock.now(), 1030);
    assert.equal(clock.pending, 1);
  });

  test('an interval is re-armed each time it fires, and may clear itself', async () => {
    const clock = new ManualClock({ start: 0 });
    const at: number[] = [];
    const h = clock.setInterval(() => {
      at.push(clock.now());
      if (at.length === 3) clock.clear(h);
    }, 100);
    await clock.advance(1000);
    assert.deepEqual(at, [100, 200, 300]);
    assert.equal(clock.pending, 0);
  });

  test('a timer set by a timer within the span fires in the same advance; promise chains run between', async () => {
    const clock = new ManualClock({ start: 0 });
    const at: number[] = [];
    const loop = async () => {
      for (let i = 0; i < 3; i++) {
        await sleep(50, { clock });
        at.push(clock.now());
      }
    };
    const done = loop();
    await clock.advance(150);
    await done;
    assert.deepEqual(at, [50, 100, 150]);
  });

  test('advanceSync fires synchronously; clear of a fired, unknown or undefined handle is a no-op', () => {
    const clock = new ManualClock({ start: 0 });
    let n = 0;
    const h = clock.setTimeout(() => n++, 5);
    const gone = clock.setTimeout(() => (n += 100), 5);
    clock.clear(gone);
    clock.advanceSync(5);
    assert.equal(n, 1);
    clock.clear(h);
    clock.clear(undefined);
    assert.equal(clock.now(), 5);
  });

  test('auto: timers fire once the event loop is idle, the clock jumping to their time', async () => {
    const clock = new ManualClock({ start: 0, auto: true });
    await sleep(60_000, { clock });
    assert.equal(clock.now(), 60_000);
  });
});

describe('systemClock and sleep', () => {
  test('timeouts and intervals run on Node timers; clear stops an interval', async () => {
    let ticks = 0;
    const h = unrefTimer(systemClock.setInterval(() => ticks++, 1));
    await new Promise((r) => setTimeout(r, 20));
    systemClock.clear(h);
    const after = ticks;
    await new Promise((r) => setTimeout(r, 10));
    assert.ok(after > 0);
    assert.equal(ticks, after);
  });

  test('an abort ends a sleep: rejects by default, resolves with onAbort resolve', async () => {
    const clock = new ManualClock();
    const ac = new AbortController();
    const rejected = sleep(1000, { clock, signal: ac.signal });
    const resolved = sleep(1000, { clock, signal: ac.signal, onAbort: 'resolve' });
    ac.abort();
    await assert.rejects(rejected, AbortedError);
    await resolved;
    assert.equal(clock.pending, 0);
  });
});
