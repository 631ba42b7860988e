/** schedulingConfig and job templates (AWS developer guide, "Job configurations"; CreateJobTemplate). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { cpCode, DOC, fleet, groupArn, thingArn, withHarness } from './harness.ts';

const MINUTE = 1000; // a scaled minute (--minute-ms 1000)
const iso = (t: number) => new Date(t).toISOString();

describe('schedulingConfig', () => {
  test('SCHEDULED until startTime: no executions, listed as SCHEDULED; then it rolls out', async () => {
    await withHarness({ minuteMs: MINUTE }, async (h) => {
      fleet(h, 2);
      const cp = h.svc.controlPlane;
      const start = h.clock.now() + 45 * MINUTE;
      const job = cp.createJob({
        jobId: 's',
        targets: [groupArn('fleet')],
        document: DOC,
        schedulingConfig: { startTime: iso(start) },
      });
      assert.equal(job.status, 'SCHEDULED');
      assert.deepEqual(
        cp.listJobs({ status: 'SCHEDULED' }, {}).items.map((j) => j.jobId),
        ['s'],
      );
      // A thing joining before the start is part of the rollout: targets are resolved at startTime.
      cp.createThing({ thingName: 'car-late' });
      cp.addThingToThingGroup({ thingGroupName: 'fleet', thingName: 'car-late' });
      assert.equal(cp.listJobExecutionsForJob('s', {}, {}).items.length, 0);
      await h.advance(start - h.clock.now() - 1);
      assert.equal(cp.describeJob('s').job.status, 'SCHEDULED');
      await h.advance(1);
      assert.equal(cp.describeJob('s').job.status, 'IN_PROGRESS');
      assert.equal(cp.describeJob('s').processDetails.numberOfQueuedThings, 3);
    });
  });

  test('endTime: STOP_ROLLOUT drops the waiting targets; CANCEL and FORCE_CANCEL cancel', async () => {
    await withHarness({ minuteMs: MINUTE }, async (h) => {
      const things = fleet(h, 40);
      const cp = h.svc.controlPlane;
      const end = h.clock.now() + 30 * MINUTE;
      const paced = { maximumPerMinute: 1 };
      cp.createJob({
        jobId: 'stop',
        targets: [groupArn('fleet')],
        document: DOC,
        jobExecutionsRolloutConfig: paced,
        schedulingConfig: { endTime: iso(end), endBehavior: 'STOP_ROLLOUT' },
      });
      cp.createJob({
        jobId: 'cancel',
        targets: [groupArn('fleet')],
        document: DOC,
        schedulingConfig: { endTime: iso(end), endBehavior: 'CANCEL' },
      });
      cp.createJob({
        jobId: 'force',
        targets: [groupArn('fleet')],
        document: DOC,
        schedulingConfig: { endTime: iso(end), endBehavior: 'FORCE_CANCEL' },
      });
      await h.request(things[0] ?? '', 'start-next', {}); // 'stop' came first: IN_PROGRESS
      await h.request(things[1] ?? '', 'cancel/update', { status: 'IN_PROGRESS' });
      await h.request(things[1] ?? '', 'force/update', { status: 'IN_PROGRESS' });
      await h.advance(30 * MINUTE);
      const stop = cp.describeJob('stop');
      assert.equal(stop.job.status, 'IN_PROGRESS');
      assert.deepEqual(
        [stop.rollout.ended, stop.rollout.endReason, stop.rollout.waiting],
        [true, 'END_TIME', 0],
      );
      assert.equal(stop.rollout.notified, 30, 'one a minute for 30 minutes');
      const cancel = cp.describeJob('cancel').job;
      assert.deepEqual([cancel.status, cancel.forceCanceled], ['CANCELED', undefined]);
      assert.equal(cancel.comment, 'schedulingConfig.endTime reached; endBehavior CANCEL');
      assert.equal(cp.describeJobExecution('cancel', things[1] ?? '').status, 'IN_PROGRESS');
      assert.equal(cp.describeJob('force').job.forceCanceled, true);
      assert.equal(cp.describeJobExecution('force', things[1] ?? '').status, 'CANCELED');
      // The stopped SNAPSHOT job completes once the notified things are done.
      for (const t of things.slice(0, 30)) await h.request(t, 'stop/update', { status: 'SUCCEEDED' });
      assert.equal(cp.describeJob('stop').job.status, 'COMPLETED');
    });
  });

  test('maintenance windows: the rollout notifies only inside them', async () => {
    await withHarness({ minuteMs: MINUTE }, async (h) => {
      fleet(h, 5);
      const cp = h.svc.controlPlane;
      // Every day at 02:00 UTC for 2 (scaled) minutes.
      cp.createJob({
        jobId: 'w',
        targets: [groupArn('fleet')],
        document: DOC,
        jobExecutionsRolloutConfig: { maximumPerMinute: 2 },
        schedulingConfig: { maintenanceWindows: [{ startTime: 'cron(0 2 * * ? *)', durationInMinutes: 2 }] },
      });
      let d = cp.describeJob('w');
      assert.equal(d.rollout.notified, 0);
      assert.equal(d.rollout.inWindow, false);
      const next = Date.parse(d.rollout.nextWindows[0] ?? '');
      assert.equal(new Date(next).getUTCHours(), 2);
      assert.equal(d.rollout.nextWindows.length, 7);
      await h.advance(next - h.clock.now());
      d = cp.describeJob('w');
      assert.equal(d.rollout.inWindow, true);
      await h.advance(2 * MINUTE);
      assert.equal(cp.describeJob('w').rollout.notified, 4, 'two minutes at 2 a minute');
      await h.advance(60 * MINUTE);
      assert.equal(cp.describeJob('w').rollout.notified, 4, 'outside the window nothing moves');
      await h.advance(next + 24 * 3_600_000 - h.clock.now());
      assert.equal(cp.describeJob('w').rollout.notified, 5, 'the next day’s window');
    });
  });

  test('scheduling is validated: times, distances, end behavior, windows', async () => {
    await withHarness({ minuteMs: MINUTE }, async (h) => {
      fleet(h, 1);
      const cp = h.svc.controlPlane;
      const now = h.clock.now();
      const create = (schedulingConfig: unknown) => () =>
        cp.createJob({
          jobId: 'x',
          targets: [thingArn('car-0')],
          document: DOC,
          schedulingConfig: schedulingConfig as never,
        });
      assert.throws(
        create({ startTime: 'tomorrow' }),
        cpCode('InvalidRequestException', /startTime: 'tomorrow' is not a date and time/),
      );
      assert.throws(
        create({ startTime: iso(now + 10 * MINUTE) }),
        cpCode('InvalidRequestException', /startTime: must be at least 30 minutes from now/),
      );
      assert.throws(
        create({ startTime: iso(now + 40 * MINUTE), endTime: iso(now + 50 * MINUTE) }),
        cpCode('InvalidRequestException', /endTime: must be at least 30 minutes after startTime/),
      );
      assert.throws(
        create({ endTime: iso(now + 31 * MINUTE), endBehavior: 'PAUSE' }),
        cpCode('InvalidRequestException', /endBehavior.*STOP_ROLLOUT, CANCEL, FORCE_CANCEL/),
      );
      assert.throws(
        create({ maintenanceWindows: [{ startTime: 'cron(0 2 1 * MON *)', durationInMinutes: 10 }] }),
        cpCode(
          'InvalidRequestException',
          /maintenanceWindows\.1\.member\.startTime: .*day-of-month and day-of-week must be \?/,
        ),
      );
      assert.throws(
        create({ maintenanceWindows: [{ startTime: '0 2 * * *', durationInMinutes: 10 }] }),
        cpCode(
          'InvalidRequestException',
          /expected cron\(minutes hours day-of-month month day-of-week year\)/,
        ),
      );
      assert.throws(
        create({ maintenanceWindows: [{ startTime: 'cron(0 2 * * ? *)', durationInMinutes: 1431 }] }),
        cpCode('InvalidRequestException', /durationInMinutes.*less than or equal to 1430/),
      );
      // AWS's documented form, YYYY-MM-DDTHH:MM (UTC), is accepted.
      const t = new Date(now + 120 * MINUTE);
      const minuteForm = `${t.toISOString().slice(0, 16)}`;
      assert.equal(
        cp.createJob({
          jobId: 'ok',
          targets: [thingArn('car-0')],
          document: DOC,
          schedulingConfig: { startTime: minuteForm },
        }).status,
        'SCHEDULED',
      );
      // A SCHEDULED job is cancelled like any other, and deleting one needs force.
      assert.throws(() => cp.deleteJob('ok', {}), cpCode('InvalidStateTransitionException'));
      assert.equal(cp.cancelJob('ok', {}).status, 'CANCELED');
    });
  });
});

describe('job templates', () => {
  test('create, describe, list, delete; a job takes the template’s document and configurations', async () => {
    await withHarness(async (h) => {
      fleet(h, 2);
      const cp = h.svc.controlPlane;
      const t = cp.createJobTemplate({
        jobTemplateId: 'fw-rollout',
        description: 'firmware, 10 a minute, abort at 20%',
        document: DOC,
        jobExecutionsRolloutConfig: { maximumPerMinute: 10 },
        abortConfig: {
          criteriaList: [
            {
              failureType: 'FAILED',
              action: 'CANCEL',
              thresholdPercentage: 20,
              minNumberOfExecutedThings: 5,
            },
          ],
        },
        timeoutConfig: { inProgressTimeoutInMinutes: 30 },
      });
      assert.equal(t.jobTemplateArn, 'arn:aws:iot:us-west-2:000000000000:jobtemplate/fw-rollout');
      assert.deepEqual(cp.describeJobTemplate('fw-rollout'), t);
      assert.throws(
        () => cp.createJobTemplate({ jobTemplateId: 'fw-rollout', description: 'again', document: DOC }),
        cpCode('ConflictException', /already exists/),
      );
      const job = cp.createJob({
        jobId: 'from-template',
        targets: [groupArn('fleet')],
        jobTemplateArn: t.jobTemplateArn,
        timeoutConfig: { inProgressTimeoutInMinutes: 5 },
      });
      assert.equal(job.document, DOC);
      assert.equal(job.description, t.description);
      assert.deepEqual(job.jobExecutionsRolloutConfig, { maximumPerMinute: 10 });
      assert.equal(job.abortConfig?.criteriaList[0]?.thresholdPercentage, 20);
      assert.deepEqual(job.timeoutConfig, { inProgressTimeoutInMinutes: 5 }, 'the request’s own value wins');
      assert.equal(job.jobTemplateArn, t.jobTemplateArn);
      // A template from a job (jobArn) copies its document and configurations.
      const copy = cp.createJobTemplate({ jobTemplateId: 'copy', description: 'copy', jobArn: job.jobArn });
      assert.equal(copy.document, DOC);
      assert.deepEqual(copy.timeoutConfig, { inProgressTimeoutInMinutes: 5 });
      const page1 = cp.listJobTemplates({ maxResults: 1 });
      assert.deepEqual(
        page1.items.map((x) => x.jobTemplateId),
        ['fw-rollout'],
      );
      assert.deepEqual(
        cp
          .listJobTemplates({ maxResults: 1, nextToken: page1.nextToken ?? '' })
          .items.map((x) => x.jobTemplateId),
        ['copy'],
      );
      cp.deleteJobTemplate('fw-rollout');
      assert.throws(() => cp.describeJobTemplate('fw-rollout'), cpCode('ResourceNotFoundException'));
      assert.throws(() => cp.deleteJobTemplate('fw-rollout'), cpCode('ResourceNotFoundException'));
      assert.equal(cp.describeJob('from-template').job.document, DOC, 'jobs keep their copy');
      assert.throws(
        () => cp.createJob({ jobId: 'gone', targets: [groupArn('fleet')], jobTemplateArn: t.jobTemplateArn }),
        cpCode('ResourceNotFoundException', /job template .* does not exist/),
      );
    });
  });

  test('templates are validated like jobs', async () => {
    await withHarness(async (h) => {
      const cp = h.svc.controlPlane;
      assert.throws(
        () => cp.createJobTemplate({ jobTemplateId: 'bad id', description: 'd', document: DOC }),
        cpCode('InvalidRequestException', /jobTemplateId must match/),
      );
      assert.throws(
        () => cp.createJobTemplate({ jobTemplateId: 'x', description: 'd' }),
        cpCode('InvalidRequestException', /document, documentSource or jobArn is required/),
      );
      assert.throws(
        () =>
          cp.createJobTemplate({
            jobTemplateId: 'x',
            description: 'd',
            document: `${'['.repeat(200)}${']'.repeat(200)}`,
          }),
        cpCode('InvalidRequestException', /levels deep/),
      );
      assert.throws(
        () =>
          cp.createJobTemplate({
            jobTemplateId: 'x',
            description: 'd',
            document: DOC,
            jobExecutionsRolloutConfig: { maximumPerMinute: 0 },
          }),
        cpCode('InvalidRequestException', /maximumPerMinute/),
      );
      assert.throws(
        () =>
          cp.createJob({
            jobId: 'j',
            targets: [],
            jobTemplateArn: 'arn:aws:iot:us-west-2:000000000000:job/nope',
          }),
        cpCode('InvalidRequestException', /is not a job template ARN/),
      );
    });
  });
});
