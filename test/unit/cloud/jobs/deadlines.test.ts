/**
 * The execution timers are found by index (schema v3): the deadline queries run on every Jobs request, and
 * with 10,000 devices IN_PROGRESS a query that reads every IN_PROGRESS execution made the fleet run
 * quadratic (docs/benchmarks.md, fleet).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JobsStore } from '../../../../src/cloud/jobs/store/store.ts';

test('nextDeadline and expired read only armed timers (partial indexes), and answer right', () => {
  const store = new JobsStore(':memory:');
  try {
    const db = store.db;
    const now = 1_000_000;
    db.prepare(
      `INSERT INTO jobs (job_id, job_arn, targets, target_selection, document, status, created_at, last_updated_at)
       VALUES ('j', 'arn:aws:iot:us-west-2:000000000000:job/j', '[]', 'SNAPSHOT', '{}', 'IN_PROGRESS', ?, ?)`,
    ).run(now, now);
    const thing = db.prepare(
      "INSERT INTO things (thing_name, thing_arn, thing_id, attributes, version, created_at) VALUES (?, ?, 'id', '{}', 1, ?)",
    );
    const exec = db.prepare(
      `INSERT INTO executions (seq, job_id, thing_name, execution_number, status, status_details, queued_at,
         last_updated_at, version_number, step_timeout_at, in_progress_timeout_at)
       VALUES (?, 'j', ?, 1, ?, '{}', ?, ?, 1, ?, ?)`,
    );
    const add = (i: number, status: string, step: number | null, progress: number | null) => {
      thing.run(`t${i}`, `arn:aws:iot:us-west-2:000000000000:thing/t${i}`, now);
      exec.run(i, `t${i}`, status, now, now, step, progress);
    };
    let i = 0;
    for (; i < 3000; i++) add(i, 'IN_PROGRESS', null, null);
    add(i++, 'IN_PROGRESS', now + 50, null); // step timer only
    add(i++, 'IN_PROGRESS', null, now + 20); // in-progress timer only
    add(i++, 'IN_PROGRESS', now + 10, now + 30); // both: listed once
    add(i++, 'SUCCEEDED', now + 1, now + 1); // ended: timers no longer count
    add(i++, 'IN_PROGRESS', now + 500, now + 600); // not yet due

    const seen: string[] = [];
    const prepare = db.prepare.bind(db);
    db.prepare = ((sql: string) => {
      seen.push(sql);
      return prepare(sql);
    }) as typeof db.prepare;
    assert.equal(store.nextDeadline(), now + 10);
    assert.deepEqual(
      store.expired(now + 100).map((e) => e.thingName),
      ['t3000', 't3001', 't3002'],
    );
    assert.deepEqual(store.expired(now), []);
    const [nextSql, expiredSql] = seen;
    for (const [sql, args] of [
      [nextSql, []],
      [expiredSql, [0, 0]],
    ] as const) {
      const plan = (prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args) as { detail: string }[])
        .map((r) => r.detail)
        .join('\n');
      assert.match(plan, /executions_step_deadline/, plan);
      assert.match(plan, /executions_progress_deadline/, plan);
      assert.doesNotMatch(plan, /SCAN executions|\(status=\?\)/, plan);
    }
  } finally {
    store.close();
  }
});
