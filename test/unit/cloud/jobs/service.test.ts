import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createJobsService } from '../../../../src/cloud/jobs/service.ts';
import {
  ACCOUNT,
  assertErrorShape,
  cpCode,
  DOC,
  groupArn,
  type Harness,
  none,
  only,
  placeholder,
  REGION,
  T,
  thingArn,
  withHarness,
  withThing,
} from './harness.ts';

/** Waits for another process to make progress (the kill -9 test); never for a timer of ours. */
async function waitFor(pred: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('jobs service: device flow', () => {
  test('get with nothing pending echoes the clientToken and uses seconds', async () => {
    await withHarness(async (h) => {
      await withThing(h);
      const r = await h.request('car-1', 'get', { clientToken: 'tok-1' });
      const m = only(r, T('car-1', 'get/accepted'));
      assert.deepEqual(m.payload.inProgressJobs, []);
      assert.deepEqual(m.payload.queuedJobs, []);
      assert.equal(m.payload.clientToken, 'tok-1');
      assert.ok(Number.isInteger(m.payload.timestamp));
      assert.ok(Math.abs(m.payload.timestamp - Date.now() / 1000) < 5);
      assert.equal(r.length, 1);
    });
  });

  test('queue → start-next → progress → SUCCEEDED, with the notifications AWS sends', async () => {
    await withHarness(async (h) => {
      await withThing(h);
      const mark = h.sent.length;
      const job = h.svc.controlPlane.createJob({
        jobId: 'job-1',
        targets: [thingArn('car-1')],
        document: DOC,
      });
      assert.equal(job.jobArn, `arn:aws:iot:${REGION}:${ACCOUNT}:job/job-1`);
      assert.equal(job.status, 'IN_PROGRESS');
      await h.svc.idle();
      let msgs = h.since(mark);
      const notify = only(msgs, T('car-1', 'notify'));
      assert.deepEqual(Object.keys(notify.payload.jobs), ['QUEUED']);
      assert.equal(notify.payload.jobs.QUEUED[0].jobId, 'job-1');
      assert.equal(notify.payload.jobs.QUEUED[0].versionNumber, 1);
      assert.equal(notify.payload.jobs.QUEUED[0].executionNumber, 1);
      const next = only(msgs, T('car-1', 'notify-next'));
      assert.equal(next.payload.execution.jobId, 'job-1');
      assert.equal(next.payload.execution.status, 'QUEUED');
      assert.deepEqual(
        next.payload.execution.jobDocument,
        JSON.parse(DOC),
        'jobDocument travels as an object',
      );

      const got = only(await h.request('car-1', 'get', {}), T('car-1', 'get/accepted'));
      assert.equal(got.payload.queuedJobs.length, 1);
      assert.equal(got.payload.inProgressJobs.length, 0);
      assert.equal('clientToken' in got.payload, false);

      msgs = await h.request('car-1', 'start-next', {
        clientToken: 'c2',
        statusDetails: { step: 'download' },
      });
      const started = only(msgs, T('car-1', 'start-next/accepted')).payload;
      assert.equal(started.clientToken, 'c2');
      assert.equal(started.execution.status, 'IN_PROGRESS');
      assert.equal(started.execution.thingName, 'car-1');
      assert.equal(started.execution.versionNumber, 2);
      assert.deepEqual(started.execution.statusDetails, { step: 'download' });
      assert.deepEqual(started.execution.jobDocument, JSON.parse(DOC));
      assert.ok(Number.isInteger(started.execution.startedAt));
      // The live service publishes nothing on notify or notify-next for a start-next.
      assert.deepEqual(
        msgs.map((m) => m.topic),
        [T('car-1', 'start-next/accepted')],
      );

      // start-next again returns the IN_PROGRESS execution unchanged, statusDetails kept.
      msgs = await h.request('car-1', 'start-next', { statusDetails: { other: 'x' } });
      const again = only(msgs, T('car-1', 'start-next/accepted')).payload.execution;
      assert.equal(again.versionNumber, 2);
      assert.deepEqual(again.statusDetails, { step: 'download' });
      none(msgs, T('car-1', 'notify'));

      // Progress: same status → no notify; versionNumber increases.
      msgs = await h.request('car-1', 'job-1/update', {
        status: 'IN_PROGRESS',
        statusDetails: { progress: '50' },
        expectedVersion: 2,
        includeJobExecutionState: true,
      });
      const progress = only(msgs, T('car-1', 'job-1/update/accepted')).payload;
      assert.deepEqual(progress.executionState, {
        status: 'IN_PROGRESS',
        statusDetails: { progress: '50' },
        versionNumber: 3,
      });
      assert.equal('jobDocument' in progress, false);
      none(msgs, T('car-1', 'notify'));
      none(msgs, T('car-1', 'notify-next'));

      msgs = await h.request('car-1', 'job-1/update', { status: 'SUCCEEDED', clientToken: 'done' });
      const done = only(msgs, T('car-1', 'job-1/update/accepted')).payload;
      assert.deepEqual(Object.keys(done).sort(), ['clientToken', 'timestamp']);
      assert.deepEqual(only(msgs, T('car-1', 'notify')).payload.jobs, {});
      assert.deepEqual(Object.keys(only(msgs, T('car-1', 'notify-next')).payload), ['timestamp']);
      // Reply first, then the notifications it caused.
      assert.equal(msgs[0]?.topic, T('car-1', 'job-1/update/accepted'));

      const d = h.svc.controlPlane.describeJob('job-1');
      assert.equal(d.job.status, 'COMPLETED');
      assert.ok(d.job.completedAt !== undefined);
      assert.equal(d.processDetails.numberOfSucceededThings, 1);
      const e = h.svc.controlPlane.describeJobExecution('job-1', 'car-1');
      assert.equal(e.status, 'SUCCEEDED');
      assert.equal(e.versionNumber, 4);
      assert.deepEqual(e.statusDetails, { progress: '50' }, 'omitting statusDetails keeps the stored ones');

      // Describing the execution of a job in a terminal state: TerminalStateReached (AWS ErrorResponse).
      const desc = only(
        await h.request('car-1', 'job-1/get', { clientToken: 'd' }),
        T('car-1', 'job-1/get/rejected'),
      );
      assertErrorShape(desc, 'TerminalStateReached', 'd');
      assert.equal(desc.payload.message, 'job job-1 is COMPLETED and its execution on car-1 is SUCCEEDED');
      // $next with nothing pending: reply without execution.
      const nx = only(
        await h.request('car-1', '$next/get', { clientToken: 'n' }),
        T('car-1', '$next/get/accepted'),
      );
      assert.deepEqual(Object.keys(nx.payload).sort(), ['clientToken', 'timestamp']);
      // start-next with nothing pending: reply without execution.
      const sn = only(await h.request('car-1', 'start-next', {}), T('car-1', 'start-next/accepted'));
      assert.deepEqual(Object.keys(sn.payload), ['timestamp']);
    });
  });

  test('describe: includeJobDocument, executionNumber, $next and unknown jobs', async () => {
    await withHarness(async (h) => {
      await withThing(h);
      h.svc.controlPlane.createJob({ jobId: 'j1', targets: [thingArn('car-1')], document: DOC });
      const withDoc = only(await h.request('car-1', 'j1/get', {}), T('car-1', 'j1/get/accepted')).payload;
      assert.deepEqual(withDoc.execution.jobDocument, JSON.parse(DOC));
      const noDoc = only(
        await h.request('car-1', 'j1/get', { includeJobDocument: false, executionNumber: 1 }),
        T('car-1', 'j1/get/accepted'),
      ).payload;
      assert.equal('jobDocument' in noDoc.execution, false);
      const nx = only(await h.request('car-1', '$next/get', {}), T('car-1', '$next/get/accepted')).payload;
      assert.equal(nx.execution.jobId, 'j1');
      const missing = only(
        await h.request('car-1', 'j1/get', { executionNumber: 7, clientToken: 'x' }),
        T('car-1', 'j1/get/rejected'),
      );
      assertErrorShape(missing, 'ResourceNotFound', 'x');
      assertErrorShape(
        only(await h.request('car-1', 'nope/get', {}), T('car-1', 'nope/get/rejected')),
        'ResourceNotFound',
      );
      assertErrorShape(
        only(
          await h.request('car-1', 'nope/update', { status: 'IN_PROGRESS' }),
          T('car-1', 'nope/update/rejected'),
        ),
        'ResourceNotFound',
      );
    });
  });

  test('error codes and their exact shape', async () => {
    await withHarness(async (h) => {
      await withThing(h);
      h.svc.controlPlane.createJob({ jobId: 'j1', targets: [thingArn('car-1')], document: DOC });
      assertErrorShape(
        only(await h.request('car-1', 'get', '{not json'), T('car-1', 'get/rejected')),
        'InvalidJson',
      );
      assertErrorShape(
        only(await h.request('car-1', 'get', Buffer.from([0xff, 0xfe, 0x7b])), T('car-1', 'get/rejected')),
        'InvalidJson',
      );
      assertErrorShape(
        only(await h.request('car-1', 'start-next', '[1,2]'), T('car-1', 'start-next/rejected')),
        'InvalidRequest',
      );
      assertErrorShape(
        only(await h.request('car-1', 'bogus', { clientToken: 'tt' }), T('car-1', 'bogus/rejected')),
        'InvalidTopic',
        'tt',
      );
      assertErrorShape(
        only(await h.request('car-1', 'j1/frobnicate', {}), T('car-1', 'j1/frobnicate/rejected')),
        'InvalidTopic',
      );
      assertErrorShape(
        only(await h.request('car-1', 'a/b/c', {}), T('car-1', 'a/b/c/rejected')),
        'InvalidTopic',
      );
      assertErrorShape(
        only(await h.request('car-1', 'notify', {}), T('car-1', 'notify/rejected')),
        'InvalidTopic',
      );
      // clientToken > 64 characters
      assertErrorShape(
        only(await h.request('car-1', 'get', { clientToken: 'x'.repeat(65) }), T('car-1', 'get/rejected')),
        'InvalidRequest',
      );
      const ok64 = only(
        await h.request('car-1', 'get', { clientToken: 'y'.repeat(64) }),
        T('car-1', 'get/accepted'),
      );
      assert.equal(ok64.payload.clientToken, 'y'.repeat(64));
      // update without status / with a service-only or unknown status
      for (const body of [
        {},
        { status: 'TIMED_OUT' },
        { status: 'QUEUED' },
        { status: 'DONE' },
        { status: 5 },
      ]) {
        assertErrorShape(
          only(
            await h.request('car-1', 'j1/update', { ...body, clientToken: 'u' }),
            T('car-1', 'j1/update/rejected'),
          ),
          'InvalidRequest',
          'u',
        );
      }
      // bad jobId in the topic, bad field types
      assertErrorShape(
        only(await h.request('car-1', 'bad.id/get', {}), T('car-1', 'bad.id/get/rejected')),
        'InvalidRequest',
      );
      assertErrorShape(
        only(
          await h.request('car-1', 'j1/get', { includeJobDocument: 'yes' }),
          T('car-1', 'j1/get/rejected'),
        ),
        'InvalidRequest',
      );
      assertErrorShape(
        only(
          await h.request('car-1', 'j1/update', { status: 'IN_PROGRESS', expectedVersion: 'two' }),
          T('car-1', 'j1/update/rejected'),
        ),
        'InvalidRequest',
      );
      for (const stepTimeoutInMinutes of [0, 10081, -2, 1.5, '5']) {
        assertErrorShape(
          only(
            await h.request('car-1', 'start-next', { stepTimeoutInMinutes }),
            T('car-1', 'start-next/rejected'),
          ),
          'InvalidRequest',
        );
      }
      // None of the refused requests changed anything.
      assert.equal(h.svc.controlPlane.describeJobExecution('j1', 'car-1').versionNumber, 1);
    });
  });

  test('expectedVersion as number or numeric string; VersionMismatch carries executionState', async () => {
    await withHarness(async (h) => {
      await withThing(h);
      h.svc.controlPlane.createJob({ jobId: 'j1', targets: [thingArn('car-1')], document: DOC });
      let m = only(
        await h.request('car-1', 'j1/update', {
          status: 'IN_PROGRESS',
          expectedVersion: 5,
          clientToken: 'v',
        }),
        T('car-1', 'j1/update/rejected'),
      );
      assertErrorShape(m, 'VersionMismatch', 'v', true);
      // As the live service: its wording, and only the fields that are set (no statusDetails given yet).
      assert.equal(m.payload.message, 'Expected version 5 but found version 1');
      assert.equal(JSON.stringify(m.payload.executionState), '{"status":"QUEUED","versionNumber":1}');
      m = only(
        await h.request('car-1', 'j1/update', { status: 'IN_PROGRESS', expectedVersion: '3' }),
        T('car-1', 'j1/update/rejected'),
      );
      assertErrorShape(m, 'VersionMismatch', undefined, true);
      only(
        await h.request('car-1', 'j1/update', { status: 'IN_PROGRESS', expectedVersion: '1' }),
        T('car-1', 'j1/update/accepted'),
      );
      only(
        await h.request('car-1', 'j1/update', { status: 'IN_PROGRESS', expectedVersion: 2 }),
        T('car-1', 'j1/update/accepted'),
      );
      assert.equal(h.svc.controlPlane.describeJobExecution('j1', 'car-1').versionNumber, 3);
    });
  });

  test('updates after a terminal state are InvalidStateTransition with executionState', async () => {
    await withHarness(async (h) => {
      await withThing(h);
      h.svc.controlPlane.createJob({ jobId: 'j1', targets: [thingArn('car-1')], document: DOC });
      only(await h.request('car-1', 'j1/update', { status: 'FAILED' }), T('car-1', 'j1/update/accepted'));
      const m = only(
        await h.request('car-1', 'j1/update', { status: 'IN_PROGRESS', clientToken: 'z' }),
        T('car-1', 'j1/update/rejected'),
      );
      assertErrorShape(m, 'InvalidStateTransition', 'z', true);
      assert.deepEqual(m.payload.executionState, { status: 'FAILED', versionNumber: 2 });
    });
  });

  test('IN_PROGRESS → REJECTED follows allowRejectFromInProgress', async () => {
    for (const allow of [true, false]) {
      await withHarness({ allowRejectFromInProgress: allow }, async (h) => {
        await withThing(h);
        h.svc.controlPlane.createJob({ jobId: 'j1', targets: [thingArn('car-1')], document: DOC });
        await h.request('car-1', 'start-next', {});
        const msgs = await h.request('car-1', 'j1/update', { status: 'REJECTED' });
        if (allow) only(msgs, T('car-1', 'j1/update/accepted'));
        else
          assertErrorShape(
            only(msgs, T('car-1', 'j1/update/rejected')),
            'InvalidStateTransition',
            undefined,
            true,
          );
      });
    }
  });

  test('statusDetails limits', async () => {
    await withHarness(async (h) => {
      await withThing(h);
      h.svc.controlPlane.createJob({ jobId: 'j1', targets: [thingArn('car-1')], document: DOC });
      const eleven = Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`k${i}`, 'v']));
      const bad: unknown[] = [
        eleven,
        { 'bad key': 'v' },
        { 'dot.key': 'v' },
        { ['k'.repeat(129)]: 'v' },
        { k: '' },
        { k: 'v'.repeat(1025) },
        { k: 'line\nbreak' },
        { k: 'nul\u0000' },
        { k: 5 },
        { k: null },
        ['a'],
        'text',
      ];
      for (const statusDetails of bad) {
        const m = only(
          await h.request('car-1', 'j1/update', { status: 'IN_PROGRESS', statusDetails, clientToken: 's' }),
          T('car-1', 'j1/update/rejected'),
        );
        assertErrorShape(m, 'InvalidRequest', 's');
        assert.match(m.payload.message, /statusDetails/);
      }
      assertErrorShape(
        only(
          await h.request('car-1', 'start-next', { statusDetails: eleven }),
          T('car-1', 'start-next/rejected'),
        ),
        'InvalidRequest',
      );
      const ten = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`k:_-${i}`, 'é'.repeat(1024)]));
      ten[`${'K'.repeat(124)}:_-9`] = 'x';
      delete ten['k:_-9'];
      only(
        await h.request('car-1', 'j1/update', { status: 'IN_PROGRESS', statusDetails: ten }),
        T('car-1', 'j1/update/accepted'),
      );
      assert.deepEqual(h.svc.controlPlane.describeJobExecution('j1', 'car-1').statusDetails, ten);
    });
  });

  test('notify-next only when the head changes (AWS "Jobs notifications")', async () => {
    await withHarness(async (h) => {
      await withThing(h);
      const cp = h.svc.controlPlane;
      let mark = h.sent.length;
      cp.createJob({ jobId: 'a', targets: [thingArn('car-1')], document: DOC });
      h.clock.advanceSync(5);
      cp.createJob({ jobId: 'b', targets: [thingArn('car-1')], document: DOC });
      await h.svc.idle();
      let msgs = h.since(mark);
      assert.equal(msgs.filter((m) => m.topic === T('car-1', 'notify')).length, 2);
      const nexts = msgs.filter((m) => m.topic === T('car-1', 'notify-next'));
      assert.equal(nexts.length, 1, 'queuing b behind a does not change the head');
      assert.equal(nexts[0]?.payload.execution.jobId, 'a');
      const lastNotify = msgs.filter((m) => m.topic === T('car-1', 'notify')).at(-1);
      assert.deepEqual(
        lastNotify?.payload.jobs.QUEUED.map((s: { jobId: string }) => s.jobId),
        ['a', 'b'],
      );

      // b goes IN_PROGRESS first: IN_PROGRESS executions lead the list, so the head becomes b.
      msgs = await h.request('car-1', 'b/update', { status: 'IN_PROGRESS' });
      assert.equal(only(msgs, T('car-1', 'notify-next')).payload.execution.jobId, 'b');
      const n = only(msgs, T('car-1', 'notify')).payload.jobs;
      assert.deepEqual(
        n.IN_PROGRESS.map((s: { jobId: string }) => s.jobId),
        ['b'],
      );
      assert.deepEqual(
        n.QUEUED.map((s: { jobId: string }) => s.jobId),
        ['a'],
      );

      // a goes IN_PROGRESS too; it was queued earlier, so it becomes the head.
      msgs = await h.request('car-1', 'a/update', { status: 'IN_PROGRESS' });
      assert.equal(only(msgs, T('car-1', 'notify-next')).payload.execution.jobId, 'a');
      assert.equal(only(msgs, T('car-1', 'notify-next')).payload.execution.status, 'IN_PROGRESS');

      // b finishes: not the head → notify, but no notify-next.
      msgs = await h.request('car-1', 'b/update', { status: 'SUCCEEDED' });
      only(msgs, T('car-1', 'notify'));
      none(msgs, T('car-1', 'notify-next'));

      // a finishes: the queue empties → notify jobs:{} and notify-next {timestamp}.
      msgs = await h.request('car-1', 'a/update', { status: 'SUCCEEDED' });
      assert.deepEqual(only(msgs, T('car-1', 'notify')).payload.jobs, {});
      assert.deepEqual(Object.keys(only(msgs, T('car-1', 'notify-next')).payload), ['timestamp']);
      mark = h.sent.length;
      await h.request('car-1', 'get', {});
      none(h.since(mark), T('car-1', 'notify-next'));
    });
  });

  test('operators, other things and garbage never crash the service', async () => {
    await withHarness(async (h) => {
      await withThing(h);
      h.svc.controlPlane.createJob({ jobId: 'j1', targets: [thingArn('car-1')], document: DOC });
      await h.svc.idle();
      const mark = h.sent.length;
      h.svc.topicService.onPublish(
        { kind: 'operator', name: 'operator' },
        T('car-1', 'get'),
        Buffer.from('{}'),
      );
      h.svc.topicService.onPublish(
        { kind: 'thing', thingName: 'car-2' },
        T('car-1', 'get'),
        Buffer.from('{}'),
      );
      h.svc.topicService.onPublish(
        { kind: 'thing', thingName: 'car-1' },
        T('car-1', 'get/accepted'),
        Buffer.from('{}'),
      );
      await h.svc.idle();
      assert.deepEqual(h.since(mark), [], 'ignored: operator, foreign thing, reply topics');

      const garbage: Buffer[] = [
        Buffer.from('null'),
        Buffer.from('42'),
        Buffer.from('"s"'),
        Buffer.from('{"statusDetails":{"__proto__":{"x":"y"}},"status":"IN_PROGRESS"}'),
        Buffer.from('{"status":"IN_PROGRESS","statusDetails":{"constructor":"c"}}'),
        Buffer.from(`${'['.repeat(5000)}${']'.repeat(5000)}`),
        Buffer.from([0, 1, 2, 3, 255]),
        Buffer.alloc(0),
      ];
      for (const suffix of ['get', 'start-next', 'j1/get', 'j1/update', '$next/get', '$next/update', 'x']) {
        for (const g of garbage) {
          const msgs = await h.request('car-1', suffix, g);
          assert.ok(msgs.length >= 1, `a reply for ${suffix}`);
          assert.ok(msgs.every((m) => typeof m.payload === 'object'));
        }
      }
      // Still serving.
      only(await h.request('car-1', 'get', {}), T('car-1', 'get/accepted'));
      assert.equal(h.svc.topicService.claims('$aws/things/car-1/jobs/get'), true);
      assert.equal(h.svc.topicService.claims('$aws/things/car-1/jobs/j1/update'), true);
      assert.equal(h.svc.topicService.claims('$aws/things/car-1/jobs/bogus'), true);
      // Service → device topics are not claimed, so the broker delivers them to subscribers.
      for (const t of [
        'notify',
        'notify-next',
        'get/accepted',
        'start-next/rejected',
        'j1/update/accepted',
      ]) {
        assert.equal(h.svc.topicService.claims(`$aws/things/car-1/jobs/${t}`), false, t);
      }
      assert.equal(h.svc.topicService.claims('$aws/things/car-1/shadow/get'), false);
      assert.equal(h.svc.topicService.claims('CarVi/test/firmware/car-1'), false);
    });
  });

  test('a failing presign answers InternalError instead of crashing', async () => {
    const presign = async () => {
      throw new Error('no credentials');
    };
    await withHarness({ presign }, async (h) => {
      await withThing(h);
      h.svc.controlPlane.createJob({
        jobId: 'j1',
        targets: [thingArn('car-1')],
        document: JSON.stringify({
          url: placeholder('https://s3.us-west-2.amazonaws.com/b/k'),
        }),
      });
      const m = only(await h.request('car-1', 'j1/get', { clientToken: 'p' }), T('car-1', 'j1/get/rejected'));
      assertErrorShape(m, 'InternalError', 'p');
      only(await h.request('car-1', 'j1/get', { includeJobDocument: false }), T('car-1', 'j1/get/accepted'));
    });
  });
});

describe('jobs service: presigned placeholders', () => {
  test('replaced on every MQTT delivery; GetJobDocument keeps the placeholder', async () => {
    await withHarness(async (h) => {
      await withThing(h);
      const url = 'https://s3.us-west-2.amazonaws.com/fw-bucket/car/2.0.0.bin';
      const document = JSON.stringify({
        files: [{ url: `\${aws:iot:s3-presigned-url:${url}}`, size: 10 }],
        note: `mirror: \${aws:iot:s3-presigned-url:${url}} end`,
      });
      const mark = h.sent.length;
      h.svc.controlPlane.createJob({
        jobId: 'j1',
        targets: [thingArn('car-1')],
        document,
        presignedUrlConfig: { expiresInSec: 600 },
      });
      await h.svc.idle();
      const viaNext = only(h.since(mark), T('car-1', 'notify-next')).payload.execution.jobDocument;
      assert.match(
        viaNext.files[0].url,
        /^https:\/\/s3\.us-west-2\.amazonaws\.com\/fw-bucket\/car\/2\.0\.0\.bin\?X-Amz-Signature=sig\d+&X-Amz-Expires=600$/,
      );
      assert.ok(viaNext.note.startsWith('mirror: https://') && viaNext.note.endsWith(' end'));

      const started = only(
        await h.request('car-1', 'start-next', {}),
        T('car-1', 'start-next/accepted'),
      ).payload;
      const got = only(await h.request('car-1', 'j1/get', {}), T('car-1', 'j1/get/accepted')).payload;
      const upd = only(
        await h.request('car-1', 'j1/update', { status: 'IN_PROGRESS', includeJobDocument: true }),
        T('car-1', 'j1/update/accepted'),
      ).payload;
      const urls = [
        viaNext.files[0].url,
        started.execution.jobDocument.files[0].url,
        got.execution.jobDocument.files[0].url,
        upd.jobDocument.files[0].url,
      ];
      assert.equal(new Set(urls).size, 4, 'a fresh URL on every delivery');
      assert.ok(h.presignCalls.every((c) => c.url === url && c.expires === 600));
      assert.equal(h.svc.controlPlane.getJobDocument('j1'), document);
    });
  });

  test('expiresInSec defaults to 3600', async () => {
    await withHarness(async (h) => {
      await withThing(h);
      h.svc.controlPlane.createJob({
        jobId: 'j1',
        targets: [thingArn('car-1')],
        document: JSON.stringify({ u: placeholder('https://s3.amazonaws.com/b/k') }),
      });
      const got = only(await h.request('car-1', 'j1/get', {}), T('car-1', 'j1/get/accepted')).payload;
      assert.match(got.execution.jobDocument.u, /X-Amz-Expires=3600$/);
      assert.deepEqual(h.presignCalls.at(-1), { url: 'https://s3.amazonaws.com/b/k', expires: 3600 });
    });
  });
});

describe('jobs service: timeouts', () => {
  const MINUTE = 1000;
  const status = (h: Harness, jobId: string) =>
    h.svc.controlPlane.describeJobExecution(jobId, 'car-1').status;

  test('step timer → TIMED_OUT; a new value replaces it and -1 clears it', async () => {
    await withHarness({ minuteMs: MINUTE }, async (h) => {
      await withThing(h);
      h.svc.controlPlane.createJob({ jobId: 'j1', targets: [thingArn('car-1')], document: DOC });
      const mark = h.sent.length;
      await h.request('car-1', 'start-next', { stepTimeoutInMinutes: 1 });
      assert.ok(h.svc.controlPlane.describeJobExecution('j1', 'car-1').stepTimeoutAt !== undefined);
      await h.advance(MINUTE - 1);
      assert.equal(status(h, 'j1'), 'IN_PROGRESS', 'not before its time');
      await h.advance(1);
      assert.equal(status(h, 'j1'), 'TIMED_OUT');
      const msgs = h.since(mark);
      assert.deepEqual(msgs.filter((m) => m.topic === T('car-1', 'notify')).at(-1)?.payload.jobs, {});
      assert.deepEqual(
        Object.keys(msgs.filter((m) => m.topic === T('car-1', 'notify-next')).at(-1)?.payload),
        ['timestamp'],
      );
      const rej = only(
        await h.request('car-1', 'j1/update', { status: 'SUCCEEDED' }),
        T('car-1', 'j1/update/rejected'),
      );
      assert.equal(rej.payload.code, 'InvalidStateTransition');
      assert.equal(rej.payload.executionState.status, 'TIMED_OUT');
      assert.equal(h.svc.controlPlane.describeJob('j1').processDetails.numberOfTimedOutThings, 1);
      assert.equal(h.svc.controlPlane.describeJob('j1').job.status, 'COMPLETED');

      // Replace: a long step timer replaced by -1 never fires.
      h.svc.controlPlane.createJob({ jobId: 'j2', targets: [thingArn('car-1')], document: DOC });
      await h.request('car-1', 'start-next', { stepTimeoutInMinutes: 2 });
      await h.request('car-1', 'j2/update', { status: 'IN_PROGRESS', stepTimeoutInMinutes: -1 });
      assert.equal(h.svc.controlPlane.describeJobExecution('j2', 'car-1').stepTimeoutAt, undefined);
      await h.advance(10 * MINUTE);
      assert.equal(status(h, 'j2'), 'IN_PROGRESS');
      // Replace a long one by a short one.
      await h.request('car-1', 'j2/update', { status: 'IN_PROGRESS', stepTimeoutInMinutes: 1000 });
      await h.request('car-1', 'j2/update', { status: 'IN_PROGRESS', stepTimeoutInMinutes: 1 });
      await h.advance(MINUTE);
      assert.equal(status(h, 'j2'), 'TIMED_OUT');
    });
  });

  test('in-progress timeout is fixed at start and ignores step updates', async () => {
    await withHarness({ minuteMs: MINUTE }, async (h) => {
      await withThing(h);
      h.svc.controlPlane.createJob({
        jobId: 'j1',
        targets: [thingArn('car-1')],
        document: DOC,
        timeoutConfig: { inProgressTimeoutInMinutes: 3 },
      });
      await h.advance(10 * MINUTE); // the in-progress timer starts at start, not at queueing
      assert.equal(status(h, 'j1'), 'QUEUED');
      await h.request('car-1', 'start-next', {});
      const e = h.svc.controlPlane.describeJobExecution('j1', 'car-1');
      assert.ok(e.inProgressTimeoutAt !== undefined && e.startedAt !== undefined);
      assert.equal(e.inProgressTimeoutAt - e.startedAt, 3 * MINUTE);
      await h.request('car-1', 'j1/update', { status: 'IN_PROGRESS', stepTimeoutInMinutes: 10000 });
      await h.advance(3 * MINUTE - 1);
      assert.equal(status(h, 'j1'), 'IN_PROGRESS', 'did not fire before its time');
      await h.advance(1);
      assert.equal(status(h, 'j1'), 'TIMED_OUT');
    });
  });

  test('timers survive a restart mid IN_PROGRESS', async () => {
    await withHarness({ minuteMs: MINUTE }, async (h) => {
      await withThing(h);
      h.svc.controlPlane.createJob({ jobId: 'j1', targets: [thingArn('car-1')], document: DOC });
      await h.request('car-1', 'start-next', { stepTimeoutInMinutes: 2 });
      h.restart();
      assert.equal(status(h, 'j1'), 'IN_PROGRESS');
      assert.equal(h.clock.pending, 1, 'the closed service left no timer behind; the new one armed its own');
      const mark = h.sent.length;
      await h.advance(2 * MINUTE);
      assert.equal(status(h, 'j1'), 'TIMED_OUT');
      only(h.since(mark), T('car-1', 'notify'));
    });
  });

  test('a timer that expired while the service was down fires on start', async () => {
    await withHarness({ minuteMs: MINUTE }, async (h) => {
      await withThing(h);
      h.svc.controlPlane.createJob({ jobId: 'j1', targets: [thingArn('car-1')], document: DOC });
      await h.request('car-1', 'start-next', { stepTimeoutInMinutes: 1 });
      h.svc.close();
      h.clock.advanceSync(5 * MINUTE);
      h.restart();
      // Expired timers are applied before answering, so the device never sees a stale IN_PROGRESS.
      const r = only(
        await h.request('car-1', 'j1/update', { status: 'SUCCEEDED' }),
        T('car-1', 'j1/update/rejected'),
      );
      assert.equal(r.payload.code, 'InvalidStateTransition');
      assert.equal(r.payload.executionState.status, 'TIMED_OUT');
    });
  });
});

describe('jobs service: cancel and delete', () => {
  test('cancelJob without force spares IN_PROGRESS; with force cancels it', async () => {
    await withHarness(async (h) => {
      const cp = h.svc.controlPlane;
      await withThing(h, 'car-1');
      await withThing(h, 'car-2');
      cp.createJob({ jobId: 'j1', targets: [thingArn('car-1'), thingArn('car-2')], document: DOC });
      await h.request('car-1', 'start-next', {});
      let mark = h.sent.length;
      const job = cp.cancelJob('j1', { comment: 'bad build', reasonCode: 'BAD_BUILD_1' });
      assert.equal(job.status, 'CANCELED');
      assert.equal(job.comment, 'bad build');
      assert.equal(job.reasonCode, 'BAD_BUILD_1');
      await h.svc.idle();
      let msgs = h.since(mark);
      // car-2's QUEUED execution is canceled: notify without the job, notify-next with {timestamp} only.
      assert.deepEqual(only(msgs, T('car-2', 'notify')).payload.jobs, {});
      assert.deepEqual(Object.keys(only(msgs, T('car-2', 'notify-next')).payload), ['timestamp']);
      none(msgs, T('car-1', 'notify'));
      assert.equal(cp.describeJobExecution('j1', 'car-1').status, 'IN_PROGRESS');
      assert.equal(cp.describeJobExecution('j1', 'car-2').status, 'CANCELED');
      const rej = only(
        await h.request('car-2', 'j1/update', { status: 'IN_PROGRESS' }),
        T('car-2', 'j1/update/rejected'),
      );
      assert.equal(rej.payload.code, 'InvalidStateTransition');
      assert.equal(rej.payload.executionState.status, 'CANCELED');

      mark = h.sent.length;
      const forced = cp.cancelJob('j1', { force: true });
      assert.equal(forced.forceCanceled, true);
      await h.svc.idle();
      msgs = h.since(mark);
      assert.deepEqual(only(msgs, T('car-1', 'notify')).payload.jobs, {});
      assert.deepEqual(Object.keys(only(msgs, T('car-1', 'notify-next')).payload), ['timestamp']);
      const e1 = cp.describeJobExecution('j1', 'car-1');
      assert.equal(e1.status, 'CANCELED');
      assert.equal(e1.forceCanceled, true);
      const d = cp.describeJob('j1');
      assert.equal(d.job.status, 'CANCELED');
      assert.equal(d.processDetails.numberOfCanceledThings, 2);
    });
  });

  test('cancelling moves notify-next to the next job', async () => {
    await withHarness(async (h) => {
      const cp = h.svc.controlPlane;
      await withThing(h);
      cp.createJob({ jobId: 'a', targets: [thingArn('car-1')], document: DOC });
      h.clock.advanceSync(5);
      cp.createJob({ jobId: 'b', targets: [thingArn('car-1')], document: DOC });
      await h.svc.idle();
      const mark = h.sent.length;
      cp.cancelJob('a', {});
      await h.svc.idle();
      const msgs = h.since(mark);
      assert.deepEqual(
        only(msgs, T('car-1', 'notify')).payload.jobs.QUEUED.map((s: { jobId: string }) => s.jobId),
        ['b'],
      );
      assert.equal(only(msgs, T('car-1', 'notify-next')).payload.execution.jobId, 'b');
    });
  });

  test('cancelJobExecution: force, expectedVersion, terminal', async () => {
    await withHarness(async (h) => {
      const cp = h.svc.controlPlane;
      await withThing(h);
      cp.createJob({ jobId: 'j1', targets: [thingArn('car-1')], document: DOC });
      await h.request('car-1', 'start-next', {});
      assert.throws(
        () => cp.cancelJobExecution('j1', 'car-1', {}),
        cpCode('InvalidStateTransitionException', /force/),
      );
      assert.throws(
        () => cp.cancelJobExecution('j1', 'car-1', { force: true, expectedVersion: 1 }),
        cpCode('VersionConflictException'),
      );
      assert.throws(
        () => cp.cancelJobExecution('j1', 'car-1', { force: true, statusDetails: { 'bad key': 'x' } }),
        cpCode('InvalidRequestException', /statusDetails/),
      );
      assert.throws(() => cp.cancelJobExecution('j1', 'nobody', {}), cpCode('ResourceNotFoundException'));
      assert.throws(() => cp.cancelJobExecution('zz', 'car-1', {}), cpCode('ResourceNotFoundException'));
      cp.cancelJobExecution('j1', 'car-1', {
        force: true,
        expectedVersion: 2,
        statusDetails: { why: 'operator' },
      });
      const e = cp.describeJobExecution('j1', 'car-1');
      assert.equal(e.status, 'CANCELED');
      assert.equal(e.versionNumber, 3);
      assert.deepEqual(e.statusDetails, { why: 'operator' });
      assert.throws(
        () => cp.cancelJobExecution('j1', 'car-1', { force: true }),
        cpCode('InvalidStateTransitionException'),
      );
      assert.equal(cp.describeJob('j1').job.status, 'COMPLETED');
      assert.throws(() => cp.cancelJob('j1', {}), cpCode('InvalidStateTransitionException'));
    });
  });

  test('deleteJob needs force while IN_PROGRESS; the device is told and then gets ResourceNotFound', async () => {
    await withHarness(async (h) => {
      const cp = h.svc.controlPlane;
      await withThing(h);
      cp.createJob({ jobId: 'j1', targets: [thingArn('car-1')], document: DOC });
      await h.request('car-1', 'start-next', {});
      assert.throws(() => cp.deleteJob('j1', {}), cpCode('InvalidStateTransitionException', /force/));
      const mark = h.sent.length;
      cp.deleteJob('j1', { force: true });
      await h.svc.idle();
      const msgs = h.since(mark);
      assert.deepEqual(only(msgs, T('car-1', 'notify')).payload.jobs, {});
      assert.deepEqual(Object.keys(only(msgs, T('car-1', 'notify-next')).payload), ['timestamp']);
      assert.throws(() => cp.describeJob('j1'), cpCode('ResourceNotFoundException'));
      assert.equal(
        only(await h.request('car-1', 'j1/get', {}), T('car-1', 'j1/get/rejected')).payload.code,
        'ResourceNotFound',
      );
      assert.equal(
        only(await h.request('car-1', 'j1/update', { status: 'SUCCEEDED' }), T('car-1', 'j1/update/rejected'))
          .payload.code,
        'ResourceNotFound',
      );
      // A completed job deletes without force; the id can then be reused.
      cp.createJob({ jobId: 'j1', targets: [thingArn('car-1')], document: DOC });
      await h.request('car-1', 'j1/update', { status: 'SUCCEEDED' });
      cp.deleteJob('j1', {});
      assert.throws(() => cp.deleteJob('j1', {}), cpCode('ResourceNotFoundException'));
    });
  });
});

describe('jobs service: control plane', () => {
  test('things and groups', async () => {
    await withHarness(async (h) => {
      const cp = h.svc.controlPlane;
      const t = cp.createThing({ thingName: 'car-1', attributes: { model: 'x1' } });
      assert.equal(t.thingArn, thingArn('car-1'));
      assert.equal(t.version, 1);
      assert.deepEqual(cp.createThing({ thingName: 'car-1', attributes: { model: 'x1' } }), t, 'idempotent');
      assert.throws(
        () => cp.createThing({ thingName: 'car-1', attributes: { model: 'x2' } }),
        cpCode('ResourceAlreadyExistsException'),
      );
      assert.throws(
        () => cp.createThing({ thingName: 'bad name' }),
        cpCode('InvalidRequestException', /\[a-zA-Z0-9:_-\]/),
      );
      assert.throws(() => cp.createThing({ thingName: 'x'.repeat(129) }), cpCode('InvalidRequestException'));
      assert.throws(() => cp.describeThing('ghost'), cpCode('ResourceNotFoundException'));
      const g = cp.createThingGroup({ thingGroupName: 'fleet', description: 'all cars' });
      assert.equal(g.thingGroupArn, groupArn('fleet'));
      assert.deepEqual(cp.describeThingGroup('fleet'), g);
      assert.throws(() => cp.describeThingGroup('nope'), cpCode('ResourceNotFoundException'));
      cp.addThingToThingGroup({ thingGroupName: 'fleet', thingName: 'car-1' });
      cp.addThingToThingGroup({ thingGroupName: 'fleet', thingName: 'car-1' });
      assert.deepEqual(cp.listThingsInThingGroup('fleet', {}).items, ['car-1']);
      assert.throws(
        () => cp.addThingToThingGroup({ thingGroupName: 'fleet', thingName: 'ghost' }),
        cpCode('ResourceNotFoundException'),
      );
    });
  });

  test('createJob validation', async () => {
    await withHarness(async (h) => {
      const cp = h.svc.controlPlane;
      await withThing(h);
      const base = { targets: [thingArn('car-1')], document: DOC };
      assert.throws(
        () => cp.createJob({ ...base, jobId: 'bad id!' }),
        cpCode('InvalidRequestException', /\[a-zA-Z0-9_-\]\{1,64\}/),
      );
      assert.throws(
        () => cp.createJob({ ...base, jobId: 'x'.repeat(65) }),
        cpCode('InvalidRequestException'),
      );
      const big = JSON.stringify({ pad: 'x'.repeat(32768) });
      assert.throws(
        () => cp.createJob({ ...base, jobId: 'big', document: big }),
        cpCode('InvalidRequestException', /32768/),
      );
      const exact = JSON.stringify({ p: 'x'.repeat(32768 - 8) });
      assert.equal(Buffer.byteLength(exact), 32768);
      cp.createJob({ ...base, jobId: 'exact', document: exact });
      assert.throws(
        () => cp.createJob({ ...base, jobId: 'bad', document: '{oops' }),
        cpCode('InvalidRequestException', /JSON/),
      );
      assert.throws(
        () => cp.createJob({ ...base, jobId: 'arr', document: '[1]' }),
        cpCode('InvalidRequestException', /object/),
      );
      assert.throws(
        () => cp.createJob({ jobId: 'nodoc', targets: base.targets }),
        cpCode('InvalidRequestException'),
      );
      assert.throws(
        () => cp.createJob({ ...base, jobId: 'both', documentSource: 'https://s3.amazonaws.com/b/k' }),
        cpCode('InvalidRequestException', /either/),
      );
      assert.throws(
        () =>
          cp.createJob({
            jobId: 'src',
            targets: base.targets,
            documentSource: 'https://s3.amazonaws.com/b/k',
          }),
        cpCode('InvalidRequestException', /documentSource/),
      );
      await assert.rejects(
        cp.createJobAsync({
          jobId: 'src',
          targets: base.targets,
          documentSource: 'https://s3.amazonaws.com/b/k',
        }),
        cpCode('InvalidRequestException', /documentSource/),
      );
      assert.throws(
        () => cp.createJob({ ...base, jobId: 'notarget', targets: [] }),
        cpCode('InvalidRequestException'),
      );
      assert.throws(
        () => cp.createJob({ ...base, jobId: 'ghost', targets: [thingArn('ghost')] }),
        cpCode('ResourceNotFoundException'),
      );
      assert.throws(
        () => cp.createJob({ ...base, jobId: 'ghostg', targets: [groupArn('ghost')] }),
        cpCode('ResourceNotFoundException'),
      );
      assert.throws(
        () =>
          cp.createJob({
            ...base,
            jobId: 'otheracct',
            targets: ['arn:aws:iot:us-west-2:111111111111:thing/car-1'],
          }),
        cpCode('ResourceNotFoundException'),
      );
      assert.throws(
        () => cp.createJob({ ...base, jobId: 'notarn', targets: ['car-1'] }),
        cpCode('InvalidRequestException', /ARN/),
      );
      assert.throws(
        () => cp.createJob({ ...base, jobId: 'exp', presignedUrlConfig: { expiresInSec: 30 } }),
        cpCode('InvalidRequestException', /expiresInSec/),
      );
      assert.throws(
        () => cp.createJob({ ...base, jobId: 'to', timeoutConfig: { inProgressTimeoutInMinutes: 10081 } }),
        cpCode('InvalidRequestException', /inProgressTimeoutInMinutes/),
      );
      cp.createJob({ ...base, jobId: 'dup' });
      assert.throws(() => cp.createJob({ ...base, jobId: 'dup' }), cpCode('ResourceAlreadyExistsException'));
      // Refused jobs left nothing behind.
      assert.deepEqual(
        cp.listJobs({}, {}).items.map((j) => j.jobId),
        ['exact', 'dup'],
      );
    });
  });

  test('createJobAsync resolves documentSource with fetchDocument', async () => {
    const fetched: string[] = [];
    const fetchDocument = async (url: string) => {
      fetched.push(url);
      if (url.endsWith('/missing')) throw new Error('NoSuchKey');
      return DOC;
    };
    await withHarness({ fetchDocument }, async (h) => {
      const cp = h.svc.controlPlane;
      await withThing(h);
      const src = 'https://s3.us-west-2.amazonaws.com/docs/job.json';
      const job = await cp.createJobAsync({ jobId: 'j1', targets: [thingArn('car-1')], documentSource: src });
      assert.equal(job.documentSource, src);
      assert.equal(cp.getJobDocument('j1'), DOC);
      assert.deepEqual(fetched, [src]);
      await assert.rejects(
        cp.createJobAsync({
          jobId: 'j2',
          targets: [thingArn('car-1')],
          documentSource: 'https://s3.amazonaws.com/b/missing',
        }),
        cpCode('InvalidRequestException', /NoSuchKey/),
      );
      await assert.rejects(
        cp.createJobAsync({ jobId: 'j3', targets: [thingArn('car-1')], documentSource: 'not a url' }),
        cpCode('InvalidRequestException', /URL/),
      );
      const plain = await cp.createJobAsync({ jobId: 'j4', targets: [thingArn('car-1')], document: DOC });
      assert.equal(plain.documentSource, undefined);
    });
  });

  test('SNAPSHOT vs CONTINUOUS group targets', async () => {
    await withHarness(async (h) => {
      const cp = h.svc.controlPlane;
      await withThing(h, 'car-1');
      await withThing(h, 'car-2');
      await withThing(h, 'car-3');
      cp.createThingGroup({ thingGroupName: 'fleet' });
      cp.addThingToThingGroup({ thingGroupName: 'fleet', thingName: 'car-1' });
      cp.createJob({ jobId: 'snap', targets: [groupArn('fleet'), thingArn('car-1')], document: DOC });
      cp.createJob({
        jobId: 'cont',
        targets: [groupArn('fleet')],
        document: DOC,
        targetSelection: 'CONTINUOUS',
      });
      assert.equal(cp.listJobExecutionsForJob('snap', {}, {}).items.length, 1, 'one execution per thing');
      await h.svc.idle();
      const mark = h.sent.length;
      cp.addThingToThingGroup({ thingGroupName: 'fleet', thingName: 'car-2' });
      await h.svc.idle();
      const msgs = h.since(mark);
      assert.deepEqual(
        only(msgs, T('car-2', 'notify')).payload.jobs.QUEUED.map((s: { jobId: string }) => s.jobId),
        ['cont'],
      );
      assert.equal(only(msgs, T('car-2', 'notify-next')).payload.execution.jobId, 'cont');
      assert.deepEqual(
        cp.listJobExecutionsForThing('car-2', {}, {}).items.map((e) => e.jobId),
        ['cont'],
      );
      assert.deepEqual(
        cp.listJobs({ targetSelection: 'CONTINUOUS' }, {}).items.map((j) => j.jobId),
        ['cont'],
      );
      // CONTINUOUS jobs never complete on their own; a canceled one no longer reaches new members.
      only(
        await h.request('car-1', 'cont/update', { status: 'SUCCEEDED' }),
        T('car-1', 'cont/update/accepted'),
      );
      only(
        await h.request('car-2', 'cont/update', { status: 'SUCCEEDED' }),
        T('car-2', 'cont/update/accepted'),
      );
      assert.equal(cp.describeJob('cont').job.status, 'IN_PROGRESS');
      cp.cancelJob('cont', {});
      cp.addThingToThingGroup({ thingGroupName: 'fleet', thingName: 'car-3' });
      assert.deepEqual(cp.listJobExecutionsForThing('car-3', {}, {}).items, []);
    });
  });

  test('pagination with opaque nextToken and maxResults', async () => {
    await withHarness(async (h) => {
      const cp = h.svc.controlPlane;
      for (let i = 0; i < 5; i++) cp.createThing({ thingName: `car-${i}` });
      const names: string[] = [];
      let token: string | undefined;
      let pages = 0;
      do {
        const p = cp.listThings({ maxResults: 2, ...(token === undefined ? {} : { nextToken: token }) });
        names.push(...p.items.map((t) => t.thingName));
        token = p.nextToken;
        pages++;
        if (token !== undefined) assert.doesNotMatch(token, /^\d+$/);
      } while (token !== undefined);
      assert.equal(pages, 3);
      assert.deepEqual(names, ['car-0', 'car-1', 'car-2', 'car-3', 'car-4']);
      assert.equal(cp.listThings({}).nextToken, undefined);
      assert.throws(() => cp.listThings({ maxResults: 0 }), cpCode('InvalidRequestException', /maxResults/));
      assert.throws(() => cp.listThings({ maxResults: 251 }), cpCode('InvalidRequestException'));
      assert.throws(
        () => cp.listThings({ nextToken: 'garbage!' }),
        cpCode('InvalidRequestException', /nextToken/),
      );

      cp.createJob({
        jobId: 'j1',
        targets: ['car-0', 'car-1', 'car-2', 'car-3', 'car-4'].map(thingArn),
        document: DOC,
      });
      const first = cp.listJobExecutionsForJob('j1', {}, { maxResults: 3 });
      assert.equal(first.items.length, 3);
      const second = cp.listJobExecutionsForJob('j1', {}, { maxResults: 3, nextToken: first.nextToken });
      assert.deepEqual(
        [...first.items, ...second.items].map((e) => e.thingName),
        ['car-0', 'car-1', 'car-2', 'car-3', 'car-4'],
      );
      assert.equal(second.nextToken, undefined);
      assert.equal(cp.listJobExecutionsForJob('j1', { status: 'IN_PROGRESS' }, {}).items.length, 0);
      assert.throws(() => cp.listJobExecutionsForJob('nope', {}, {}), cpCode('ResourceNotFoundException'));
    });
  });
});

describe('jobs service: persistence', () => {
  test('close and reopen keeps everything and does not repeat notify-next', async () => {
    await withHarness(async (h) => {
      const cp = h.svc.controlPlane;
      await withThing(h);
      cp.createThingGroup({ thingGroupName: 'fleet' });
      cp.addThingToThingGroup({ thingGroupName: 'fleet', thingName: 'car-1' });
      cp.createJob({
        jobId: 'j1',
        targets: [groupArn('fleet')],
        document: DOC,
        targetSelection: 'CONTINUOUS',
      });
      await h.request('car-1', 'start-next', {});
      await h.request('car-1', 'j1/update', { status: 'IN_PROGRESS', statusDetails: { p: '1' } });
      const before = cp.describeJobExecution('j1', 'car-1');
      h.restart();
      const mark = h.sent.length;
      const after = h.svc.controlPlane.describeJobExecution('j1', 'car-1');
      assert.deepEqual(after, before);
      assert.deepEqual(h.svc.controlPlane.listThingsInThingGroup('fleet', {}).items, ['car-1']);
      assert.equal(h.svc.controlPlane.describeJob('j1').job.targetSelection, 'CONTINUOUS');
      const r = only(
        await h.request('car-1', 'j1/update', {
          status: 'IN_PROGRESS',
          expectedVersion: before.versionNumber,
        }),
        T('car-1', 'j1/update/accepted'),
      );
      assert.ok(r);
      assert.equal(
        h.svc.controlPlane.describeJobExecution('j1', 'car-1').versionNumber,
        before.versionNumber + 1,
      );
      none(h.since(mark), T('car-1', 'notify-next'));
    });
  });

  test('kill -9 loses nothing that was acknowledged and never moves versionNumber back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jobs-kill-'));
    const dbPath = join(dir, 'jobs.db');
    const serviceUrl = new URL('../../../../src/cloud/jobs/service.ts', import.meta.url).href;
    // The child acknowledges each committed update on stdout, then gets SIGKILLed mid-stream.
    const script = `
      import { createJobsService } from ${JSON.stringify(serviceUrl)};
      const svc = createJobsService({ dbPath: ${JSON.stringify(dbPath)}, publish: () => {}, presign: async (u) => u });
      const cp = svc.controlPlane;
      cp.createThing({ thingName: 'car-1' });
      cp.createJob({ jobId: 'j1', targets: ['arn:aws:iot:us-west-2:000000000000:thing/car-1'], document: '{}' });
      let i = 0;
      const step = () => {
        i++;
        svc.topicService.onPublish({ kind: 'thing', thingName: 'car-1' }, '$aws/things/car-1/jobs/j1/update',
          Buffer.from(JSON.stringify({ status: 'IN_PROGRESS', statusDetails: { n: String(i) } })));
        process.stdout.write(cp.describeJobExecution('j1', 'car-1').versionNumber + '\\n');
        setImmediate(step);
      };
      step();
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('../../../../', import.meta.url)),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    try {
      await waitFor(
        () => out.split('\n').length > 30 || child.exitCode !== null,
        'the child to make progress',
        20000,
      );
      assert.equal(child.exitCode, null, `child died early: ${err}`);
      child.kill('SIGKILL');
      await exited;
      const acked = out
        .split('\n')
        .filter((l) => /^\d+$/.test(l))
        .map(Number);
      const lastAck = acked.at(-1) ?? 0;
      assert.ok(lastAck > 10);
      const svc = createJobsService({ dbPath, publish: () => {}, presign: async (u) => u });
      try {
        const e = svc.controlPlane.describeJobExecution('j1', 'car-1');
        assert.ok(e.versionNumber >= lastAck, `versionNumber ${e.versionNumber} ≥ acknowledged ${lastAck}`);
        assert.equal(e.status, 'IN_PROGRESS');
        // statusDetails and versionNumber come from the same commit.
        assert.equal(e.statusDetails.n, String(e.versionNumber - 1));
        assert.equal(
          svc.controlPlane.listJobExecutionsForJob('j1', {}, {}).items.length,
          1,
          'not duplicated',
        );
      } finally {
        svc.close();
      }
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a database from a newer schema is refused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jobs-schema-'));
    try {
      const dbPath = join(dir, 'jobs.db');
      const { default: Database } = await import('better-sqlite3');
      const db = new Database(dbPath);
      db.pragma('user_version = 99');
      db.close();
      assert.throws(
        () => createJobsService({ dbPath, publish: () => {}, presign: async (u) => u }),
        (e: unknown) => e instanceof Error && /schema version 99/.test(e.message),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test(':memory: works for quick use', async () => {
    const sent: string[] = [];
    const svc = createJobsService({
      dbPath: ':memory:',
      publish: (t) => {
        sent.push(t);
      },
      presign: async (u) => u,
    });
    try {
      svc.controlPlane.createThing({ thingName: 'car-1' });
      svc.controlPlane.createJob({ jobId: 'j', targets: [thingArn('car-1')], document: DOC });
      await svc.idle();
      assert.deepEqual(sent, [T('car-1', 'notify'), T('car-1', 'notify-next')]);
    } finally {
      svc.close();
    }
  });
});
