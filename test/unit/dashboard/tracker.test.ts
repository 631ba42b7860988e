import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeRow } from '../../../src/dashboard/model.ts';
import { JobTracker, NotifySchema, progressFacts } from '../../../src/dashboard/tracker.ts';

function clock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

const notify = (v: unknown) => NotifySchema.parse(v);

test('progress messages in the agent format fill bytes, rate, ETA and phase', () => {
  const c = clock();
  const t = new JobTracker('job-1', c.now);
  t.loadSnapshot([{ thing: 'A', status: 'QUEUED' }], c.now());
  t.takeDirty();
  const facts = progressFacts(
    JSON.parse(
      '{"camera_id": "A", "Progress": "25.0 %", "Total size": 400, "Downloading": 100, "jobId": "job-1", "state": "DOWNLOADING", "bytesPerSecond": 50, "etaSeconds": 6}',
    ),
  );
  assert.ok(facts);
  assert.equal(t.applyProgress('A', facts), true);
  const row = t.rows.get('A');
  assert.equal(row?.status, 'IN_PROGRESS');
  assert.equal(row?.startedAt, c.now());
  assert.deepEqual(
    [row?.bytes, row?.total, row?.rate, row?.eta, row?.phase],
    [100, 400, 50, 6, 'DOWNLOADING'],
  );
  assert.deepEqual(
    t.takeDirty().map((w) => decodeRow(w).thing),
    ['A'],
  );
  assert.deepEqual(t.takeDirty(), []);
});

test('without bytesPerSecond the rate comes from the last two messages (the original format)', () => {
  const c = clock();
  const t = new JobTracker('job-1', c.now);
  t.loadSnapshot([{ thing: 'A', status: 'IN_PROGRESS' }], c.now());
  t.applyProgress('A', { bytes: 0, total: 1000 });
  c.advance(2000);
  t.applyProgress('A', { bytes: 400, total: 1000 });
  assert.equal(t.rows.get('A')?.rate, 200);
  assert.equal(t.rows.get('A')?.eta, 3);
});

test('progress for another job is ignored; a device new to this job is added only when the jobId says so', () => {
  const c = clock();
  const t = new JobTracker('job-1', c.now);
  assert.equal(t.applyProgress('X', { jobId: 'job-2', bytes: 1 }), false);
  assert.equal(t.applyProgress('X', { bytes: 1 }), false);
  assert.equal(t.rows.size, 0);
  assert.equal(t.applyProgress('X', { jobId: 'job-1', bytes: 1, total: 2 }), true);
  assert.equal(t.rows.get('X')?.status, 'IN_PROGRESS');
});

test('hostile progress payloads cannot corrupt a row', () => {
  const c = clock();
  const t = new JobTracker('job-1', c.now);
  t.loadSnapshot([{ thing: 'A', status: 'IN_PROGRESS' }], c.now());
  for (const p of [
    null,
    42,
    'x',
    [],
    { Downloading: '9e99' },
    { Downloading: -5, 'Total size': Number.NaN },
  ]) {
    const f = progressFacts(p);
    if (f) t.applyProgress('A', f);
  }
  const f = progressFacts({
    Downloading: 1e12,
    'Total size': 10,
    state: 'S'.repeat(10_000),
    jobId: 'j'.repeat(500),
  });
  assert.ok(f);
  assert.equal(f.state?.length, 32);
  assert.equal(f.jobId?.length, 64);
  t.applyProgress('A', { ...f, jobId: undefined });
  const row = t.rows.get('A');
  assert.equal(row?.bytes, 10, 'bytes never exceed the total');
  assert.ok(Number.isFinite(row?.rate));
});

test('notify: listed sets the status, gone asks for a describe, the describe sets the final status and reason', () => {
  const c = clock();
  const t = new JobTracker('job-1', c.now);
  assert.equal(t.applyNotify('A', notify({ jobs: { QUEUED: [{ jobId: 'job-1' }] } })), 'changed');
  assert.equal(t.rows.get('A')?.status, 'QUEUED');
  assert.equal(t.applyNotify('A', notify({ jobs: { QUEUED: [{ jobId: 'job-1' }] } })), 'none');
  assert.equal(
    t.applyNotify('A', notify({ jobs: { IN_PROGRESS: [{ jobId: 'job-1', startedAt: 1234 }] } })),
    'changed',
  );
  assert.equal(t.rows.get('A')?.startedAt, 1_234_000, 'summary times are epoch seconds');
  // Another job's notify for a thing not in this job: nothing.
  assert.equal(t.applyNotify('B', notify({ jobs: { QUEUED: [{ jobId: 'job-9' }] } })), 'none');
  assert.equal(t.rows.has('B'), false);
  // The job left the thing's pending list.
  assert.equal(t.applyNotify('A', notify({ jobs: {} })), 'describe');
  c.advance(10);
  t.applyExecution('A', { status: 'FAILED', lastUpdatedAt: c.now(), reason: 'checksum mismatch' });
  const row = t.rows.get('A');
  assert.deepEqual([row?.status, row?.reason, row?.finishedAt], ['FAILED', 'checksum mismatch', c.now()]);
  // Terminal rows do not ask again.
  assert.equal(t.applyNotify('A', notify({ jobs: {} })), 'none');
});

test('a snapshot older than a live event does not overwrite it', () => {
  const c = clock();
  const t = new JobTracker('job-1', c.now);
  const requestedAt = c.now();
  c.advance(5);
  t.applyExecution('A', { status: 'SUCCEEDED' });
  t.loadSnapshot(
    [
      { thing: 'A', status: 'IN_PROGRESS' },
      { thing: 'B', status: 'QUEUED' },
    ],
    requestedAt,
  );
  assert.equal(t.rows.get('A')?.status, 'SUCCEEDED');
  assert.equal(t.rows.get('B')?.status, 'QUEUED');
});

test('notify payloads that are not AWS-shaped are refused by the schema', () => {
  assert.equal(NotifySchema.safeParse({ jobs: { QUEUED: 'x' } }).success, false);
  assert.equal(NotifySchema.safeParse({ jobs: { QUEUED: [{ jobId: 'x'.repeat(65) }] } }).success, false);
  assert.equal(NotifySchema.safeParse({ timestamp: 1 }).success, true);
});

test('a notify that the job left a device, arriving before the snapshot, is checked again after it', () => {
  const c = clock();
  const t = new JobTracker('job-1', c.now);
  const requestedAt = c.now();
  // The execution ends while the snapshot is being read; the snapshot still says IN_PROGRESS.
  assert.equal(t.applyNotify('A', notify({ jobs: {} })), 'none');
  assert.deepEqual(
    t.loadSnapshot(
      [
        { thing: 'A', status: 'IN_PROGRESS' },
        { thing: 'B', status: 'QUEUED' },
      ],
      requestedAt,
    ),
    ['A'],
  );
  // After the snapshot, a device not in the job is nobody's business.
  assert.equal(t.applyNotify('C', notify({ jobs: {} })), 'none');
  assert.deepEqual(t.loadSnapshot([], c.now()), []);
});
