/**
 * The control plane's job operations over @aws-sdk/client-iot against the local stack: job
 * configurations round-trip through CreateJob / DescribeJob, retries show in the execution summaries,
 * job templates, RemoveThingFromThingGroup and DeleteThing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  AddThingToThingGroupCommand,
  CreateJobCommand,
  CreateJobTemplateCommand,
  CreateThingGroupCommand,
  DeleteJobTemplateCommand,
  DeleteThingCommand,
  DescribeJobCommand,
  DescribeJobExecutionCommand,
  DescribeJobTemplateCommand,
  DescribeThingCommand,
  type IoTClient,
  ListJobExecutionsForJobCommand,
  ListJobTemplatesCommand,
  RemoveThingFromThingGroupCommand,
} from '@aws-sdk/client-iot';
import { iotClientFor } from '../../../src/operator/clients.ts';
import { startTestStack, type TestStack } from '../../helpers/stack.ts';

const DOC = JSON.stringify({ firmware: { version: '41811021' } });
const arn = (kind: string, name: string) => `arn:aws:iot:us-west-2:000000000000:${kind}/${name}`;

describe('job configurations over @aws-sdk/client-iot', () => {
  let s: TestStack;
  let iot: IoTClient;
  before(async () => {
    s = await startTestStack('ota-cp-configs', { things: ['cfg-0', 'cfg-1', 'cfg-2'] });
    iot = iotClientFor({ kind: 'local', endpoints: s.stack.endpoints });
    await iot.send(new CreateThingGroupCommand({ thingGroupName: 'cfg' }));
    for (const t of ['cfg-0', 'cfg-1', 'cfg-2']) {
      await iot.send(new AddThingToThingGroupCommand({ thingGroupName: 'cfg', thingName: t }));
    }
  });
  after(async () => {
    iot?.destroy();
    await s?.close();
  });

  test('every configuration round-trips; SCHEDULED with its next maintenance windows', async () => {
    const start = new Date(Date.now() + 3 * 3_600_000);
    await iot.send(
      new CreateJobCommand({
        jobId: 'cfg-all',
        targets: [arn('thinggroup', 'cfg')],
        document: DOC,
        jobExecutionsRolloutConfig: {
          maximumPerMinute: 500,
          exponentialRate: {
            baseRatePerMinute: 50,
            incrementFactor: 2,
            rateIncreaseCriteria: { numberOfNotifiedThings: 1000 },
          },
        },
        abortConfig: {
          criteriaList: [
            {
              failureType: 'ALL',
              action: 'CANCEL',
              thresholdPercentage: 12.5,
              minNumberOfExecutedThings: 10,
            },
          ],
        },
        jobExecutionsRetryConfig: { criteriaList: [{ failureType: 'FAILED', numberOfRetries: 3 }] },
        timeoutConfig: { inProgressTimeoutInMinutes: 120 },
        schedulingConfig: {
          startTime: start.toISOString().slice(0, 16),
          endBehavior: 'STOP_ROLLOUT',
          maintenanceWindows: [{ startTime: 'cron(0 2 ? * SAT *)', durationInMinutes: 240 }],
        },
      }),
    );
    const { job } = await iot.send(new DescribeJobCommand({ jobId: 'cfg-all' }));
    assert.equal(job?.status, 'SCHEDULED');
    assert.equal(job?.jobExecutionsRolloutConfig?.exponentialRate?.incrementFactor, 2);
    assert.equal(job?.abortConfig?.criteriaList?.[0]?.thresholdPercentage, 12.5);
    assert.equal(job?.jobExecutionsRetryConfig?.criteriaList?.[0]?.numberOfRetries, 3);
    assert.equal(job?.schedulingConfig?.maintenanceWindows?.[0]?.durationInMinutes, 240);
    assert.equal(job?.scheduledJobRollouts?.length, 7);
    for (const r of job?.scheduledJobRollouts ?? [])
      assert.equal(new Date(r.startTime ?? '').getUTCDay(), 6, 'Saturdays');
    assert.equal(job?.jobProcessDetails?.numberOfQueuedThings, 0);
  });

  test('a retry is a new execution with the next executionNumber and retryAttempt', async () => {
    await iot.send(
      new CreateJobCommand({
        jobId: 'cfg-retry',
        targets: [arn('thing', 'cfg-0')],
        document: DOC,
        jobExecutionsRetryConfig: { criteriaList: [{ failureType: 'FAILED', numberOfRetries: 1 }] },
      }),
    );
    s.stack.jobs.topicService.onPublish(
      { kind: 'thing', thingName: 'cfg-0' },
      '$aws/things/cfg-0/jobs/cfg-retry/update',
      Buffer.from('{"status":"FAILED"}'),
    );
    await s.stack.jobs.idle();
    const list = await iot.send(new ListJobExecutionsForJobCommand({ jobId: 'cfg-retry' }));
    const summaries = (list.executionSummaries ?? []).map((x) => [
      x.jobExecutionSummary?.executionNumber,
      x.jobExecutionSummary?.status,
      x.jobExecutionSummary?.retryAttempt,
    ]);
    assert.deepEqual(summaries, [
      [1, 'FAILED', 0],
      [2, 'QUEUED', 1],
    ]);
    const first = await iot.send(
      new DescribeJobExecutionCommand({ jobId: 'cfg-retry', thingName: 'cfg-0', executionNumber: 1 }),
    );
    assert.equal(first.execution?.status, 'FAILED');
  });

  test('job templates', async () => {
    const t = await iot.send(
      new CreateJobTemplateCommand({
        jobTemplateId: 'cfg-tpl',
        description: 'weekend rollout',
        document: DOC,
        maintenanceWindows: [{ startTime: 'cron(0 1 ? * SUN *)', durationInMinutes: 60 }],
        abortConfig: {
          criteriaList: [
            {
              failureType: 'FAILED',
              action: 'CANCEL',
              thresholdPercentage: 10,
              minNumberOfExecutedThings: 5,
            },
          ],
        },
      }),
    );
    assert.equal(t.jobTemplateArn, arn('jobtemplate', 'cfg-tpl'));
    const d = await iot.send(new DescribeJobTemplateCommand({ jobTemplateId: 'cfg-tpl' }));
    assert.ok(d.createdAt instanceof Date);
    assert.equal(d.document, DOC);
    assert.equal(d.maintenanceWindows?.[0]?.startTime, 'cron(0 1 ? * SUN *)');
    const list = await iot.send(new ListJobTemplatesCommand({}));
    assert.deepEqual(
      list.jobTemplates?.map((x) => x.jobTemplateId),
      ['cfg-tpl'],
    );
    await iot.send(
      new CreateJobCommand({
        jobId: 'cfg-from-tpl',
        targets: [arn('thing', 'cfg-1')],
        jobTemplateArn: t.jobTemplateArn,
      }),
    );
    const job = (await iot.send(new DescribeJobCommand({ jobId: 'cfg-from-tpl' }))).job;
    assert.equal(job?.jobTemplateArn, t.jobTemplateArn);
    assert.equal(job?.schedulingConfig?.maintenanceWindows?.[0]?.durationInMinutes, 60);
    await iot.send(new DeleteJobTemplateCommand({ jobTemplateId: 'cfg-tpl' }));
    await assert.rejects(iot.send(new DescribeJobTemplateCommand({ jobTemplateId: 'cfg-tpl' })), {
      name: 'ResourceNotFoundException',
    });
    await assert.rejects(
      iot.send(
        new CreateJobTemplateCommand({
          jobTemplateId: 'cfg-bad',
          description: 'x',
          document: DOC,
          timeoutConfig: { inProgressTimeoutInMinutes: 0 },
        }),
      ),
      { name: 'InvalidRequestException', message: /inProgressTimeoutInMinutes/ },
    );
  });

  test('RemoveThingFromThingGroup by ARN, DeleteThing with expectedVersion', async () => {
    await iot.send(
      new RemoveThingFromThingGroupCommand({
        thingGroupArn: arn('thinggroup', 'cfg'),
        thingArn: arn('thing', 'cfg-2'),
      }),
    );
    await assert.rejects(iot.send(new DeleteThingCommand({ thingName: 'cfg-2', expectedVersion: 5 })), {
      name: 'VersionConflictException',
    });
    await iot.send(new DeleteThingCommand({ thingName: 'cfg-2', expectedVersion: 1 }));
    await iot.send(new DeleteThingCommand({ thingName: 'cfg-2' }));
    await assert.rejects(iot.send(new DescribeThingCommand({ thingName: 'cfg-2' })), {
      name: 'ResourceNotFoundException',
    });
  });
});
