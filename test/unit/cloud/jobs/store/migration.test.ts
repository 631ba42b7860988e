/** A version-1 database (no job configurations) opens as version 2 with its counters rebuilt. */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { createJobsService } from '../../../../../src/cloud/jobs/service.ts';
import { SCHEMA_V1, SCHEMA_VERSION } from '../../../../../src/cloud/jobs/store/schema.ts';

test('schema v1 → v2: executions keep their state, DescribeJob counts them, the job completes', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'jobs-migrate-'));
  try {
    const dbPath = join(dir, 'jobs.db');
    const db = new Database(dbPath);
    db.exec(SCHEMA_V1);
    db.pragma('user_version = 1');
    const now = Date.now();
    const insertThing = db.prepare(
      "INSERT INTO things (thing_name, thing_arn, thing_id, attributes, version, created_at) VALUES (?, ?, 'id', '{}', 1, ?)",
    );
    for (const t of ['a', 'b', 'c']) insertThing.run(t, `arn:aws:iot:us-west-2:000000000000:thing/${t}`, now);
    db.prepare(
      `INSERT INTO jobs (job_id, job_arn, targets, target_selection, document, status, created_at, last_updated_at)
       VALUES ('old', 'arn:aws:iot:us-west-2:000000000000:job/old', '[]', 'SNAPSHOT', '{}', 'IN_PROGRESS', ?, ?)`,
    ).run(now, now);
    const insertExecution = db.prepare(
      `INSERT INTO executions (seq, job_id, thing_name, execution_number, status, status_details, queued_at, last_updated_at, version_number)
       VALUES (?, 'old', ?, 1, ?, '{}', ?, ?, 1)`,
    );
    insertExecution.run(1, 'a', 'SUCCEEDED', now, now);
    insertExecution.run(2, 'b', 'FAILED', now, now);
    insertExecution.run(3, 'c', 'QUEUED', now, now);
    db.prepare("UPDATE counters SET value = 3 WHERE name = 'execution_seq'").run();
    db.close();

    const svc = createJobsService({ dbPath, publish: () => {}, presign: async (u) => u });
    try {
      const d = svc.controlPlane.describeJob('old');
      assert.deepEqual(
        [
          d.processDetails.numberOfSucceededThings,
          d.processDetails.numberOfFailedThings,
          d.processDetails.numberOfQueuedThings,
        ],
        [1, 1, 1],
      );
      assert.equal(d.rollout.notified, 3);
      assert.equal(svc.controlPlane.describeJobExecution('old', 'c').retryAttempt, 0);
      svc.topicService.onPublish(
        { kind: 'thing', thingName: 'c' },
        '$aws/things/c/jobs/old/update',
        Buffer.from('{"status":"SUCCEEDED"}'),
      );
      assert.equal(svc.controlPlane.describeJob('old').job.status, 'COMPLETED');
    } finally {
      svc.close();
    }
    const check = new Database(dbPath);
    assert.equal(check.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    check.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
