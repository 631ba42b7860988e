import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ExecutionRow } from '../../../src/operator/jobs.ts';
import { mergeProgress } from '../../../src/operator/live-progress.ts';

const row = (over: Partial<ExecutionRow> = {}): ExecutionRow => ({
  thingName: 'cam1',
  status: 'IN_PROGRESS',
  lastUpdatedAt: new Date(10_000),
  statusDetails: { step: 'download', progress: '0/1000', percent: '0.0 %' },
  ...over,
});
const sample = (over = {}) => ({
  jobId: 'j1',
  bytes: 400,
  total: 1000,
  percent: '40.00 %',
  receivedAt: new Date(12_000),
  ...over,
});

test('a newer sample of the same job replaces the statusDetails figure', () => {
  const [r] = mergeProgress([row()], 'j1', new Map([['cam1', sample()]]));
  assert.deepEqual(r?.progress, {
    bytes: 400,
    total: 1000,
    percent: '40.00 %',
    source: 'progress-topic',
    at: new Date(12_000),
  });
  assert.equal(r?.statusDetails?.progress, '0/1000');
});

test('the statusDetails figure stays when the sample is older, of another job, or the run has ended', () => {
  const details = { bytes: 0, total: 1000, percent: '0.0 %', source: 'statusDetails', at: new Date(10_000) };
  for (const [rows, s] of [
    [[row()], sample({ receivedAt: new Date(9_000) })],
    [[row()], sample({ jobId: 'j0' })],
    [[row({ status: 'SUCCEEDED' })], sample()],
  ] as const) {
    const [r] = mergeProgress([...rows], 'j1', new Map([['cam1', s]]));
    assert.deepEqual(r?.progress, details);
  }
  const [none] = mergeProgress([row({ statusDetails: { reason: 'x' } })], 'j1', new Map());
  assert.equal(none?.progress, undefined);
});
