import { rm } from 'node:fs/promises';
import { errorMessage, OtaError } from '../../shared/errors.ts';
import type { DownloadResult } from '../download/download.ts';
import type { HookCall, HookName } from '../install/hooks.ts';
import type { OutboxReport, PendingCommit } from '../install/state.ts';
import { type Compensation, type JobContext, need, type Step, type StepEnv } from '../job-context.ts';
import { sanitizeStatusDetails } from '../progress/message.ts';

/**
 * The steps that change the device: install, reboot (and resume after it), the self-test, commit, and
 * the rollback that undoes an install. None of them does anything without a hook: an agent with no
 * install command downloads, verifies and commits the version, as before.
 */

/** The self-test failed, or the device kept restarting without reaching it. */
export class SelfTestError extends OtaError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('OTA_SELF_TEST', message, options);
  }
}

/** What a hook is told: from the download, or after a restart from the pending-commit record. */
function hookCall(ctx: JobContext, env: StepEnv, name: HookName, signal: AbortSignal | undefined): HookCall {
  const r = ctx.resumed;
  const d = ctx.download;
  return {
    file: d?.path ?? r?.file ?? '',
    version: ctx.document?.version ?? r?.toVersion ?? '',
    previousVersion: ctx.currentVersion,
    jobId: ctx.jobId,
    ...(ctx.execution?.executionNumber !== undefined
      ? { executionNumber: ctx.execution.executionNumber }
      : r?.executionNumber !== undefined
        ? { executionNumber: r.executionNumber }
        : {}),
    sha256: d?.sha256 ?? r?.sha256 ?? '',
    ...(signal ? { signal } : {}),
    logger: env.logger,
    onOutput: (line, stream) => env.onHookOutput?.(name, line, stream),
  };
}

/** Runs the hook if there is one; false when there is none. */
async function runHook(
  name: HookName,
  ctx: JobContext,
  env: StepEnv,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  const hook = env.hooks[name];
  if (!hook) return false;
  await hook(hookCall(ctx, env, name, signal));
  return true;
}

/**
 * statusDetails.step for an operator; best effort (the step goes on when the connection is down). Only
 * `rebooting` is waited for: the operator must see it before the device goes quiet; the others must not
 * hold the install up for a Jobs request's timeouts.
 */
async function announce(env: StepEnv, step: string, wait = false): Promise<void> {
  const sent = env.progress.step(step).catch((err: unknown) => {
    env.logger.warn({ step, err: errorMessage(err) }, 'could not update statusDetails.step');
  });
  if (wait) await sent;
}

/**
 * The compensation an install registers: run the rollback hook (never interrupted by a cancel, only by
 * a stop of the agent), forget the pending record, and note it for the reason.
 */
function rollbackOf(ctx: JobContext, env: StepEnv): Compensation {
  return {
    what: 'roll back the install',
    step: 'rollback',
    async run(cause) {
      // Recorded before the switch back: a power cut during or after it resumes the rollback, never a
      // self-test (and a commit) on the old image under the new version.
      // Best effort: a state that cannot be written must not keep the old image from coming back.
      await env.state
        .update((s) =>
          s.pending
            ? { ...s, pending: { ...s.pending, phase: 'rolling-back', rollbackReason: errorMessage(cause) } }
            : s,
        )
        .catch((err: unknown) =>
          env.logger.error({ err: errorMessage(err) }, 'could not record the rollback'),
        );
      try {
        await runHook('rollback', ctx, env, env.stopSignal);
        ctx.rollback = { ok: true };
      } catch (err) {
        ctx.rollback = { ok: false, error: errorMessage(err) };
        throw err;
      }
      // The pending record goes with the report's write (outbox.ts), or with abandonPending.
    },
  };
}

/** The job's image, removed when the job fails after a restart (the fresh path's download step does it). */
function removeImageOf(pending: PendingCommit): Compensation {
  return { what: `remove ${pending.file}`, run: () => rm(pending.file, { force: true }) };
}

export const installStep: Step = {
  name: 'install',
  async run(ctx, env) {
    if (!env.hooks.install) return undefined;
    const d = need(ctx.download, 'download');
    const doc = need(ctx.document, 'document');
    await announce(env, 'install');
    await runHook('install', ctx, env, env.signal);
    ctx.undo.push(rollbackOf(ctx, env));
    const pending: PendingCommit = {
      jobId: ctx.jobId,
      ...(ctx.execution?.executionNumber !== undefined
        ? { executionNumber: ctx.execution.executionNumber }
        : {}),
      fromVersion: ctx.currentVersion,
      toVersion: doc.version,
      file: d.path,
      fileName: ctx.source?.fileName ?? '',
      sha256: d.sha256,
      bytes: d.bytes,
      downloadSeconds: (d.renamedAt - d.startedAt) / 1000,
      bootAttempts: 0,
      installedAt: new Date(env.timers.now()).toISOString(),
    };
    await env.state.update((s) => {
      const { inFlight: _done, ...rest } = s;
      return { ...rest, pending };
    });
    return undefined;
  },
};

/**
 * `reboot`, both halves. Fresh: after an install, set statusDetails.step = rebooting and run the reboot
 * command; the job stays IN_PROGRESS and the pipeline ends here (the agent exits, the device goes down).
 * Resumed (the entry point after a restart): check the boot-loop guard, then go on to the self-test.
 */
export const rebootStep: Step = {
  name: 'reboot',
  async run(ctx, env) {
    const r = ctx.resumed;
    if (r) {
      // Counted on disk before the self-test starts: a boot that never reaches it (no network yet) is
      // not an attempt, and one that crashes in it is.
      const attempts = r.bootAttempts + 1;
      await env.state.update((s) =>
        s.pending ? { ...s, pending: { ...s.pending, bootAttempts: attempts } } : s,
      );
      ctx.resumed = { ...r, bootAttempts: attempts };
      if (attempts > env.config.maxBootAttempts) {
        const n = attempts - 1;
        throw new SelfTestError(
          `no commit after ${n} boot attempt${n === 1 ? '' : 's'} (--max-boot-attempts ${env.config.maxBootAttempts})`,
        );
      }
      env.logger.info({ bootAttempts: attempts }, 'resumed after a restart; running the self-test');
      return undefined;
    }
    if (!env.hooks.install || !env.hooks.reboot) return undefined;
    await announce(env, 'rebooting', true);
    // Not tied to the agent's signal: a reboot that stops the agent must not be killed by that stop.
    await runHook('reboot', ctx, env, undefined);
    return { end: 'rebooting' };
  },
};

export const healthStep: Step = {
  name: 'health',
  async run(ctx, env) {
    if (!env.hooks.health) return undefined;
    await announce(env, 'health');
    try {
      await runHook('health', ctx, env, env.signal);
    } catch (err) {
      if (env.signal.aborted) throw err;
      throw new SelfTestError(`self-test failed: ${errorMessage(err)}`, { cause: err });
    }
    return undefined;
  },
};

/** The installer could not mark the new version good: it is rolled back, and the job FAILS. */
export class CommitError extends OtaError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('OTA_COMMIT', message, options);
  }
}

/** SUCCEEDED's statusDetails: what was installed, and after a restart how many self-tests it took. */
function succeededReport(ctx: JobContext, version: string): OutboxReport {
  const d = need(ctx.download, 'download');
  const executionNumber = ctx.execution?.executionNumber ?? ctx.resumed?.executionNumber;
  return {
    jobId: ctx.jobId,
    ...(executionNumber !== undefined ? { executionNumber } : {}),
    status: 'SUCCEEDED',
    statusDetails: sanitizeStatusDetails({
      version,
      bytes: d.bytes,
      sha256: d.sha256,
      seconds: ((d.renamedAt - d.startedAt) / 1000).toFixed(3),
      ...(ctx.resumed ? { bootAttempts: ctx.resumed.bootAttempts } : {}),
    }),
  };
}

/**
 * `commit`, in the order that makes every power cut resume truthfully (docs/agent.md, "Commit
 * protocol"): the pending record says `committing`; the installer marks the new version good (the
 * built-in slots check that it is the image running); then ONE write makes it the current version,
 * drops the pending record and records the SUCCEEDED report, which `report` sends. Cut before that
 * write, the restart commits again (the installer's mark is idempotent); cut after it, the restart
 * sends the report. A state that cannot be written fails the job (an install is rolled back) instead of
 * bumping the version in memory only.
 */
export const commitStep: Step = {
  name: 'commit',
  async run(ctx, env) {
    const version = ctx.document?.version ?? need(ctx.resumed, 'document').toVersion;
    const pending = env.state.current.pending;
    if (pending && pending.jobId === ctx.jobId && pending.phase !== 'committing')
      await env.state.update((s) =>
        s.pending ? { ...s, pending: { ...s.pending, phase: 'committing' } } : s,
      );
    try {
      await runHook('commit', ctx, env, undefined);
    } catch (err) {
      throw new CommitError(`the installer could not mark ${version} good: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    const report = succeededReport(ctx, version);
    const at = new Date(env.timers.now()).toISOString();
    await env.state.update((s) => {
      const { inFlight: _done, pending: _committed, ...rest } = s;
      return {
        ...rest,
        currentVersion: version,
        updatedAt: at,
        lastJob: { jobId: ctx.jobId, status: 'SUCCEEDED', version, at },
        report,
      };
    });
    return undefined;
  },
};

/**
 * The resume entry point: start-next handed back the job of the pending record. The context is rebuilt
 * from the record (what was installed) and the pipeline continues at `reboot` (its resumed half).
 */
export function resumeFrom(ctx: JobContext, env: StepEnv, pending: PendingCommit): void {
  ctx.resumed = pending;
  const installedAt = Date.parse(pending.installedAt) || env.timers.now();
  const download: DownloadResult = {
    path: pending.file,
    bytes: pending.bytes,
    sha256: pending.sha256,
    resumedFrom: 0,
    requests: 0,
    restarts: 0,
    refreshes: 0,
    bytesReceived: 0,
    startedAt: installedAt - pending.downloadSeconds * 1000,
    renamedAt: installedAt,
  };
  ctx.download = download;
  ctx.undo.push(removeImageOf(pending), rollbackOf(ctx, env));
}

/** An interrupted rollback, resumed after a restart: the job FAILS with the reason it had. */
export class ResumedRollbackError extends OtaError {
  constructor(reason: string) {
    super('OTA_ROLLBACK_RESUMED', reason);
  }
}

/**
 * A pending record whose job is no longer in progress (cancelled or timed out while the device was
 * rebooting): the new image was never confirmed, so it is rolled back and the record dropped.
 */
export async function abandonPending(env: StepEnv, pending: PendingCommit): Promise<void> {
  env.logger.warn(
    { jobId: pending.jobId, version: pending.toVersion },
    'the job of the pending install is over; rolling back the uncommitted image',
  );
  const ctx: JobContext = {
    jobId: pending.jobId,
    currentVersion: pending.fromVersion,
    startedAt: env.timers.now(),
    undo: [],
    summary: {
      jobId: pending.jobId,
      status: 'FAILED',
      bytes: 0,
      progressMessages: 0,
      statusDetailsUpdates: 0,
    },
  };
  resumeFrom(ctx, env, pending);
  const why = new Error(pending.rollbackReason ?? 'the job ended while the device was rebooting');
  for (const c of ctx.undo.reverse()) {
    await c.run(why).catch((err: unknown) => {
      env.logger.error({ what: c.what, err: errorMessage(err) }, 'could not undo the abandoned install');
    });
  }
  await env.state
    .update((s) => {
      const { pending: _gone, ...rest } = s;
      return rest;
    })
    .catch((err: unknown) =>
      env.logger.error({ err: errorMessage(err) }, 'could not clear the pending record'),
    );
}
