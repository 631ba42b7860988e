import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { DescribeJobExecutionCommand } from '@aws-sdk/client-iot';
import { formatFleetSummary } from '../../../src/cli/sim-view.ts';
import { type LocalStack, startLocalStack } from '../../../src/cloud/stack.ts';
import { iotClientFor } from '../../../src/operator/clients.ts';
import { describeJob, listExecutions } from '../../../src/operator/jobs.ts';
import { ManualClock } from '../../../src/shared/clock.ts';
import { SIMULATED_INSTALL_FAILURE } from '../../../src/sim/device.ts';
import { planRoles } from '../../../src/sim/faults.ts';
import { type FleetSummary, runFleet, thingNames } from '../../../src/sim/fleet.ts';
import { ota } from '../cli/helpers.ts';

/**
 * Moves the stack's clock past the in-progress timeout whenever the only executions in progress are those
 * of `hung` things: they time out at once instead of after real minutes, and no other device can, as
 * none is in progress then. Polls the service (a wait for an event, not for a time).
 */
function timeOutHung(
  stack: LocalStack,
  clock: ManualClock,
  jobId: string,
  hung: ReadonlySet<string>,
  timeoutMs: number,
): () => Promise<void> {
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      await new Promise((r) => setTimeout(r, 20));
      let inProgress: { thingName: string }[];
      try {
        inProgress = stack.jobs.controlPlane.listJobExecutionsForJob(
          jobId,
          { status: 'IN_PROGRESS' },
          { maxResults: 100 },
        ).items;
      } catch {
        continue; // the job is not created yet
      }
      if (inProgress.length > 0 && inProgress.every((e) => hung.has(e.thingName))) {
        await clock.advance(timeoutMs);
      }
    }
  })();
  return async () => {
    stopped = true;
    await loop;
  };
}

describe('ota sim with faults, end to end', () => {
  test('a fault mix: each device ends as its role says, through its own agent; a TIMED_OUT retry hangs again', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'ota-sim-faults-'));
    // The in-progress timeout of 2 minutes passes on the stack's clock, moved by timeOutHung.
    const clock = new ManualClock({ start: Date.now() });
    const stack = await startLocalStack({ dataDir, things: [], clock });
    const iot = iotClientFor({ kind: 'local', endpoints: stack.endpoints });
    const faults = { fail: 0.2, reject: 0.1, timeout: 0.1, offline: 0.1 };
    const roles = planRoles(20, faults, 7);
    const names = thingNames('sim-', 20);
    const hung = new Set(names.filter((_, i) => roles[i] === 'timeout'));
    const stopTimingOut = timeOutHung(stack, clock, 'sim-e2e-faults', hung, 2 * 60_000);
    try {
      const s = await runFleet({
        devices: 20,
        imageSize: 16 * 1024,
        jobId: 'sim-e2e-faults',
        target: { kind: 'local', dataDir, stackPid: process.pid },
        faults,
        seed: 7,
        job: { inProgressTimeoutInMinutes: 2, retry: [{ failureType: 'TIMED_OUT', numberOfRetries: 1 }] },
        timeoutMs: 120_000,
      });
      assert.deepEqual(s.roles, { ok: 10, fail: 4, reject: 2, timeout: 2, offline: 2 });
      assert.deepEqual(s.outcomes, {
        succeeded: 10,
        failed: 4,
        rejected: 2,
        timedOut: 2,
        canceled: 0,
        removed: 0,
        // The offline devices' executions wait for them; the sim cancels the job at the end.
        queued: 2,
        inProgress: 0,
        neverNotified: 0,
      });
      assert.equal(s.unexpected, 0, JSON.stringify(s.failures));
      assert.equal(s.failed, 8);
      assert.equal(s.jobStatus, 'IN_PROGRESS');
      assert.equal(s.canceledAtEnd, true);
      assert.equal(s.abort, undefined);
      assert.equal(s.scratchRemoved, true);

      // The service's records, thing by thing: the faults were the devices' own reports (or silence).
      const rows = await listExecutions(iot, 'sim-e2e-faults', { details: false });
      const byThing = new Map<string, { status: string; executionNumber?: number }[]>();
      for (const r of rows) byThing.set(r.thingName, [...(byThing.get(r.thingName) ?? []), r]);
      for (const [i, thing] of names.entries()) {
        const role = roles[i];
        const execs = (byThing.get(thing) ?? []).sort(
          (a, b) => (a.executionNumber ?? 0) - (b.executionNumber ?? 0),
        );
        const last = execs.at(-1);
        const { execution: details } = await iot.send(
          new DescribeJobExecutionCommand({ jobId: 'sim-e2e-faults', thingName: thing }),
        );
        if (role === 'ok') assert.equal(last?.status, 'SUCCEEDED', thing);
        if (role === 'fail') {
          assert.equal(last?.status, 'FAILED', thing);
          assert.equal(details?.statusDetails?.detailsMap?.reason, SIMULATED_INSTALL_FAILURE);
        }
        if (role === 'reject') {
          assert.equal(last?.status, 'REJECTED', thing);
          assert.match(
            details?.statusDetails?.detailsMap?.reason ?? '',
            /not newer than the current version 2\.0\.0/,
          );
        }
        if (role === 'timeout') {
          // Timed out, retried once (executionNumber 2), timed out again: the device never reported.
          assert.deepEqual(
            execs.map((e) => [e.executionNumber, e.status]),
            [
              [1, 'TIMED_OUT'],
              [2, 'TIMED_OUT'],
            ],
            thing,
          );
        }
        // Offline: queued, then cancelled by the sim at the end; never started.
        if (role === 'offline') {
          assert.equal(last?.status, 'CANCELED', thing);
          assert.equal(details?.startedAt, undefined, thing);
        }
      }
      const { job } = await describeJob(iot, 'sim-e2e-faults');
      assert.equal(job?.status, 'CANCELED');
    } finally {
      await stopTimingOut();
      iot.destroy();
      await stack.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  test('`ota sim --fail-rate … --abort … --max-per-minute …` aborts early; the summary says when and who was spared', async () => {
    const r = await ota(
      [
        'sim',
        '--devices',
        '30',
        '--image-size',
        '16KiB',
        '--fail-rate',
        '0.5',
        '--abort',
        'FAILED:20%:min5',
        '--max-per-minute',
        '6',
        '--minute-ms',
        '1000',
        '--job-id',
        'sim-e2e-abort',
        '--json',
      ],
      { timeoutMs: 120_000 },
    );
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as FleetSummary;
    assert.equal(s.jobStatus, 'CANCELED');
    assert.deepEqual(s.jobConfig.abort, [
      { failureType: 'FAILED', action: 'CANCEL', thresholdPercentage: 20, minNumberOfExecutedThings: 5 },
    ]);
    assert.equal(s.jobConfig.maxPerMinute, 6);
    assert.ok(s.abort, 'the job was aborted');
    assert.match(
      s.abort.reason,
      /^abortConfig: \d+ of \d+ executed job executions \(\d+\.\d\d%\) ended FAILED/,
    );
    assert.ok(s.abort.afterMs > 0 && s.abort.afterMs <= s.durationMs, JSON.stringify(s.abort));
    // Nothing is notified after the abort: whoever was not notified then never is.
    assert.equal(s.abort.spared.neverNotified, 30 - s.abort.countsAtAbort.notified);
    assert.ok(s.abort.spared.neverNotified > 0, 'aborted before the rollout reached everyone');
    assert.equal(s.abort.spared.canceledWhileQueued, s.outcomes.canceled);
    assert.equal(s.abort.spared.total, s.abort.spared.neverNotified + s.abort.spared.canceledWhileQueued);
    const o = s.outcomes;
    assert.equal(o.succeeded + o.failed + o.canceled + o.neverNotified, 30, JSON.stringify(o));
    assert.equal(o.inProgress + o.queued + o.rejected + o.timedOut, 0);
    assert.ok(o.failed >= 1);
    assert.equal(s.unexpected, 0, JSON.stringify(s.failures));
    assert.match(r.stderr, /the job was ABORTED after \d+\.\d\d s/);

    const text = formatFleetSummary(s);
    assert.match(text, /ABORTED +after \d+\.\d\d s: abortConfig:/);
    assert.match(text, /spared +\d+ devices: \d+ never notified, \d+ cancelled while queued/);
    assert.match(text, /--max-per-minute 6 --abort FAILED:20%:min5; ended CANCELED/);
  });
});
