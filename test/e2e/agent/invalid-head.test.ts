import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runAgent } from './helpers.ts';
import { startHostileJobs } from './hostile-jobs.ts';

/**
 * A service that keeps an execution the agent cannot take (a jobId AWS never issues) at the head of the
 * queue: start-next hands it back every time. The agent must not wedge there: the jobs behind it run.
 */
test('an invalid jobId kept at the head of the queue: refused once, then the valid jobs behind it run', async () => {
  const jobs = await startHostileJobs();
  try {
    const thing = 'Cam_head';
    const config = await jobs.config(thing, { once: true });
    const doc = (version: string) => ({
      firmware: { version, size: 10, region: 'us-west-2', url: 's3://b/k/fw.img' },
    });
    const bad = { jobId: 'bad#head', status: 'IN_PROGRESS', jobDocument: doc('41811020'), versionNumber: 1 };
    jobs.head = bad;
    jobs.pendingList.inProgressJobs = [{ jobId: 'bad#head' }];
    // Behind it: one more invalid one, then a valid job (not newer: it ends REJECTED, reported).
    jobs.pendingList.queuedJobs = [{ jobId: 'also bad' }, { jobId: 'behind-1' }];
    jobs.executions.set('behind-1', {
      jobId: 'behind-1',
      status: 'IN_PROGRESS',
      jobDocument: doc('41811019'),
      versionNumber: 2,
    });
    const summary = await runAgent(config).done;
    assert.deepEqual(
      summary.jobs.map((j) => [j.jobId, j.status]),
      [
        ['bad#head', 'REJECTED'],
        ['behind-1', 'REJECTED'],
      ],
    );
    assert.match(summary.jobs[1]?.reason ?? '', /not newer/);
    const topics = jobs.requests.map((r) => r.topic);
    // The valid job was started (QUEUED → IN_PROGRESS), described and reported; nothing about the others.
    const behind = jobs.requests.filter((r) => r.topic.startsWith('behind-1/'));
    assert.deepEqual(
      behind.map((r) => [r.topic, r.body.status]),
      [
        ['behind-1/update', 'IN_PROGRESS'],
        ['behind-1/get', undefined],
        ['behind-1/update', 'REJECTED'],
      ],
    );
    assert.ok(!topics.some((t) => t.includes('bad')), topics.join(', '));
    // No busy loop: start-next, (refused) start-next + get (behind-1), start-next + get (nothing left).
    assert.equal(topics.filter((t) => t === 'start-next').length, 3, topics.join(', '));
    assert.equal(topics.filter((t) => t === 'get').length, 2, topics.join(', '));
  } finally {
    await jobs.close();
  }
});
