import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { AgentConfig } from '../../../src/device/config/agent-config.ts';
import type { DeviceHooks } from '../../../src/device/install/hooks.ts';
import { StateStore } from '../../../src/device/install/state.ts';
import {
  commitStep,
  healthStep,
  installStep,
  type JobContext,
  newJobContext,
  type Pipeline,
  rebootStep,
  reportStep,
  runPipeline,
  type Step,
  type StepEnv,
  type StepName,
} from '../../../src/device/pipeline.ts';
import { JobProgress } from '../../../src/device/progress/reporter.ts';
import { resumeFrom } from '../../../src/device/steps/device.ts';
import { silentLogger } from '../../../src/shared/log.ts';
import { ManualTimers } from '../../../src/shared/timers.ts';

/** The device half of the pipeline, on fake Jobs and fake hooks: the contract later helpers build on. */
async function harness(hooks: DeviceHooks, maxBootAttempts = 3, stop = new AbortController()) {
  const dir = await mkdtemp(join(tmpdir(), 'ota-pipe-'));
  const updates: { status: string; details: Record<string, string> }[] = [];
  const state = new StateStore(dir, '1');
  await state.load();
  const timers = new ManualTimers();
  const jobs = {
    startNext: async () => undefined,
    describe: async () => undefined,
    getPending: async () => ({ inProgressJobs: [], queuedJobs: [] }),
    update: async (_id: string, status: string, details?: Record<string, string>) => {
      updates.push({ status, details: details ?? {} });
      return undefined;
    },
  };
  const env = (ctx: JobContext): StepEnv => ({
    config: { downloadDir: dir, maxBootAttempts } as AgentConfig,
    logger: silentLogger,
    write: () => {},
    signal: stop.signal,
    stopSignal: stop.signal,
    jobs,
    openSource: () => {
      throw new Error('no downloads here');
    },
    progress: new JobProgress({
      channel: { publish: async () => true, update: jobs.update },
      thingName: 't',
      topic: 'CarVi/test/firmware/t',
      timeZone: 'UTC',
      progressIntervalMs: 1000,
      statusDetailsIntervalMs: 1000,
      finalTimeoutMs: 10,
      timers,
      subject: () => ({ jobId: ctx.jobId, startedAt: 0 }),
    }),
    state,
    timers,
    invalidJobIds: new Set(),
    hooks,
    trustedKeys: [],
  });
  const ctx = (): JobContext => {
    const c = newJobContext(state.currentVersion, 0);
    c.jobId = 'job-1';
    c.execution = { jobId: 'job-1', status: 'IN_PROGRESS', executionNumber: 1 };
    c.document = { version: '2', size: 3, region: 'us-west-2', url: 's3://b/k/fw.img' };
    c.download = {
      path: join(dir, 'fw.img'),
      bytes: 3,
      sha256: 'ab'.repeat(32),
      resumedFrom: 0,
      requests: 1,
      restarts: 0,
      refreshes: 0,
      bytesReceived: 3,
      startedAt: 0,
      renamedAt: 1000,
    };
    return c;
  };
  // start-next as the agent runs it, minus the network: a pending record is the resume entry point.
  const startNext: Step = {
    name: 'start-next',
    async run(c, e) {
      const pending = e.state.current.pending;
      if (!pending) return undefined;
      resumeFrom(c, e, pending);
      return { goto: 'reboot' };
    },
  };
  const steps: Step[] = [startNext, installStep, rebootStep, healthStep, commitStep];
  const pipeline: Pipeline = { steps, final: reportStep };
  const run = async (c: JobContext) => {
    const seen: string[] = [];
    await runPipeline(pipeline, c, env(c), {
      onStepEnd: (s: StepName, _ms, err) => seen.push(err ? `${s}!` : s),
    });
    return seen;
  };
  return { dir, state, updates, ctx, run, close: () => rm(dir, { recursive: true, force: true }) };
}

describe('the device steps: install → reboot → health → commit, or rollback', () => {
  test('no reboot hook: install, health and commit run in one go; the pending record comes and goes', async () => {
    const calls: string[] = [];
    const h = await harness({
      install: async (c) => {
        calls.push(`install ${c.previousVersion}>${c.version}`);
      },
      health: async () => {
        calls.push('health');
      },
    });
    try {
      const c = h.ctx();
      const seen = await h.run(c);
      assert.deepEqual(seen, ['start-next', 'install', 'reboot', 'health', 'commit', 'report']);
      assert.deepEqual(calls, ['install 1>2', 'health']);
      assert.equal(c.summary.status, 'SUCCEEDED');
      assert.equal(h.state.currentVersion, '2');
      assert.equal(h.state.current.pending, undefined);
      assert.deepEqual(
        h.updates.map((u) => [u.status, u.details.step]),
        [
          ['IN_PROGRESS', 'install'],
          ['IN_PROGRESS', 'health'],
          ['SUCCEEDED', undefined],
        ],
      );
    } finally {
      await h.close();
    }
  });

  test('a stop that lands as the install command succeeds: recorded pending for the next start, nothing after it runs', async () => {
    // The install command exits 0 at the moment SIGTERM arrives: the stop comes too late to kill it, and
    // the steps after it (reboot, health, commit) must not run for an agent that was told to stop.
    const stop = new AbortController();
    const calls: string[] = [];
    const hooks: DeviceHooks = {
      install: async () => {
        calls.push('install');
        stop.abort();
      },
      reboot: async () => {
        calls.push('reboot');
      },
      health: async () => {
        calls.push('health');
      },
    };
    const h = await harness(hooks, 3, stop);
    try {
      const c = h.ctx();
      const seen = await h.run(c);
      assert.deepEqual(seen, ['start-next', 'install', 'report']);
      assert.deepEqual(calls, ['install']);
      assert.equal(c.summary.status, 'INTERRUPTED', 'the job stays IN_PROGRESS');
      assert.deepEqual(
        h.updates.map((u) => u.status),
        ['IN_PROGRESS'],
      );
      assert.equal(h.state.current.pending?.toVersion, '2', 'the install is recorded: not run again');
      assert.equal(h.state.currentVersion, '1');
    } finally {
      await h.close();
    }
  });

  test('with a reboot hook: step=rebooting, the pipeline ends REBOOTING, the record waits', async () => {
    const h = await harness({ install: async () => {}, reboot: async () => {}, health: async () => {} });
    try {
      const c = h.ctx();
      const seen = await h.run(c);
      assert.deepEqual(seen, ['start-next', 'install', 'reboot', 'report']);
      assert.equal(c.summary.status, 'REBOOTING');
      assert.equal(h.updates.at(-1)?.details.step, 'rebooting');
      assert.equal(h.state.current.pending?.toVersion, '2');
      assert.equal(h.state.currentVersion, '1');
    } finally {
      await h.close();
    }
  });

  test('a failed self-test runs the rollback and says so; the old version stays', async () => {
    const calls: string[] = [];
    const h = await harness({
      install: async () => {},
      health: async () => {
        throw new Error('no camera');
      },
      rollback: async (c) => {
        calls.push(`rollback to ${c.previousVersion}`);
      },
    });
    try {
      const c = h.ctx();
      const seen = await h.run(c);
      assert.deepEqual(seen, ['start-next', 'install', 'reboot', 'health!', 'rollback', 'report']);
      assert.deepEqual(calls, ['rollback to 1']);
      assert.equal(c.summary.status, 'FAILED');
      assert.equal(h.updates.at(-1)?.details.reason, 'rolled back to 1: self-test failed: no camera');
      assert.equal(h.state.currentVersion, '1');
      assert.equal(h.state.current.pending, undefined);
    } finally {
      await h.close();
    }
  });

  test('the resume entry point: after the reboot, health and commit; past --max-boot-attempts, rollback', async () => {
    const calls: string[] = [];
    const h = await harness(
      {
        install: async () => {},
        reboot: async () => {},
        health: async () => {
          calls.push('health');
        },
        rollback: async () => {
          calls.push('rollback');
        },
      },
      2,
    );
    try {
      await h.run(h.ctx()); // install, then REBOOTING
      const boot = async (attempts: number) => {
        await h.state.update((s) =>
          s.pending ? { ...s, pending: { ...s.pending, bootAttempts: attempts } } : s,
        );
        const c = h.ctx();
        delete c.download;
        return { c, seen: await h.run(c) };
      };
      const ok = await boot(1);
      assert.deepEqual(ok.seen, ['start-next', 'reboot', 'health', 'commit', 'report']);
      assert.equal(ok.c.summary.status, 'SUCCEEDED');
      assert.equal(h.state.currentVersion, '2');
      // again, but the device never got to a commit: the third start is one too many
      const c2 = h.ctx();
      c2.document = { ...(c2.document as NonNullable<JobContext['document']>), version: '3' };
      await h.run(c2);
      calls.length = 0;
      const over = await boot(3);
      assert.deepEqual(over.seen, ['start-next', 'reboot!', 'rollback', 'report']);
      assert.deepEqual(calls, ['rollback']);
      assert.equal(
        over.c.summary.reason,
        'rolled back to 2: no commit after 2 boot attempts (--max-boot-attempts 2)',
      );
      assert.equal(h.state.currentVersion, '2');
      assert.equal(h.state.current.pending, undefined);
    } finally {
      await h.close();
    }
  });
});
