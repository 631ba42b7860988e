import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkFaultRates, countRoles, planRoles, seededRandom } from '../../../src/sim/faults.ts';
import { isExpected, latestByThing } from '../../../src/sim/outcomes.ts';
import { isSettled } from '../../../src/sim/watch.ts';

describe('sim faults', () => {
  test('exact counts, reproducible per seed, different across seeds', () => {
    const rates = { fail: 0.3, reject: 0.05, timeout: 0.1, offline: 0.02 };
    const a = planRoles(500, rates, 42);
    assert.deepEqual(countRoles(a), { ok: 265, fail: 150, reject: 25, timeout: 50, offline: 10 });
    assert.deepEqual(planRoles(500, rates, 42), a, 'same seed, same devices');
    assert.notDeepEqual(planRoles(500, rates, 43), a, 'another seed, other devices');
    assert.deepEqual(countRoles(planRoles(7, {}, 1)), { ok: 7, fail: 0, reject: 0, timeout: 0, offline: 0 });
    // All of the fleet: rounding never makes more faults than devices.
    assert.equal(countRoles(planRoles(3, { fail: 0.5, offline: 0.5 }, 1)).ok, 0);
  });

  test('bad rates name the flag', () => {
    assert.throws(() => checkFaultRates({ reject: -0.1 }), /reject-rate: must be a fraction from 0 to 1/);
    assert.throws(() => checkFaultRates({ timeout: Number.NaN }), /timeout-rate/);
    assert.throws(() => checkFaultRates({ fail: 0.7, reject: 0.4 }), /add up to 1\.100, more than 1/);
    checkFaultRates({ fail: 0.5, reject: 0.5 });
  });

  test('the PRNG is deterministic and in [0, 1)', () => {
    const r = seededRandom(9);
    const xs = Array.from({ length: 1000 }, r);
    assert.deepEqual(Array.from({ length: 1000 }, seededRandom(9)), xs);
    assert.ok(xs.every((x) => x >= 0 && x < 1));
    assert.ok(Math.abs(xs.reduce((a, b) => a + b, 0) / xs.length - 0.5) < 0.05);
  });

  test('when a run is over, and which ends were expected', () => {
    const t = (x: Partial<Parameters<typeof isSettled>[1]>) => ({
      total: 10,
      notified: 10,
      queued: 0,
      inProgress: 0,
      succeeded: 10,
      failed: 0,
      rejected: 0,
      timedOut: 0,
      canceled: 0,
      ...x,
    });
    assert.equal(isSettled('COMPLETED', t({}), 0), true);
    assert.equal(isSettled('IN_PROGRESS', t({ notified: 8, succeeded: 8 }), 0), false, 'rollout not done');
    assert.equal(isSettled('IN_PROGRESS', t({ queued: 2, succeeded: 8 }), 2), true, '2 offline');
    assert.equal(isSettled('IN_PROGRESS', t({ queued: 3, succeeded: 7 }), 2), false, 'a retry is queued');
    assert.equal(isSettled('CANCELED', t({ inProgress: 1 }), 0), false, 'in-progress runs on');
    assert.equal(isSettled('CANCELED', t({ notified: 3, succeeded: 3 }), 0), true);
    assert.equal(isExpected('ok', 'SUCCEEDED', false), true);
    assert.equal(isExpected('ok', 'CANCELED', false), false);
    assert.equal(isExpected('ok', 'NEVER_NOTIFIED', true), true, 'spared by the abort');
    assert.equal(isExpected('reject', 'FAILED', false), true, 'AWS may refuse IN_PROGRESS → REJECTED');
    assert.equal(isExpected('timeout', 'SUCCEEDED', false), false);
    assert.deepEqual(
      latestByThing([
        { thingName: 'a', status: 'TIMED_OUT', executionNumber: 1 },
        { thingName: 'a', status: 'SUCCEEDED', executionNumber: 2 },
        { thingName: 'b', status: 'QUEUED', executionNumber: 1 },
      ]),
      new Map([
        ['a', 'SUCCEEDED'],
        ['b', 'QUEUED'],
      ]),
    );
  });
});
