/**
 * `ota job create` with rollout, abort, retry and scheduling flags, `ota job describe` with the counts,
 * the rollout rate and the abort state, and `ota job template …`, against a local stack.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startTestStack, type TestStack } from '../../helpers/stack.ts';
import { ota } from '../cli/helpers.ts';

describe('ota job: configurations through the CLI', () => {
  let s: TestStack;
  let dataDir: string;
  let doc: string;
  const things = ['cli-0', 'cli-1', 'cli-2', 'cli-3'];

  before(async () => {
    s = await startTestStack('ota-cli-configs', { things });
    dataDir = s.stack.dataDir;
    const cp = s.stack.jobs.controlPlane;
    cp.createThingGroup({ thingGroupName: 'cli-fleet' });
    for (const t of things) cp.addThingToThingGroup({ thingGroupName: 'cli-fleet', thingName: t });
    doc = join(s.dir, 'doc.json');
    await writeFile(doc, JSON.stringify({ firmware: { version: '41811021' } }));
  });
  after(async () => {
    await s?.close();
  });

  /** `ota job create` of `jobId` for the cli-fleet group, with `flags` after. */
  const createInGroup = (jobId: string, flags: string[]) =>
    ota(['job', 'create', '--data-dir', dataDir, '--job-id', jobId, '--group', 'cli-fleet', ...flags]);

  const fail = (thing: string, jobId: string) =>
    s.stack.jobs.topicService.onPublish(
      { kind: 'thing', thingName: thing },
      `$aws/things/${thing}/jobs/${jobId}/update`,
      Buffer.from('{"status":"FAILED"}'),
    );

  test('create with rollout, abort and retry flags; describe shows the rate, the armed criterion, then ABORTED', async () => {
    const created = await createInGroup('cli-abort', [
      '--document',
      doc,
      '--max-per-minute',
      '100',
      '--abort',
      'FAILED:50%:min2',
      '--retry',
      'TIMED_OUT:2',
      '--in-progress-timeout',
      '30',
      '--json',
    ]);
    assert.equal(created.code, 0, created.stderr);
    let d = await ota(['job', 'describe', 'cli-abort', '--data-dir', dataDir]);
    assert.equal(d.code, 0, d.stderr);
    assert.match(d.stdout, /rollout {4}100 per minute now \(\d+ notified\)/);
    assert.match(d.stdout, /abort {6}armed: FAILED ≥ 50% after 2 executed \(now 0 of 0, 0\.0%\)/);
    const json = JSON.parse(
      (await ota(['job', 'describe', 'cli-abort', '--data-dir', dataDir, '--json'])).stdout,
    );
    assert.deepEqual(json.job.jobExecutionsRetryConfig, {
      criteriaList: [{ failureType: 'TIMED_OUT', numberOfRetries: 2 }],
    });
    // Two devices that have their execution fail it: the paced rollout decides which exist yet.
    const executions = () =>
      s.stack.jobs.controlPlane.listJobExecutionsForJob('cli-abort', {}, {}).items.map((e) => e.thingName);
    for (let i = 0; i < 300 && executions().length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    for (const thing of executions().slice(0, 2)) fail(thing, 'cli-abort');
    await s.stack.jobs.idle();
    d = await ota(['job', 'describe', 'cli-abort', '--data-dir', dataDir]);
    assert.match(d.stdout, /job cli-abort {2}CANCELED/);
    // At 100 per minute the rollout may not have created every thing's execution before the abort
    // (as on AWS, executions are created at the rollout's pace); the ones it did create and that were
    // not executed are the canceled ones.
    const made = s.stack.jobs.controlPlane.listJobExecutionsForJob('cli-abort', {}, {}).items.length;
    assert.ok(made >= 3 && made <= 4, `executions created: ${made}`);
    assert.match(
      d.stdout,
      new RegExp(
        `executions queued 0, in progress 0, succeeded 0, failed 2, rejected 0, canceled ${made - 2}`,
      ),
    );
    assert.match(
      d.stdout,
      /abort {6}ABORTED: abortConfig: 2 of 2 executed job executions \(100\.00%\) ended FAILED/,
    );
    assert.match(d.stdout, /reason {5}ABORT_CRITERIA_MET/);
  });

  test('bad flag values are refused with the field named', async () => {
    const bad = await createInGroup('x', ['--document', doc, '--abort', 'FAILED:lots']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /abort: "FAILED:lots" is not TYPE:PERCENT%:minN/);
    const range = await createInGroup('x', ['--document', doc, '--max-per-minute', '5000']);
    assert.notEqual(range.code, 0);
    assert.match(
      range.stderr,
      /maximumPerMinute' failed to satisfy constraint: Member must have value less than or equal to 1000/,
    );
  });

  test('templates: create, list, describe, a job from one, delete; a scheduled job', async () => {
    const t = await ota([
      'job',
      'template',
      'create',
      'cli-tpl',
      '--data-dir',
      dataDir,
      '--description',
      'paced firmware',
      '--document',
      doc,
      '--rate-base',
      '2',
      '--rate-factor',
      '2',
      '--rate-notified',
      '2',
    ]);
    assert.equal(t.code, 0, t.stderr);
    assert.match(
      (await ota(['job', 'template', 'list', '--data-dir', dataDir])).stdout,
      /cli-tpl .* paced firmware/,
    );
    const desc = JSON.parse(
      (await ota(['job', 'template', 'describe', 'cli-tpl', '--data-dir', dataDir])).stdout,
    );
    assert.equal(desc.jobExecutionsRolloutConfig.exponentialRate.incrementFactor, 2);
    const j = await createInGroup('cli-from-tpl', ['--template', 'cli-tpl']);
    assert.equal(j.code, 0, j.stderr);
    assert.match(
      (await ota(['job', 'describe', 'cli-from-tpl', '--data-dir', dataDir])).stdout,
      /rollout {4}2 per minute now/,
    );
    assert.equal((await ota(['job', 'template', 'delete', 'cli-tpl', '--data-dir', dataDir])).code, 0);
    const start = new Date(Date.now() + 2 * 3_600_000).toISOString().slice(0, 16);
    const later = await createInGroup('cli-later', ['--document', doc, '--start-time', start]);
    assert.equal(later.code, 0, later.stderr);
    assert.match(
      (await ota(['job', 'list', '--data-dir', dataDir, '--status', 'SCHEDULED'])).stdout,
      /cli-later +SCHEDULED/,
    );
  });
});
