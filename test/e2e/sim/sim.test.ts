import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { startLocalStack } from '../../../src/cloud/stack.ts';
import { iotClientFor } from '../../../src/operator/clients.ts';
import { listExecutions } from '../../../src/operator/jobs.ts';
import { ValidationError } from '../../../src/shared/errors.ts';
import { type FleetEvent, runFleet, thingNames } from '../../../src/sim/fleet.ts';
import { findListeningPid, readProcStats } from '../../../src/sim/proc.ts';

describe('fleet simulator (ota sim) end to end', () => {
  test('embedded stack: 5 devices take a 64 KiB image, all SUCCEEDED, scratch removed, figures present', async () => {
    const scratch = await mkdtemp(join(tmpdir(), 'ota-sim-test-'));
    const events: FleetEvent[] = [];
    try {
      const s = await runFleet({
        devices: 5,
        imageSize: 64 * 1024,
        concurrency: 2,
        scratchDir: scratch,
        jobId: 'sim-e2e-embedded',
        onEvent: (e) => events.push(e),
      });
      assert.equal(s.succeeded, 5);
      assert.equal(s.failed, 0);
      assert.deepEqual(s.failures, []);
      assert.equal(s.jobId, 'sim-e2e-embedded');
      assert.equal(s.target, 'embedded');
      assert.equal(s.certificates.issued, 5);
      assert.match(s.sha256, /^[0-9a-f]{64}$/);
      assert.ok(s.durationMs > 0);
      assert.ok(s.devicesPerMinute > 0);
      // Each agent at least: start-next, a first and a final progress message, the SUCCEEDED update.
      assert.ok(s.mqtt.devicePublishes >= 5 * 4, `devicePublishes ${s.mqtt.devicePublishes}`);
      assert.ok(s.mqtt.progressMessages >= 5 * 2, `progressMessages ${s.mqtt.progressMessages}`);
      assert.ok((s.mqtt.brokerPublishes ?? 0) >= s.mqtt.devicePublishes, 'the broker saw the devices');
      assert.ok(s.downloadSeconds.max >= s.downloadSeconds.median);
      assert.ok(s.stack, 'stack figures');
      assert.equal(s.stack.where, 'shared');
      assert.ok(s.stack.peakRssMiB > 0);
      assert.ok(s.simProcess.peakRssMiB > 0);
      assert.equal(s.scratchRemoved, true);
      assert.deepEqual(readdirSync(scratch), [], 'the run left nothing in the scratch dir');
      const phases = events.flatMap((e) => (e.type === 'phase' ? [e.phase] : []));
      assert.deepEqual(phases, ['stack', 'things', 'image', 'connect', 'job', 'run', 'cleanup']);
      const last = events.filter((e) => e.type === 'tally').at(-1);
      assert.ok(last?.type === 'tally');
      assert.deepEqual(last.tally, {
        total: 5,
        notified: 5,
        queued: 0,
        inProgress: 0,
        succeeded: 5,
        failed: 0,
        rejected: 0,
        timedOut: 0,
        canceled: 0,
      });
      assert.equal(s.unexpected, 0);
      assert.equal(s.jobStatus, 'COMPLETED');
      assert.equal(s.canceledAtEnd, false);
      assert.deepEqual(s.roles, { ok: 5, fail: 0, reject: 0, timeout: 0, offline: 0 });
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  });

  test('running stack: things and certificates are reused; the service records every execution SUCCEEDED', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'ota-sim-stack-test-'));
    const stack = await startLocalStack({ dataDir, things: [] });
    try {
      const first = await runFleet({
        devices: 3,
        imageSize: 10_000,
        jobId: 'sim-e2e-run1',
        target: { kind: 'local', dataDir, stackPid: process.pid },
      });
      assert.equal(first.succeeded, 3);
      assert.deepEqual(first.certificates, { issued: 3, reused: 0 });
      const second = await runFleet({
        devices: 3,
        imageSize: 10_000,
        jobId: 'sim-e2e-run2',
        target: { kind: 'local', dataDir, stackPid: process.pid },
      });
      assert.equal(second.succeeded, 3);
      assert.deepEqual(second.certificates, { issued: 0, reused: 3 });
      assert.equal(second.stack?.pid, process.pid);
      // A smaller fleet in the same group: sim-0003 would get an execution no agent takes.
      await assert.rejects(
        runFleet({
          devices: 2,
          imageSize: 10_000,
          target: { kind: 'local', dataDir, stackPid: process.pid },
        }),
        /sim-fleet has 3 things, 1 of them not in this simulation \(e\.g\. sim-0003\).*another --group/,
      );

      const iot = iotClientFor({ kind: 'local', endpoints: stack.endpoints });
      try {
        const rows = await listExecutions(iot, 'sim-e2e-run2', { details: false });
        assert.deepEqual(rows.map((r) => [r.thingName, r.status]).sort(), [
          ['sim-0001', 'SUCCEEDED'],
          ['sim-0002', 'SUCCEEDED'],
          ['sim-0003', 'SUCCEEDED'],
        ]);
      } finally {
        iot.destroy();
      }
      // endpoints.json lists the simulated things, so `ota agent --local <dir> -n sim-0001` works.
      const endpoints = JSON.parse(readFileSync(join(dataDir, 'endpoints.json'), 'utf8')) as {
        things: Record<string, unknown>;
      };
      assert.deepEqual(Object.keys(endpoints.things).sort(), thingNames('sim-', 3));
      // The stack's MQTT listener belongs to this process.
      assert.equal(findListeningPid(stack.endpoints.mqtt.port), process.pid);
    } finally {
      await stack.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  test('workers: the agents in 2 child processes; a hung execution is released across the process boundary', async () => {
    const s = await runFleet({
      devices: 6,
      imageSize: 16 * 1024,
      workers: 2,
      jobId: 'sim-e2e-workers',
      faults: { timeout: 0.34, fail: 0.17 },
      job: { inProgressTimeoutInMinutes: 2 },
      target: { kind: 'embedded', minuteMs: 1500 },
      timeoutMs: 60_000,
    });
    assert.deepEqual(s.roles, { ok: 3, fail: 1, reject: 0, timeout: 2, offline: 0 });
    assert.equal(s.outcomes.succeeded, 3);
    assert.equal(s.outcomes.failed, 1);
    assert.equal(s.outcomes.timedOut, 2);
    assert.equal(s.unexpected, 0, JSON.stringify(s.failures));
    assert.equal(s.simProcess.processes, 3, 'this process and 2 workers');
    assert.ok(s.mqtt.devicePublishes >= 6 * 3, `devicePublishes ${s.mqtt.devicePublishes}`);
    assert.ok(s.downloadSeconds.max > 0);
    assert.equal(s.scratchRemoved, true);
  });

  test('bad arguments are refused before anything starts', async () => {
    await assert.rejects(runFleet({ devices: 0 }), ValidationError);
    await assert.rejects(runFleet({ devices: 2, jobId: 'bad id!' }), ValidationError);
    await assert.rejects(runFleet({ devices: 2, concurrency: 0 }), ValidationError);
    await assert.rejects(runFleet({ devices: 2, faults: { fail: 1.5 } }), /fail-rate/);
    await assert.rejects(runFleet({ devices: 2, faults: { fail: 0.6, offline: 0.6 } }), /add up to 1\.200/);
    await assert.rejects(runFleet({ devices: 2, seed: 0.5 }), /seed/);
    await assert.rejects(runFleet({ devices: 2, workers: -1 }), /workers/);
    await assert.rejects(runFleet({ devices: 2, target: { kind: 'embedded', minuteMs: 0 } }), /minute-ms/);
  });

  test('procfs figures of this process', () => {
    const s = readProcStats(process.pid);
    assert.ok(s, 'readable on Linux');
    assert.ok(s.peakRssBytes >= s.rssBytes && s.rssBytes > 0);
    assert.ok(s.userSec + s.sysSec > 0);
    assert.equal(readProcStats(2 ** 30), undefined);
  });
});
