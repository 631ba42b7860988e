/** jobExecutionsRolloutConfig (AWS developer guide, "Job rollout rates"), on the fake clock. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { cpCode, DOC, fleet, groupArn, type Harness, T, thingArn, withHarness } from './harness.ts';

const MINUTE = 60_000;

const notified = (h: Harness, jobId: string) => h.svc.controlPlane.describeJob(jobId).rollout.notified;

describe('rollout rates', () => {
  test('maximumPerMinute paces the executions; the others wait, unseen by their devices', async () => {
    await withHarness(async (h) => {
      const things = fleet(h, 25, 'fleet', 'fleet-');
      const cp = h.svc.controlPlane;
      cp.createJob({
        jobId: 'paced',
        targets: [groupArn('fleet')],
        document: DOC,
        jobExecutionsRolloutConfig: { maximumPerMinute: 10 },
      });
      await h.svc.idle();
      // 10 a minute, spread over the minute: one now, one every 6 s.
      assert.equal(notified(h, 'paced'), 1);
      const d = cp.describeJob('paced');
      assert.equal(d.rollout.ratePerMinute, 10);
      assert.equal(d.rollout.waiting, 24);
      assert.equal(d.processDetails.numberOfQueuedThings, 1);
      await h.advance(6_000 - 1);
      assert.equal(notified(h, 'paced'), 1, 'not before the next slot');
      await h.advance(1);
      assert.equal(notified(h, 'paced'), 2);
      await h.advance(MINUTE - 6_000);
      assert.equal(notified(h, 'paced'), 11);
      await h.advance(MINUTE);
      assert.equal(notified(h, 'paced'), 21);
      // A thing still waiting has no execution and heard nothing.
      const last = things.at(-1) ?? '';
      assert.equal(h.sent.filter((m) => m.topic === T(last, 'notify')).length, 0);
      const r = await h.request(last, 'get', {});
      assert.deepEqual(r[0]?.payload.queuedJobs, []);
      await h.advance(MINUTE);
      assert.equal(notified(h, 'paced'), 25);
      assert.equal(cp.describeJob('paced').rollout.waiting, 0);
      assert.equal(h.clock.pending, 0, 'nothing left to wake up for');
      // The SNAPSHOT job completes only when every target was notified and finished.
      for (const t of things) await h.request(t, 'paced/update', { status: 'SUCCEEDED' });
      assert.equal(cp.describeJob('paced').job.status, 'COMPLETED');
    });
  });

  test('exponentialRate: ×incrementFactor each numberOfNotifiedThings, as in the developer guide', async () => {
    await withHarness(async (h) => {
      fleet(h, 40, 'fleet', 'fleet-');
      const cp = h.svc.controlPlane;
      cp.createJob({
        jobId: 'exp',
        targets: [groupArn('fleet')],
        document: DOC,
        jobExecutionsRolloutConfig: {
          exponentialRate: {
            baseRatePerMinute: 5,
            incrementFactor: 2,
            rateIncreaseCriteria: { numberOfNotifiedThings: 5 },
          },
        },
      });
      const rates: number[] = [];
      const counts: number[] = [];
      for (let m = 0; m < 4; m++) {
        rates.push(cp.describeJob('exp').rollout.ratePerMinute ?? -1);
        await h.advance(MINUTE);
        counts.push(notified(h, 'exp'));
      }
      // Minute 1 at 5/min; the 5th notification doubles it to 10 (a new minute starts at each change, so
      // the old budget is not re-spent). From there every 5 notifications double the rate again, so
      // minute 2 releases the rest: 10, 20, 40, 80, … as in the guide's table (50, 100, 200, 400).
      assert.deepEqual(rates.slice(0, 2), [5, 10]);
      assert.ok((counts[0] ?? 0) >= 5 && (counts[0] ?? 0) <= 7, `minute 1 notified ${counts[0]}`);
      assert.equal(counts[1], 40);
    });
  });

  test('exponentialRate by numberOfSucceededThings rises only as devices succeed; maximumPerMinute caps it', async () => {
    await withHarness(async (h) => {
      const things = fleet(h, 30, 'fleet', 'fleet-');
      const cp = h.svc.controlPlane;
      cp.createJob({
        jobId: 'exp-s',
        targets: [groupArn('fleet')],
        document: DOC,
        jobExecutionsRolloutConfig: {
          maximumPerMinute: 6,
          exponentialRate: {
            baseRatePerMinute: 2,
            incrementFactor: 3,
            rateIncreaseCriteria: { numberOfSucceededThings: 2 },
          },
        },
      });
      await h.advance(MINUTE);
      assert.equal(cp.describeJob('exp-s').rollout.ratePerMinute, 2, 'nobody succeeded yet');
      for (const t of things.slice(0, 2)) await h.request(t, 'exp-s/update', { status: 'SUCCEEDED' });
      assert.equal(cp.describeJob('exp-s').rollout.ratePerMinute, 6, '2 × 3 = 6, also the cap');
      for (const t of things.slice(2, 4)) await h.request(t, 'exp-s/update', { status: 'SUCCEEDED' });
      assert.equal(cp.describeJob('exp-s').rollout.ratePerMinute, 6, '18 capped by maximumPerMinute');
    });
  });

  test('a thing added to a CONTINUOUS job’s group later gets the job at once, whatever the rate', async () => {
    await withHarness(async (h) => {
      fleet(h, 5, 'fleet', 'fleet-');
      const cp = h.svc.controlPlane;
      cp.createJob({
        jobId: 'cont',
        targets: [groupArn('fleet')],
        document: DOC,
        targetSelection: 'CONTINUOUS',
        jobExecutionsRolloutConfig: { maximumPerMinute: 1 },
      });
      cp.createThing({ thingName: 'late' });
      cp.addThingToThingGroup({ thingGroupName: 'fleet', thingName: 'late' });
      assert.equal(cp.describeJobExecution('cont', 'late').status, 'QUEUED');
      assert.equal(cp.describeJob('cont').rollout.waiting, 4);
    });
  });

  test('rollout settings are validated with AWS’s ranges and words', async () => {
    await withHarness(async (h) => {
      fleet(h, 1, 'fleet', 'fleet-');
      const cp = h.svc.controlPlane;
      const create = (jobExecutionsRolloutConfig: unknown) => () =>
        cp.createJob({
          jobId: 'bad',
          targets: [thingArn('fleet-0')],
          document: DOC,
          jobExecutionsRolloutConfig: jobExecutionsRolloutConfig as never,
        });
      const exp = (e: object) => ({
        exponentialRate: {
          baseRatePerMinute: 10,
          incrementFactor: 2,
          rateIncreaseCriteria: { numberOfNotifiedThings: 5 },
          ...e,
        },
      });
      assert.throws(
        create({ maximumPerMinute: 0 }),
        cpCode(
          'InvalidRequestException',
          /^1 validation error detected: Value '0' at 'jobExecutionsRolloutConfig\.maximumPerMinute' failed to satisfy constraint: Member must have value greater than or equal to 1$/,
        ),
      );
      assert.throws(
        create({ maximumPerMinute: 1001 }),
        cpCode('InvalidRequestException', /less than or equal to 1000/),
      );
      assert.throws(
        create({ maximumPerMinute: 2.5 }),
        cpCode('InvalidRequestException', /maximumPerMinute: expected an integer/),
      );
      assert.throws(
        create(exp({ incrementFactor: 1.05 })),
        cpCode('InvalidRequestException', /incrementFactor.*greater than or equal to 1\.1/),
      );
      assert.throws(
        create(exp({ incrementFactor: 5.5 })),
        cpCode('InvalidRequestException', /incrementFactor.*less than or equal to 5/),
      );
      assert.throws(
        create(exp({ incrementFactor: 1.55 })),
        cpCode('InvalidRequestException', /incrementFactor: at most one digit after the decimal/),
      );
      assert.throws(
        create(exp({ baseRatePerMinute: 0 })),
        cpCode('InvalidRequestException', /baseRatePerMinute/),
      );
      assert.throws(
        create(exp({ rateIncreaseCriteria: {} })),
        cpCode(
          'InvalidRequestException',
          /rateIncreaseCriteria: give numberOfNotifiedThings or numberOfSucceededThings/,
        ),
      );
      assert.throws(() => cp.describeJob('bad'), cpCode('ResourceNotFoundException'));
    });
  });
});
