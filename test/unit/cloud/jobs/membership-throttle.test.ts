/** RemoveThingFromThingGroup and REMOVED, DeleteThing, RequestThrottled, TerminalStateReached. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { assertErrorShape, cpCode, DOC, groupArn, none, only, T, thingArn, withHarness } from './harness.ts';

describe('thing membership and deletion', () => {
  test('leaving a CONTINUOUS job’s group: REMOVED; coming back restarts it; SNAPSHOT jobs keep theirs', async () => {
    await withHarness(async (h) => {
      const cp = h.svc.controlPlane;
      for (const g of ['g1', 'g2']) cp.createThingGroup({ thingGroupName: g });
      cp.createThing({ thingName: 'car-1' });
      cp.addThingToThingGroup({ thingGroupName: 'g1', thingName: 'car-1' });
      cp.createJob({
        jobId: 'cont',
        targets: [groupArn('g1')],
        document: DOC,
        targetSelection: 'CONTINUOUS',
      });
      cp.createJob({ jobId: 'snap', targets: [groupArn('g1')], document: DOC });
      cp.createJob({
        jobId: 'both',
        targets: [groupArn('g1'), groupArn('g2')],
        document: DOC,
        targetSelection: 'CONTINUOUS',
      });
      cp.addThingToThingGroup({ thingGroupName: 'g2', thingName: 'car-1' });
      await h.request('car-1', 'start-next', {});
      const mark = h.sent.length;
      cp.removeThingFromThingGroup({ thingGroupName: 'g1', thingName: 'car-1' });
      await h.svc.idle();
      assert.equal(cp.describeJobExecution('cont', 'car-1').status, 'REMOVED', 'IN_PROGRESS → REMOVED');
      assert.equal(
        cp.describeJobExecution('snap', 'car-1').status,
        'QUEUED',
        'SNAPSHOT: membership was fixed',
      );
      assert.equal(cp.describeJobExecution('both', 'car-1').status, 'QUEUED', 'still a target through g2');
      assert.equal(cp.describeJob('cont').processDetails.numberOfRemovedThings, 1);
      // The device learns it the AWS way: notify without the job, notify-next with the next one.
      const notify = h.since(mark).filter((m) => m.topic === T('car-1', 'notify'));
      assert.deepEqual(
        notify.at(-1)?.payload.jobs.QUEUED.map((s: { jobId: string }) => s.jobId),
        ['snap', 'both'],
      );
      const upd = only(
        await h.request('car-1', 'cont/update', { status: 'SUCCEEDED' }),
        T('car-1', 'cont/update/rejected'),
      );
      assert.equal(upd.payload.code, 'InvalidStateTransition');
      cp.addThingToThingGroup({ thingGroupName: 'g1', thingName: 'car-1' });
      const again = cp.describeJobExecution('cont', 'car-1');
      assert.deepEqual([again.executionNumber, again.status], [2, 'QUEUED']);
      assert.throws(
        () => cp.removeThingFromThingGroup({ thingGroupName: 'nope', thingName: 'car-1' }),
        cpCode('ResourceNotFoundException'),
      );
      cp.removeThingFromThingGroup({ thingGroupName: 'g2', thingName: 'car-1' }); // idempotent
      cp.removeThingFromThingGroup({ thingGroupName: 'g2', thingName: 'car-1' });
    });
  });

  test('DeleteThing: pending executions REMOVED, SNAPSHOT jobs complete, the hook fires after the commit', async () => {
    const deleted: string[] = [];
    await withHarness({ onThingDeleted: (name) => deleted.push(name) }, async (h) => {
      const cp = h.svc.controlPlane;
      for (const t of ['car-1', 'car-2']) cp.createThing({ thingName: t });
      cp.createThingGroup({ thingGroupName: 'g' });
      cp.addThingToThingGroup({ thingGroupName: 'g', thingName: 'car-1' });
      cp.createJob({ jobId: 'j', targets: [thingArn('car-1'), thingArn('car-2')], document: DOC });
      cp.createJob({
        jobId: 'paced',
        targets: [thingArn('car-1'), thingArn('car-2')],
        document: DOC,
        jobExecutionsRolloutConfig: { maximumPerMinute: 1 },
      });
      await h.request('car-2', 'j/update', { status: 'SUCCEEDED' });
      assert.throws(
        () => cp.deleteThing('car-1', { expectedVersion: 7 }),
        cpCode('VersionConflictException'),
      );
      assert.deepEqual(deleted, []);
      const mark = h.sent.length;
      cp.deleteThing('car-1', { expectedVersion: 1 });
      assert.deepEqual(deleted, ['car-1']);
      assert.throws(() => cp.describeThing('car-1'), cpCode('ResourceNotFoundException'));
      assert.deepEqual(cp.listThingsInThingGroup('g', {}).items, []);
      assert.equal(cp.describeJobExecution('j', 'car-1').status, 'REMOVED');
      assert.equal(cp.describeJob('j').job.status, 'COMPLETED');
      await h.svc.idle();
      none(h.since(mark), T('car-1', 'notify'));
      // AWS DeleteThing: a thing that does not exist is no error (and no second hook call).
      cp.deleteThing('car-1', {});
      assert.deepEqual(deleted, ['car-1']);
      assert.throws(() => cp.deleteThing('bad name!', {}), cpCode('InvalidRequestException'));
    });
  });
});

describe('Jobs MQTT API: RequestThrottled and TerminalStateReached', () => {
  test('over requestsPerSecondPerThing a request is answered RequestThrottled; other things are not affected', async () => {
    await withHarness({ requestsPerSecondPerThing: 2 }, async (h) => {
      for (const t of ['car-1', 'car-2']) h.svc.controlPlane.createThing({ thingName: t });
      only(await h.request('car-1', 'get', {}), T('car-1', 'get/accepted'));
      only(await h.request('car-1', 'get', {}), T('car-1', 'get/accepted'));
      const r = only(await h.request('car-1', 'get', { clientToken: 'c3' }), T('car-1', 'get/rejected'));
      assertErrorShape(r, 'RequestThrottled', 'c3');
      assert.equal(r.payload.message, 'thing car-1 made more than 2 Jobs requests per second');
      only(await h.request('car-2', 'get', {}), T('car-2', 'get/accepted'));
      await h.advance(500); // one token back
      only(await h.request('car-1', 'get', {}), T('car-1', 'get/accepted'));
      only(await h.request('car-1', 'get', {}), T('car-1', 'get/rejected'));
    });
  });

  test('TerminalStateReached: describing an ended execution of a finished job; a running one is still described', async () => {
    await withHarness(async (h) => {
      const cp = h.svc.controlPlane;
      for (const t of ['car-1', 'car-2']) cp.createThing({ thingName: t });
      cp.createJob({ jobId: 'j', targets: [thingArn('car-1'), thingArn('car-2')], document: DOC });
      await h.request('car-1', 'j/update', { status: 'SUCCEEDED' });
      // The job is still IN_PROGRESS (car-2 pending): the ended execution is described.
      only(await h.request('car-1', 'j/get', {}), T('car-1', 'j/get/accepted'));
      await h.request('car-2', 'start-next', {});
      cp.cancelJob('j', {});
      // car-2 runs on under a CANCELED job and may still fetch its document (fresh presigned URLs).
      only(await h.request('car-2', 'j/get', {}), T('car-2', 'j/get/accepted'));
      const r = only(await h.request('car-1', 'j/get', { clientToken: 't' }), T('car-1', 'j/get/rejected'));
      assertErrorShape(r, 'TerminalStateReached', 't');
      assert.equal(r.payload.message, 'job j is CANCELED and its execution on car-1 is SUCCEEDED');
    });
  });
});
