import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  formatAge,
  formatBytePair,
  formatBytes,
  formatDuration,
  formatPercent,
} from '../../../src/dashboard/format.ts';
import {
  countByStatus,
  type DeviceRow,
  decodeRow,
  displayState,
  encodeRow,
  percentOf,
} from '../../../src/dashboard/model.ts';
import {
  abortState,
  configuredPace,
  observedPerMinute,
  timeToFleet,
} from '../../../src/dashboard/rollout.ts';

const row = (over: Partial<DeviceRow> = {}): DeviceRow => ({
  thing: 'T',
  status: 'QUEUED',
  bytes: 0,
  total: 0,
  rate: 0,
  ...over,
});

test('rows survive the wire form unchanged, optional fields included', () => {
  const full = row({
    status: 'FAILED',
    phase: 'DOWNLOADING',
    bytes: 5,
    total: 10,
    rate: 3,
    eta: 2,
    lastMessageAt: 1,
    startedAt: 2,
    finishedAt: 3,
    reason: 'disk full',
  });
  assert.deepEqual(decodeRow(encodeRow(full)), full);
  assert.deepEqual(decodeRow(encodeRow(row())), row());
});

test('state, percent and counts', () => {
  assert.equal(displayState(row({ status: 'IN_PROGRESS', phase: 'DOWNLOADING' })), 'DOWNLOADING');
  assert.equal(displayState(row({ status: 'SUCCEEDED', phase: 'DOWNLOADING' })), 'SUCCEEDED');
  assert.equal(percentOf(row({ bytes: 5, total: 10 })), 50);
  assert.equal(percentOf(row({ bytes: 50, total: 10 })), 100);
  assert.equal(percentOf(row({ status: 'SUCCEEDED' })), 100);
  const c = countByStatus([row(), row({ status: 'FAILED' }), row({ status: 'bogus' })]);
  assert.equal(c.QUEUED, 1);
  assert.equal(c.FAILED, 1);
  assert.equal(c.SUCCEEDED, 0);
});

test('formats', () => {
  assert.equal(formatBytes(1023), '1023 B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(87_232_512), '83.2 MiB');
  assert.equal(formatBytes(10 * 1024 ** 3), '10.00 GiB');
  assert.equal(formatBytes(-1), '—');
  assert.equal(formatBytePair(1024 * 1024, 3 * 1024 * 1024), '1.0 / 3.0 MiB');
  assert.equal(formatBytePair(512, 3 * 1024 * 1024), '512 B / 3.0 MiB');
  assert.equal(formatDuration(42), '42s');
  assert.equal(formatDuration(185), '3m05s');
  assert.equal(formatDuration(3720), '1h02m');
  assert.equal(formatDuration(3 * 86_400 + 3600), '3d01h');
  assert.equal(formatDuration(undefined), '—');
  assert.equal(formatDuration(Number.POSITIVE_INFINITY), '—');
  assert.equal(formatAge(undefined, 0), '—');
  assert.equal(formatAge(1000, 1500), 'now');
  assert.equal(formatAge(0, 12_000), '12s');
  assert.equal(formatPercent(99.99), '100.0 %');
  assert.equal(formatPercent(100), '100 %');
  assert.equal(formatPercent(0), '0.0 %');
});

test('configured pace follows AWS JobExecutionsRolloutConfig, "—" when absent', () => {
  assert.equal(configuredPace(undefined), '—');
  assert.equal(configuredPace({}), '—');
  assert.equal(configuredPace({ maximumPerMinute: 300 }), '≤ 300/min');
  assert.equal(
    configuredPace({
      exponentialRate: {
        baseRatePerMinute: 10,
        incrementFactor: 1.5,
        rateIncreaseCriteria: { numberOfNotifiedThings: 50 },
      },
    }),
    '10/min ×1.5 per 50 notified',
  );
  const now = 1_000_000;
  assert.equal(
    observedPerMinute([row({ startedAt: now - 1000 }), row({ startedAt: now - 61_000 }), row()], now),
    1,
  );
});

test('abort state: armed, met, aborted, and a plain cancel with its reason', () => {
  const counts = countByStatus([
    ...Array.from({ length: 6 }, () => row({ status: 'SUCCEEDED' })),
    ...Array.from({ length: 4 }, () => row({ status: 'FAILED' })),
    row({ status: 'QUEUED' }),
  ]);
  const criterion = {
    failureType: 'FAILED',
    action: 'CANCEL',
    thresholdPercentage: 30,
    minNumberOfExecutedThings: 10,
  };
  assert.equal(abortState(undefined, counts).state, '—');
  const armed = abortState({ jobId: 'j', status: 'IN_PROGRESS', abort: [criterion] }, counts);
  assert.equal(armed.state, 'armed');
  assert.equal(armed.criteria[0]?.met, true);
  assert.equal(armed.criteria[0]?.percent, 40);
  assert.match(armed.criteria[0]?.text ?? '', /FAILED ≥ 30% after 10 things → CANCEL \(now 40\.0% of 10\)/);
  const notYet = abortState({ jobId: 'j', abort: [{ ...criterion, minNumberOfExecutedThings: 11 }] }, counts);
  assert.equal(notYet.criteria[0]?.met, false);
  const aborted = abortState(
    { jobId: 'j', status: 'CANCELED', reasonCode: 'FAILURE_RATE', abort: [criterion] },
    counts,
  );
  assert.equal(aborted.state, 'aborted');
  assert.equal(aborted.reason, 'FAILURE_RATE');
  const canceled = abortState({ jobId: 'j', status: 'CANCELED', comment: 'bad image' }, counts);
  assert.equal(canceled.state, 'canceled');
  assert.equal(canceled.reason, 'bad image');
  const all = abortState(
    { jobId: 'j', abort: [{ failureType: 'ALL', thresholdPercentage: 50 }] },
    countByStatus([row({ status: 'REJECTED' }), row({ status: 'TIMED_OUT' }), row({ status: 'SUCCEEDED' })]),
  );
  assert.equal(all.criteria[0]?.met, true);
});

test('time to fleet', () => {
  const now = 100_000;
  assert.equal(timeToFleet([], now), undefined);
  assert.equal(timeToFleet([row({ status: 'SUCCEEDED' })], now), 0);
  // Only queued devices and no rollout: nothing to go on.
  assert.equal(timeToFleet([row()], now), undefined);
  // One device downloading: its own ETA.
  assert.equal(timeToFleet([row({ status: 'IN_PROGRESS', eta: 30, startedAt: now - 1000 })], now), 30);
  // Downloaded, still installing: at least a second, never "done".
  assert.equal(timeToFleet([row({ status: 'IN_PROGRESS', eta: 0 })], now), 1);
  // Two of four done in 10 s since the first start: two more take about 10 s.
  const rows = [
    row({ status: 'SUCCEEDED', startedAt: now - 10_000, finishedAt: now - 5000 }),
    row({ status: 'SUCCEEDED', startedAt: now - 8000, finishedAt: now - 2000 }),
    row({ status: 'IN_PROGRESS', startedAt: now - 1000, eta: 4 }),
    row(),
  ];
  assert.equal(timeToFleet(rows, now), 10);
  // A rollout of 6/min with one queued device: 10 s to start it plus a typical duration (6 s).
  assert.equal(timeToFleet(rows, now, { maximumPerMinute: 6 }), 16);
  // More targets than rows (executions not created yet): they count as remaining.
  assert.equal(timeToFleet(rows, now, undefined, 6), 20);
});
