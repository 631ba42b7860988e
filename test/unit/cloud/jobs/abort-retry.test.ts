/** abortConfig and jobExecutionsRetryConfig (AWS developer guide, "How job configurations work"). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ABORT_REASON_CODE } from '../../../../src/cloud/jobs/lifecycle/outcomes.ts';
import { cpCode, DOC, fleet, groupArn, only, T, withHarness } from './harness.ts';

const abortAt = (failureType: string, thresholdPercentage: number, minNumberOfExecutedThings: number) => ({
  criteriaList: [{ failureType, action: 'CANCEL', thresholdPercentage, minNumberOfExecutedThings }],
});

describe('abortConfig', () => {
  test('enough failures cancel the job the AWS way: queued CANCELED, in-progress run on, the reason shown', async () => {
    await withHarness(async (h) => {
      const [a, b, c, d, e] = fleet(h, 5);
      const cp = h.svc.controlPlane;
      cp.createJob({
        jobId: 'j',
        targets: [groupArn('fleet')],
        document: DOC,
        abortConfig: abortAt('FAILED', 60, 2) as never,
      });
      await h.request(e ?? '', 'start-next', {}); // e is IN_PROGRESS and stays so
      await h.request(a ?? '', 'j/update', { status: 'FAILED' });
      assert.equal(
        cp.describeJob('j').job.status,
        'IN_PROGRESS',
        'one outcome is below minNumberOfExecutedThings',
      );
      await h.request(b ?? '', 'j/update', { status: 'SUCCEEDED' });
      assert.equal(cp.describeJob('j').job.status, 'IN_PROGRESS', '1 of 2 = 50% < 60%');
      const mark = h.sent.length;
      await h.request(c ?? '', 'j/update', { status: 'FAILED' }); // 2 of 3 = 66.67% ≥ 60%
      const { job, processDetails } = cp.describeJob('j');
      assert.equal(job.status, 'CANCELED');
      assert.equal(job.reasonCode, ABORT_REASON_CODE);
      assert.equal(
        job.comment,
        'abortConfig: 2 of 3 executed job executions (66.67%) ended FAILED; the criterion is 60% after at least 2',
      );
      assert.equal(job.forceCanceled, undefined);
      assert.equal(cp.describeJobExecution('j', d ?? '').status, 'CANCELED');
      assert.equal(cp.describeJobExecution('j', e ?? '').status, 'IN_PROGRESS');
      assert.deepEqual(
        [
          processDetails.numberOfFailedThings,
          processDetails.numberOfSucceededThings,
          processDetails.numberOfCanceledThings,
        ],
        [2, 1, 1],
      );
      // d heard of its cancellation; e finishes its work normally.
      assert.deepEqual(only(h.since(mark), T(d ?? '', 'notify')).payload.jobs, {});
      only(await h.request(e ?? '', 'j/update', { status: 'SUCCEEDED' }), T(e ?? '', 'j/update/accepted'));
    });
  });

  test('REJECTED, TIMED_OUT and ALL count their own failures; the threshold can stay unmet', async () => {
    await withHarness({ minuteMs: 1000 }, async (h) => {
      const things = fleet(h, 6);
      const cp = h.svc.controlPlane;
      cp.createJob({
        jobId: 'rej',
        targets: [groupArn('fleet')],
        document: DOC,
        abortConfig: abortAt('REJECTED', 40, 3) as never,
      });
      cp.createJob({
        jobId: 'all',
        targets: [groupArn('fleet')],
        document: DOC,
        abortConfig: abortAt('ALL', 75, 4) as never,
        timeoutConfig: { inProgressTimeoutInMinutes: 1 },
      });
      // rej: FAILED does not count for REJECTED.
      for (const t of things.slice(0, 3)) await h.request(t, 'rej/update', { status: 'FAILED' });
      assert.equal(cp.describeJob('rej').job.status, 'IN_PROGRESS');
      await h.request(things[3] ?? '', 'rej/update', { status: 'REJECTED' });
      await h.request(things[4] ?? '', 'rej/update', { status: 'REJECTED' });
      assert.equal(cp.describeJob('rej').job.status, 'CANCELED', '2 of 5 = 40%');
      // all: a failure, a rejection and two timeouts of 4 outcomes = 100% ≥ 75%.
      await h.request(things[0] ?? '', 'all/update', { status: 'FAILED' });
      await h.request(things[1] ?? '', 'all/update', { status: 'REJECTED' });
      await h.request(things[2] ?? '', 'all/update', { status: 'IN_PROGRESS' });
      await h.request(things[3] ?? '', 'all/update', { status: 'IN_PROGRESS' });
      assert.equal(cp.describeJob('all').job.status, 'IN_PROGRESS');
      await h.advance(1000);
      assert.equal(cp.describeJob('all').job.status, 'CANCELED');
      assert.match(cp.describeJob('all').job.comment ?? '', /4 of 4 .* ended ALL/);
    });
  });

  test('abortConfig is validated with AWS’s ranges', async () => {
    await withHarness(async (h) => {
      fleet(h, 1);
      const cp = h.svc.controlPlane;
      const create = (abortConfig: unknown) => () =>
        cp.createJob({
          jobId: 'x',
          targets: [groupArn('fleet')],
          document: DOC,
          abortConfig: abortConfig as never,
        });
      assert.throws(
        create({ criteriaList: [] }),
        cpCode('InvalidRequestException', /abortConfig\.criteriaList.*length greater than or equal to 1/),
      );
      assert.throws(
        create(abortAt('BROKEN', 10, 1)),
        cpCode(
          'InvalidRequestException',
          /at 'abortConfig\.criteriaList\.1\.member\.failureType'.*enum value set: \[FAILED, REJECTED, TIMED_OUT, ALL\]/,
        ),
      );
      assert.throws(
        create(abortAt('FAILED', 100.5, 1)),
        cpCode('InvalidRequestException', /thresholdPercentage.*less than or equal to 100/),
      );
      assert.throws(
        create(abortAt('FAILED', 10.999, 1)),
        cpCode('InvalidRequestException', /thresholdPercentage: at most 2 digits/),
      );
      assert.throws(
        create(abortAt('FAILED', 10, 0)),
        cpCode('InvalidRequestException', /minNumberOfExecutedThings.*greater than or equal to 1/),
      );
      assert.throws(
        create({
          criteriaList: [
            { failureType: 'FAILED', action: 'PAUSE', thresholdPercentage: 1, minNumberOfExecutedThings: 1 },
          ],
        }),
        cpCode('InvalidRequestException', /action.*\[CANCEL\]/),
      );
    });
  });
});

describe('jobExecutionsRetryConfig', () => {
  test('a FAILED execution is retried as a new QUEUED execution with the next executionNumber', async () => {
    await withHarness(async (h) => {
      const [car] = fleet(h, 1);
      const thing = car ?? '';
      const cp = h.svc.controlPlane;
      cp.createJob({
        jobId: 'r',
        targets: [groupArn('fleet')],
        document: DOC,
        jobExecutionsRetryConfig: { criteriaList: [{ failureType: 'FAILED', numberOfRetries: 2 }] },
      });
      for (let attempt = 1; attempt <= 3; attempt++) {
        const started = only(await h.request(thing, 'start-next', {}), T(thing, 'start-next/accepted'));
        assert.equal(started.payload.execution.executionNumber, attempt);
        const msgs = await h.request(thing, 'r/update', { status: 'FAILED' });
        if (attempt < 3) {
          // The device hears of the retry like of any queued job.
          assert.equal(
            msgs.filter((m) => m.topic === T(thing, 'notify-next')).at(-1)?.payload.execution.executionNumber,
            attempt + 1,
          );
        }
      }
      const latest = cp.describeJobExecution('r', thing);
      assert.deepEqual([latest.executionNumber, latest.status, latest.retryAttempt], [3, 'FAILED', 2]);
      assert.equal(cp.describeJobExecution('r', thing, 1).status, 'FAILED');
      assert.equal(cp.listJobExecutionsForJob('r', {}, {}).items.length, 3);
      const { job, processDetails } = cp.describeJob('r');
      assert.equal(job.status, 'COMPLETED', 'no retries left');
      assert.equal(processDetails.numberOfFailedThings, 1, 'counts things: the latest execution of each');
    });
  });

  test('TIMED_OUT retries need a timer; REJECTED is never retried; ALL counts both', async () => {
    await withHarness({ minuteMs: 1000 }, async (h) => {
      const [a, b] = fleet(h, 2);
      const cp = h.svc.controlPlane;
      cp.createJob({
        jobId: 't',
        targets: [groupArn('fleet')],
        document: DOC,
        timeoutConfig: { inProgressTimeoutInMinutes: 1 },
        jobExecutionsRetryConfig: { criteriaList: [{ failureType: 'ALL', numberOfRetries: 2 }] },
      });
      await h.request(a ?? '', 'start-next', {});
      await h.advance(1000);
      assert.deepEqual(
        [cp.describeJobExecution('t', a ?? '').executionNumber, cp.describeJobExecution('t', a ?? '').status],
        [2, 'QUEUED'],
      );
      await h.request(a ?? '', 't/update', { status: 'FAILED' });
      assert.equal(cp.describeJobExecution('t', a ?? '').executionNumber, 3);
      await h.request(a ?? '', 't/update', { status: 'FAILED' });
      assert.equal(
        cp.describeJobExecution('t', a ?? '').status,
        'FAILED',
        'two retries used (one TIMED_OUT, one FAILED)',
      );
      await h.request(b ?? '', 't/update', { status: 'REJECTED' });
      assert.equal(cp.describeJobExecution('t', b ?? '').executionNumber, 1);
    });
  });

  test('abort cancels queued retries', async () => {
    await withHarness(async (h) => {
      const things = fleet(h, 3);
      const cp = h.svc.controlPlane;
      cp.createJob({
        jobId: 'ra',
        targets: [groupArn('fleet')],
        document: DOC,
        abortConfig: abortAt('FAILED', 100, 2) as never,
        jobExecutionsRetryConfig: { criteriaList: [{ failureType: 'FAILED', numberOfRetries: 5 }] },
      });
      await h.request(things[0] ?? '', 'ra/update', { status: 'FAILED' });
      assert.equal(cp.describeJobExecution('ra', things[0] ?? '').status, 'QUEUED', 'a retry');
      await h.request(things[1] ?? '', 'ra/update', { status: 'FAILED' });
      assert.equal(cp.describeJob('ra').job.status, 'CANCELED');
      assert.equal(cp.describeJobExecution('ra', things[0] ?? '').status, 'CANCELED', 'the queued retry too');
      assert.equal(
        cp.describeJobExecution('ra', things[1] ?? '').executionNumber,
        1,
        'no retry for a cancelled job',
      );
    });
  });

  test('retry settings are validated', async () => {
    await withHarness(async (h) => {
      fleet(h, 1);
      const cp = h.svc.controlPlane;
      const create = (criteriaList: unknown) => () =>
        cp.createJob({
          jobId: 'x',
          targets: [groupArn('fleet')],
          document: DOC,
          jobExecutionsRetryConfig: { criteriaList } as never,
        });
      assert.throws(
        create([{ failureType: 'FAILED', numberOfRetries: 11 }]),
        cpCode('InvalidRequestException', /numberOfRetries.*less than or equal to 10/),
      );
      assert.throws(
        create([
          { failureType: 'FAILED', numberOfRetries: 6 },
          { failureType: 'TIMED_OUT', numberOfRetries: 5 },
        ]),
        cpCode(
          'InvalidRequestException',
          /at most 10 retries for a device across all failure types \(got 11\)/,
        ),
      );
      assert.throws(
        create([
          { failureType: 'ALL', numberOfRetries: 1 },
          { failureType: 'FAILED', numberOfRetries: 1 },
        ]),
        cpCode('InvalidRequestException', /ALL already covers/),
      );
      assert.throws(
        create([{ failureType: 'REJECTED', numberOfRetries: 1 }]),
        cpCode('InvalidRequestException', /\[FAILED, TIMED_OUT, ALL\]/),
      );
      assert.throws(
        create([1, 2, 3].map(() => ({ failureType: 'FAILED', numberOfRetries: 1 }))),
        cpCode('InvalidRequestException', /length less than or equal to 2/),
      );
    });
  });
});
