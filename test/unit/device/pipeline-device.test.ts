import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { AgentConfig } from '../../../src/device/config/agent-config.ts';
import { JobsRequestError } from '../../../src/device/errors.ts';
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
  startNextStep,
} from '../../../src/device/pipeline.ts';
import { JobProgress } from '../../../src/device/progress/reporter.ts';
import { ManualClock } from '../../../src/shared/clock.ts';
import type { JobExecution } from '../../../src/shared/jobs-protocol.ts';
import { silentLogger } from '../../../src/shared/log.ts';

/** The device half of the pipeline, on fake Jobs and fake hooks: the contract later helpers build on. */
async function harness(hooks: DeviceHooks, maxBootAttempts = 3, stop = new AbortController()) {
  const dir = await mkdtemp(join(tmpdir(), 'ota-pipe-'));
  const updates: { status: string; details: Record<string, string> }[] = [];
  /** While down, terminal reports do not reach the service (an outage, or a power cut before the send). */
  const link = { down: false, terminal: false };
  const state = new StateStore(dir, '1');
  await state.load();
  const timers = new ManualClock();
  const jobs = {
    startNext: async (): Promise<JobExecution | undefined> => undefined,
    describe: async () => undefined,
    getPending: async () => ({ inProgressJobs: [], queuedJobs: [] }),
    update: async (_id: string, status: string, details?: Record<string, string>) => {
      if (link.down && status !== 'IN_PROGRESS') throw new JobsRequestError('Disconnected', 'no connection');
      if (status !== 'IN_PROGRESS') link.terminal = true;
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
  /** The job's context as start-next builds it; `resumed`: the same execution after a restart. */
  const ctx = (o: { resumed?: boolean } = {}): JobContext => {
    if (!o.resumed) link.terminal = false;
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
    run: (c, e) => {
      // the service hands the execution out until it has a terminal status
      jobs.startNext = async () => (link.terminal ? undefined : c.execution);
      return startNextStep.run(c, e);
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
  /** A new process on the same disk: the state is read back from state.json. */
  const restart = () => state.load();
  return {
    dir,
    state,
    updates,
    link,
    ctx,
    run,
    restart,
    close: () => rm(dir, { recursive: true, force: true }),
  };
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
      // the n-th boot: n - 1 self-tests started before it without a commit
      const boot = async (n: number) => {
        await h.state.update((s) =>
          s.pending ? { ...s, pending: { ...s.pending, bootAttempts: n - 1 } } : s,
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

/**
 * The commit protocol (docs/agent.md, "Commit protocol"): a power cut at each recorded phase resumes to
 * one truthful end. A cut is a state.json left as the phase wrote it, then a new process on that disk.
 */
describe('the commit protocol: every cut resumes to the truth', () => {
  const hooksLog = (calls: string[], o: { health?: () => void } = {}): DeviceHooks => ({
    install: async () => {
      calls.push('install');
    },
    reboot: async () => {},
    health: async () => {
      calls.push('health');
      o.health?.();
    },
    rollback: async () => {
      calls.push('rollback');
    },
    commit: async () => {
      calls.push('commit');
    },
  });
  const resumedCtx = (h: Awaited<ReturnType<typeof harness>>) => {
    const c = h.ctx({ resumed: true });
    delete c.download;
    return c;
  };

  test('starts that never reach the self-test (no network) are not boot attempts', async () => {
    const calls: string[] = [];
    const h = await harness(hooksLog(calls), 1);
    try {
      await h.run(h.ctx()); // install, then REBOOTING
      // three starts that never got a connection: the state is read, nothing runs
      for (let i = 0; i < 3; i++) await h.restart();
      await h.restart();
      const c = resumedCtx(h);
      const seen = await h.run(c);
      assert.deepEqual(seen, ['start-next', 'reboot', 'health', 'commit', 'report']);
      assert.equal(c.summary.status, 'SUCCEEDED');
      assert.equal(h.updates.at(-1)?.details.bootAttempts, '1');
    } finally {
      await h.close();
    }
  });

  test('cut after the rollback switched back, before the report: the rollback completes, FAILED, no self-test', async () => {
    const calls: string[] = [];
    const h = await harness(
      hooksLog(calls, {
        health: () => {
          throw new Error('no camera');
        },
      }),
    );
    try {
      await h.run(h.ctx());
      h.link.down = true; // the FAILED report does not go out: the process dies here
      await h.restart();
      await assert.rejects(h.run(resumedCtx(h)), JobsRequestError);
      assert.equal(h.state.current.report?.status, 'FAILED');
      assert.equal(h.state.current.pending, undefined);
      calls.length = 0;
      h.link.down = false;
      await h.restart();
      const c = resumedCtx(h);
      await h.run(c);
      // the recorded FAILED went first; the job is not run again, the old image stays
      assert.deepEqual(calls, []);
      assert.equal(h.updates.at(-1)?.status, 'FAILED');
      assert.equal(h.updates.at(-1)?.details.reason, 'rolled back to 1: self-test failed: no camera');
      assert.equal(h.state.current.report, undefined);
      assert.equal(h.state.currentVersion, '1');
    } finally {
      await h.close();
    }
  });

  test('cut during the rollback (phase rolling-back): the restart rolls back again and reports the first reason', async () => {
    const calls: string[] = [];
    const h = await harness(hooksLog(calls));
    try {
      await h.run(h.ctx());
      await h.state.update((s) =>
        s.pending
          ? { ...s, pending: { ...s.pending, phase: 'rolling-back', rollbackReason: 'self-test failed: x' } }
          : s,
      );
      await h.restart();
      calls.length = 0;
      const c = resumedCtx(h);
      const seen = await h.run(c);
      assert.deepEqual(seen, ['start-next!', 'rollback', 'report']);
      assert.deepEqual(calls, ['rollback']);
      assert.equal(c.summary.status, 'FAILED');
      assert.equal(h.updates.at(-1)?.details.reason, 'rolled back to 1: self-test failed: x');
      assert.equal(h.state.current.pending, undefined);
      assert.equal(h.state.currentVersion, '1');
    } finally {
      await h.close();
    }
  });

  test('cut after the installer committed, before state.json (phase committing): commit again, SUCCEEDED', async () => {
    const calls: string[] = [];
    const h = await harness(hooksLog(calls));
    try {
      await h.run(h.ctx());
      await h.state.update((s) => (s.pending ? { ...s, pending: { ...s.pending, phase: 'committing' } } : s));
      await h.restart();
      calls.length = 0;
      const c = resumedCtx(h);
      const seen = await h.run(c);
      assert.deepEqual(seen, ['start-next', 'commit', 'report']);
      assert.deepEqual(calls, ['commit']);
      assert.equal(c.summary.status, 'SUCCEEDED');
      assert.equal(h.state.currentVersion, '2');
    } finally {
      await h.close();
    }
  });

  test('cut after the commit, before the SUCCEEDED report: the restart sends it, and never says "not newer"', async () => {
    const calls: string[] = [];
    const h = await harness(hooksLog(calls));
    try {
      await h.run(h.ctx());
      h.link.down = true;
      await h.restart();
      await assert.rejects(h.run(resumedCtx(h)), JobsRequestError);
      assert.equal(h.state.currentVersion, '2');
      assert.equal(h.state.current.report?.status, 'SUCCEEDED');
      h.link.down = false;
      await h.restart();
      calls.length = 0;
      await h.run(resumedCtx(h));
      assert.deepEqual(calls, []);
      assert.deepEqual(
        h.updates.filter((u) => u.status !== 'IN_PROGRESS').map((u) => [u.status, u.details.version]),
        [['SUCCEEDED', '2']],
      );
      assert.equal(h.state.current.report, undefined);
      assert.equal(h.state.current.lastJob?.status, 'SUCCEEDED');
    } finally {
      await h.close();
    }
  });

  test('an installer that cannot mark the new version good: rolled back, FAILED, the image removed', async () => {
    const calls: string[] = [];
    const h = await harness({
      ...hooksLog(calls),
      commit: async () => {
        throw new Error('slot a does not hold the image being committed');
      },
    });
    try {
      const { writeFileSync, existsSync } = await import('node:fs');
      const c0 = h.ctx();
      writeFileSync(c0.download?.path ?? '', 'img');
      await h.run(c0);
      await h.restart();
      const c = resumedCtx(h);
      await h.run(c);
      assert.equal(c.summary.status, 'FAILED');
      assert.match(
        h.updates.at(-1)?.details.reason ?? '',
        /^rolled back to 1: the installer could not mark 2 good: slot a does not hold/,
      );
      assert.equal(h.state.currentVersion, '1');
      assert.equal(existsSync(c0.download?.path ?? ''), false, "the failed job's image is removed");
    } finally {
      await h.close();
    }
  });
});
