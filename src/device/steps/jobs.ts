import { AbortedError, errorMessage } from '../../shared/errors.ts';
import type { JobExecution, PendingExecutions } from '../../shared/jobs-protocol.ts';
import { JOB_ID_PATTERN } from '../../shared/topics.ts';
import { parseJobDocument, resolveSource } from '../document/job-document.ts';
import { sweepPartials } from '../download/download.ts';
import { JobRejectedError, JobsRequestError } from '../errors.ts';
import { deliverReport, recordReport } from '../install/outbox.ts';
import type { OutboxReport, PendingCommit } from '../install/state.ts';
import type { JobContext, JobOutcome, Step, StepEnv, StepResult } from '../job-context.ts';
import { sanitizeStatusDetails } from '../progress/message.ts';
import { abandonPending, ResumedRollbackError, resumeFrom } from './device.ts';
import { s3Opt } from './document.ts';

/** The two steps that talk to the Jobs service: the first (take a job) and the last (say how it ended). */

/**
 * `start-next`: StartNextPendingJobExecution (docs/protocol.md, Requests and replies). The service hands back
 * an IN_PROGRESS execution first, so a job interrupted by a stop or a crash is resumed here.
 */
export const startNextStep: Step = {
  name: 'start-next',
  async run(ctx, env) {
    // An outcome recorded before a restart or an outage goes out first (install/outbox.ts).
    const outbox = env.state.current.report;
    if (outbox) await deliverReport(env, outbox);
    let exec = await env.jobs.startNext();
    if (exec && !validJobId(exec.jobId)) {
      // Refused the first time (reported locally); after that, the jobs queued behind it.
      if (!env.invalidJobIds.has(String(exec.jobId))) return refuseJobId(ctx, env, exec);
      exec = await nextValidPending(env);
    }
    const pending = env.state.current.pending;
    if (pending && !(exec && isPendingJob(exec, pending))) await abandonPending(env, pending);
    if (!exec) {
      // Nothing pending: whatever partial download is still on disk belongs to a job that is over.
      await sweepPartials(env.config.downloadDir);
      return { end: 'idle' };
    }
    let execution = exec;
    if (execution.jobDocument === undefined)
      execution = (await env.jobs.describe(exec.jobId).catch(() => undefined)) ?? exec;
    ctx.execution = execution;
    ctx.jobId = exec.jobId;
    ctx.summary.jobId = exec.jobId;
    env.logger = env.logger.child({ jobId: exec.jobId });
    if (pending && isPendingJob(exec, pending)) {
      // Back after the reboot (or a crash after the install): the resume entry point.
      try {
        ctx.document = parseJobDocument(execution.jobDocument);
        ctx.source = resolveSource(ctx.document, {
          downloadDir: env.config.downloadDir,
          ...s3Opt(env.config),
        });
      } catch {
        // The record says what was installed; the document only names it in progress messages.
      }
      resumeFrom(ctx, env, pending);
      if (pending.phase === 'committing') return { goto: 'commit' };
      if (pending.phase === 'rolling-back')
        throw new ResumedRollbackError(pending.rollbackReason ?? 'a rollback was interrupted by a restart');
      return { goto: 'reboot' };
    }
    return undefined;
  },
};

function validJobId(jobId: unknown): jobId is string {
  return typeof jobId === 'string' && JOB_ID_PATTERN.test(jobId);
}

/**
 * start-next handed back an execution refused before (its jobId can name no topic, so it can never be
 * reported): the service keeps it at the head of the queue and start-next would return it forever, with
 * every job queued behind it waiting. GetPendingJobExecutions lists the others: the first valid one is
 * taken as start-next would take it (IN_PROGRESS first, then QUEUED, which an update starts). Nothing
 * valid, or the list unavailable: nothing to do until notify-next.
 */
async function nextValidPending(env: StepEnv): Promise<JobExecution | undefined> {
  let list: PendingExecutions;
  try {
    list = await env.jobs.getPending();
  } catch (err) {
    env.logger.warn({ err: errorMessage(err) }, 'cannot list the pending jobs behind an invalid one');
    return undefined;
  }
  const inProgress = list.inProgressJobs.find((j) => validJobId(j.jobId));
  const queued = list.queuedJobs.find((j) => validJobId(j.jobId));
  const next = inProgress ?? queued;
  if (!next) return undefined;
  env.logger.info({ jobId: next.jobId }, 'taking the next valid job behind an invalid one');
  try {
    if (!inProgress) await env.jobs.update(next.jobId, 'IN_PROGRESS');
    return await env.jobs.describe(next.jobId);
  } catch (err) {
    // Cancelled or taken meanwhile: the next start-next looks again.
    if (err instanceof JobsRequestError && err.executionGone) return undefined;
    throw err;
  }
}

function isPendingJob(exec: JobExecution, pending: PendingCommit): boolean {
  return (
    exec.jobId === pending.jobId &&
    (pending.executionNumber === undefined ||
      exec.executionNumber === undefined ||
      exec.executionNumber === pending.executionNumber)
  );
}

/**
 * AWS allows jobIds of `[a-zA-Z0-9_-]{1,64}` only (docs/protocol.md, Topics). Anything else (70,000
 * characters, `#` or `+`) cannot be a topic level of `$aws/things/<thing>/jobs/<jobId>/update`, so the
 * job cannot be reported: it is refused here, nothing is published, and the agent keeps serving. A
 * service that hands the same execution back again is asked for the jobs behind it (nextValidPending).
 */
function refuseJobId(ctx: JobContext, env: StepEnv, exec: { jobId?: unknown }): StepResult {
  const raw = String(exec.jobId);
  const shown = raw.length > 64 ? `${raw.slice(0, 64)}… (${raw.length} characters)` : raw;
  if (env.invalidJobIds.size >= 100) env.invalidJobIds.clear();
  env.invalidJobIds.add(raw);
  ctx.execution = exec as JobExecution;
  ctx.jobId = shown;
  ctx.summary.jobId = shown;
  ctx.unreportable = true;
  throw new JobRejectedError(
    `jobId: must match ${JOB_ID_PATTERN.source} (got ${JSON.stringify(shown)}); refused locally, not reported`,
  );
}

/** Copies what the steps learned into the job's summary. */
function summarise(ctx: JobContext): void {
  const s = ctx.summary;
  const doc = ctx.document;
  if (doc) s.version = doc.version;
  if (ctx.source) {
    s.fileName = ctx.source.fileName;
    s.sourceKind = ctx.source.kind;
  }
  const d = ctx.download;
  if (d) {
    Object.assign(s, {
      path: d.path,
      bytes: d.bytes,
      sha256: d.sha256,
      seconds: (d.renamedAt - d.startedAt) / 1000,
      renamedAt: d.renamedAt,
      resumedFrom: d.resumedFrom,
      requests: d.requests,
    });
  }
}

/**
 * `report`: SUCCEEDED (after storing the new version), REJECTED for an unacceptable job, FAILED for
 * anything else, with a reason ≤ 1024 chars. A stop of the agent leaves the execution IN_PROGRESS on
 * purpose: the `.part` is kept and start-next returns this execution first after a restart. Then one
 * last progress message carrying the outcome.
 */
export const reportStep: Step = {
  name: 'report',
  async run(ctx, env) {
    summarise(ctx);
    await env.progress.settled();
    const status = await settle(ctx, env);
    ctx.summary.status = status;
    ctx.summary.progressMessages = env.progress.messages;
    ctx.summary.statusDetailsUpdates = env.progress.statusUpdates;
    if (status === 'INTERRUPTED') return undefined;
    // Terminal: nothing of this job may stay behind but a committed image.
    await sweepPartials(env.config.downloadDir);
    const size = ctx.document?.size ?? ctx.resumed?.bytes;
    if (size !== undefined && !ctx.unreportable) {
      await env.progress.outcome(status, size, ctx.download?.bytes);
      ctx.summary.progressMessages = env.progress.messages;
    }
    return undefined;
  },
};

/** The reason of a failure; after an install, it says whether the old version was put back. */
function reasonOf(ctx: JobContext): string {
  const reason = errorMessage(ctx.error);
  const rb = ctx.rollback;
  if (!rb) return reason;
  if (rb.ok) return `rolled back to ${ctx.currentVersion}: ${reason}`;
  return `rollback FAILED (${rb.error}) after: ${reason}`;
}

async function settle(ctx: JobContext, env: StepEnv): Promise<JobOutcome> {
  const { error } = ctx;
  const doc = ctx.document;
  const d = ctx.download;
  if (ctx.end === 'rebooting') {
    ctx.summary.reason = 'rebooting into the new image; the job finishes after the restart';
    return 'REBOOTING';
  }
  if (error === undefined && d) {
    // commit recorded the report in the same write as the new version.
    const report = env.state.current.report;
    if (report?.jobId !== ctx.jobId) throw new Error(`pipeline bug: no recorded report for ${ctx.jobId}`);
    await deliverReport(env, report);
    return 'SUCCEEDED';
  }
  if (env.signal.aborted || error instanceof AbortedError) {
    if (env.stopSignal.aborted || !env.signal.aborted) {
      ctx.summary.reason = 'agent stopped; the execution stays IN_PROGRESS and resumes after a restart';
      return 'INTERRUPTED';
    }
    ctx.summary.reason = reasonOf({ ...ctx, error: env.signal.reason ?? error });
    // The service ended the job: nothing to report, and a rolled-back install's record goes.
    await env.state
      .update((s) => {
        if (s.pending?.jobId !== ctx.jobId) return s;
        const { pending: _gone, ...rest } = s;
        return rest;
      })
      .catch((err: unknown) =>
        env.logger.error({ err: errorMessage(err) }, 'could not clear the pending record'),
      );
    return 'CANCELED';
  }
  const reason = reasonOf(ctx);
  ctx.summary.reason = reason;
  if (ctx.unreportable) return 'REJECTED';
  const rejected = error instanceof JobRejectedError;
  const report: OutboxReport = {
    jobId: ctx.jobId,
    ...(ctx.execution?.executionNumber !== undefined
      ? { executionNumber: ctx.execution.executionNumber }
      : {}),
    status: rejected ? 'REJECTED' : 'FAILED',
    statusDetails: sanitizeStatusDetails({
      reason,
      ...(rejected && doc ? { version: doc.version, currentVersion: ctx.currentVersion } : {}),
      ...(ctx.rollback ? { rolledBack: ctx.rollback.ok ? ctx.currentVersion : 'failed' } : {}),
    }),
  };
  await recordReport(env, report);
  const sent = await deliverReport(env, report);
  return sent === 'REJECTED' ? 'REJECTED' : 'FAILED';
}
