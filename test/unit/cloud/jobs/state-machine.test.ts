import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  assertTransition,
  checkTransition,
  DEVICE_SETTABLE_STATUSES,
  EXECUTION_STATUSES,
  InvalidStateTransition,
  isTerminal,
  SERVICE_STATUSES,
  type TransitionActor,
} from '../../../../src/cloud/jobs/lifecycle/state-machine.ts';
import { type ExecutionStatus, TERMINAL_EXECUTION_STATUSES } from '../../../../src/cloud/jobs/types.ts';

/** The expected table, written out independently of TRANSITIONS (docs/protocol.md, Execution states). */
const DEVICE_ALLOWED = new Set([
  'QUEUED>IN_PROGRESS',
  'QUEUED>SUCCEEDED',
  'QUEUED>FAILED',
  'QUEUED>REJECTED',
  'IN_PROGRESS>IN_PROGRESS',
  'IN_PROGRESS>SUCCEEDED',
  'IN_PROGRESS>FAILED',
  'IN_PROGRESS>REJECTED',
]);
const SERVICE_ALLOWED = new Set([
  'QUEUED>CANCELED',
  'IN_PROGRESS>CANCELED',
  'QUEUED>REMOVED',
  'IN_PROGRESS>REMOVED',
  'IN_PROGRESS>TIMED_OUT',
  // An undeliverable job document (document.ts) fails its execution rather than wedge the queue.
  'QUEUED>FAILED',
  'IN_PROGRESS>FAILED',
]);

describe('execution state machine', () => {
  test('terminal statuses are exactly SUCCEEDED, FAILED, REJECTED, TIMED_OUT, REMOVED and CANCELED', () => {
    const terminal = EXECUTION_STATUSES.filter(isTerminal).sort();
    assert.deepEqual(terminal, [...TERMINAL_EXECUTION_STATUSES].sort());
    assert.deepEqual(terminal, ['CANCELED', 'FAILED', 'REJECTED', 'REMOVED', 'SUCCEEDED', 'TIMED_OUT']);
    assert.equal(isTerminal('QUEUED'), false);
    assert.equal(isTerminal('IN_PROGRESS'), false);
  });

  test('who may set what', () => {
    assert.deepEqual([...DEVICE_SETTABLE_STATUSES].sort(), [
      'FAILED',
      'IN_PROGRESS',
      'REJECTED',
      'SUCCEEDED',
    ]);
    assert.deepEqual([...SERVICE_STATUSES].sort(), ['CANCELED', 'FAILED', 'REMOVED', 'TIMED_OUT']);
  });

  for (const actor of ['device', 'service'] as TransitionActor[]) {
    const allowed = actor === 'device' ? DEVICE_ALLOWED : SERVICE_ALLOWED;
    const settable: readonly ExecutionStatus[] =
      actor === 'device' ? DEVICE_SETTABLE_STATUSES : SERVICE_STATUSES;
    for (const from of EXECUTION_STATUSES) {
      for (const to of EXECUTION_STATUSES) {
        const key = `${from}>${to}`;
        test(`${actor}: ${from} → ${to}`, () => {
          const r = checkTransition(from, to, { actor, force: true });
          if (allowed.has(key)) {
            assert.deepEqual(r, { ok: true });
            assert.doesNotThrow(() => assertTransition(from, to, { actor, force: true }));
            return;
          }
          assert.equal(r.ok, false);
          const expected = !settable.includes(to)
            ? 'not-settable'
            : isTerminal(from)
              ? 'terminal'
              : 'not-allowed';
          assert.deepEqual(r, { ok: false, reason: expected });
          assert.throws(
            () => assertTransition(from, to, { actor, force: true }),
            (err: unknown) =>
              err instanceof InvalidStateTransition &&
              err.code === 'OTA_INVALID_STATE_TRANSITION' &&
              err.from === from &&
              err.to === to &&
              err.reason === expected,
          );
        });
      }
    }
  }

  test('cancelling IN_PROGRESS needs force; QUEUED does not', () => {
    assert.deepEqual(checkTransition('IN_PROGRESS', 'CANCELED', { actor: 'service' }), {
      ok: false,
      reason: 'needs-force',
    });
    assert.deepEqual(checkTransition('IN_PROGRESS', 'CANCELED', { actor: 'service', force: false }), {
      ok: false,
      reason: 'needs-force',
    });
    assert.deepEqual(checkTransition('QUEUED', 'CANCELED', { actor: 'service' }), { ok: true });
    assert.deepEqual(checkTransition('SUCCEEDED', 'CANCELED', { actor: 'service', force: true }), {
      ok: false,
      reason: 'terminal',
    });
    assert.throws(() => assertTransition('IN_PROGRESS', 'CANCELED', { actor: 'service' }), /force=true/);
  });

  test('IN_PROGRESS → REJECTED follows allowRejectFromInProgress (default true)', () => {
    assert.deepEqual(checkTransition('IN_PROGRESS', 'REJECTED', { actor: 'device' }), { ok: true });
    assert.deepEqual(
      checkTransition('IN_PROGRESS', 'REJECTED', { actor: 'device', allowRejectFromInProgress: true }),
      {
        ok: true,
      },
    );
    assert.deepEqual(
      checkTransition('IN_PROGRESS', 'REJECTED', { actor: 'device', allowRejectFromInProgress: false }),
      { ok: false, reason: 'not-allowed' },
    );
    // QUEUED → REJECTED stays valid either way (docs/protocol.md, Transitions).
    assert.deepEqual(
      checkTransition('QUEUED', 'REJECTED', { actor: 'device', allowRejectFromInProgress: false }),
      {
        ok: true,
      },
    );
  });

  test('the device can not set service statuses and vice versa', () => {
    assert.deepEqual(checkTransition('IN_PROGRESS', 'TIMED_OUT', { actor: 'device' }), {
      ok: false,
      reason: 'not-settable',
    });
    assert.deepEqual(checkTransition('IN_PROGRESS', 'SUCCEEDED', { actor: 'service' }), {
      ok: false,
      reason: 'not-settable',
    });
    assert.deepEqual(checkTransition('IN_PROGRESS', 'QUEUED', { actor: 'device' }), {
      ok: false,
      reason: 'not-settable',
    });
  });
});
