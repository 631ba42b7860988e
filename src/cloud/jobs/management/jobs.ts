/** Control-plane operations on jobs and job executions (AWS IoT Jobs management API). */
import { errorMessage } from '../../../shared/errors.ts';
import type { JobsContext } from '../context.ts';
import { cancelExecution } from '../lifecycle/executions.ts';
import { cancelJobNow, maybeComplete } from '../lifecycle/outcomes.ts';
import { rolloutStatus } from '../lifecycle/rollout.ts';
import { checkTransition, isExecutionStatus } from '../lifecycle/state-machine.ts';
import { notificationsFor } from '../mqtt/notifications.ts';
import { statusDetailsProblem } from '../mqtt/requests.ts';
import type { CreateJobInput, JobRecord, JobStatus, JobsControlPlane } from '../types.ts';
import { cpErr, jobOrThrow, pageOf, requireJobId, requireThingName, thingOrThrow } from './common.ts';
import { createJobRecord, withTemplate } from './create-job.ts';

const REASON_CODE = /^[\p{Lu}\p{Nd}_]{1,128}$/u;

type JobOperations = Pick<
  JobsControlPlane,
  | 'createJob'
  | 'createJobAsync'
  | 'describeJob'
  | 'getJobDocument'
  | 'listJobs'
  | 'listJobExecutionsForJob'
  | 'listJobExecutionsForThing'
  | 'describeJobExecution'
  | 'cancelJob'
  | 'cancelJobExecution'
  | 'deleteJob'
>;

export function jobOperations(ctx: JobsContext): JobOperations {
  const { store } = ctx;
  return {
    createJob: (request) => createJob(ctx, request),
    createJobAsync: (request) => createJobAsync(ctx, request),
    describeJob(jobId) {
      const job = jobOrThrow(ctx, jobId);
      return {
        job,
        processDetails: store.rollout.processDetails(job.jobId),
        rollout: rolloutStatus(ctx, job, ctx.clock.now()),
      };
    },
    getJobDocument: (jobId) => jobOrThrow(ctx, jobId).document,
    listJobs: (filter, page) => listJobs(ctx, filter, page),
    listJobExecutionsForJob(jobId, filter, page) {
      jobOrThrow(ctx, jobId);
      if (filter.status !== undefined && !isExecutionStatus(filter.status)) {
        throw cpErr('InvalidRequestException', 'status is not a job execution status');
      }
      return pageOf(page, (after, limit) => store.listExecutionsForJob(jobId, filter.status, after, limit));
    },
    listJobExecutionsForThing(thingName, filter, page) {
      thingOrThrow(ctx, thingName);
      if (filter.status !== undefined && !isExecutionStatus(filter.status)) {
        throw cpErr('InvalidRequestException', 'status is not a job execution status');
      }
      if (filter.jobId !== undefined) requireJobId(filter.jobId);
      return pageOf(page, (after, limit) => store.listExecutionsForThing(thingName, filter, after, limit));
    },
    describeJobExecution(jobId, thingName, executionNumber) {
      requireJobId(jobId);
      requireThingName(thingName);
      if (executionNumber !== undefined && (!Number.isSafeInteger(executionNumber) || executionNumber < 1)) {
        throw cpErr('InvalidRequestException', 'executionNumber must be a positive integer');
      }
      const e = store.getExecution(jobId, thingName, executionNumber);
      if (e === undefined) {
        throw cpErr(
          'ResourceNotFoundException',
          `job execution ${jobId} for thing ${thingName} does not exist`,
        );
      }
      return e;
    },
    cancelJob: (jobId, options) => cancelJob(ctx, jobId, options),
    cancelJobExecution: (jobId, thingName, options) => cancelJobExecution(ctx, jobId, thingName, options),
    deleteJob: (jobId, options) => deleteJob(ctx, jobId, options),
  };
}

function createJob(ctx: JobsContext, request: CreateJobInput): JobRecord {
  const input = withTemplate(ctx, request);
  if (input.document !== undefined && input.documentSource !== undefined) {
    throw cpErr('InvalidRequestException', 'give either document or documentSource, not both');
  }
  if (input.documentSource !== undefined) {
    throw cpErr(
      'InvalidRequestException',
      ctx.fetchDocument === undefined
        ? 'documentSource is not supported by this service (no document fetcher configured); send document'
        : 'documentSource must be fetched first: use createJobAsync',
    );
  }
  if (input.document === undefined)
    throw cpErr('InvalidRequestException', 'document or documentSource is required');
  return createJobRecord(ctx, input, input.document, undefined);
}

async function createJobAsync(ctx: JobsContext, request: CreateJobInput): Promise<JobRecord> {
  const input = withTemplate(ctx, request);
  if (input.documentSource === undefined) return createJob(ctx, input);
  if (input.document !== undefined) {
    throw cpErr('InvalidRequestException', 'give either document or documentSource, not both');
  }
  const fetchDocument = ctx.fetchDocument;
  if (fetchDocument === undefined) return createJob(ctx, input);
  const source = input.documentSource;
  try {
    new URL(source);
  } catch {
    throw cpErr('InvalidRequestException', `documentSource ${source} is not a URL`);
  }
  requireJobId(input.jobId);
  let document: string;
  try {
    document = await fetchDocument(source);
  } catch (err) {
    throw cpErr(
      'InvalidRequestException',
      `documentSource ${source} could not be read: ${errorMessage(err)}`,
    );
  }
  return createJobRecord(ctx, input, document, source);
}

function listJobs(
  ctx: JobsContext,
  ...[filter, page]: Parameters<JobOperations['listJobs']>
): ReturnType<JobOperations['listJobs']> {
  const statuses: JobStatus[] = ['IN_PROGRESS', 'CANCELED', 'COMPLETED', 'DELETION_IN_PROGRESS', 'SCHEDULED'];
  if (filter.status !== undefined && !statuses.includes(filter.status)) {
    throw cpErr('InvalidRequestException', `status must be one of ${statuses.join(', ')}`);
  }
  const ts = filter.targetSelection;
  if (ts !== undefined && ts !== 'SNAPSHOT' && ts !== 'CONTINUOUS') {
    throw cpErr('InvalidRequestException', 'targetSelection must be SNAPSHOT or CONTINUOUS');
  }
  return pageOf(page, (after, limit) => ctx.store.listJobs(filter, after, limit));
}

function cancelJob(
  ctx: JobsContext,
  jobId: string,
  options: Parameters<JobOperations['cancelJob']>[1],
): JobRecord {
  const force = options.force === true;
  const { comment, reasonCode } = options;
  if (comment !== undefined && (typeof comment !== 'string' || comment.length > 2028)) {
    throw cpErr('InvalidRequestException', 'comment must be at most 2028 characters');
  }
  if (reasonCode !== undefined && !REASON_CODE.test(reasonCode)) {
    throw cpErr('InvalidRequestException', `reasonCode must match ${REASON_CODE.source}`);
  }
  return ctx.mutate((at, out) => {
    const job = jobOrThrow(ctx, jobId);
    if (job.status === 'COMPLETED') {
      throw cpErr('InvalidStateTransitionException', `job ${jobId} is COMPLETED and cannot be canceled`);
    }
    // QUEUED executions are canceled; IN_PROGRESS ones only with force (AWS CancelJob).
    return cancelJobNow(
      ctx,
      job,
      {
        force,
        ...(comment !== undefined && { comment }),
        ...(reasonCode !== undefined && { reasonCode }),
      },
      at,
      out,
    );
  });
}

function cancelJobExecution(
  ctx: JobsContext,
  jobId: string,
  thingName: string,
  options: Parameters<JobOperations['cancelJobExecution']>[2],
): void {
  requireJobId(jobId);
  requireThingName(thingName);
  let details: Record<string, string> | undefined;
  if (options.statusDetails !== undefined) {
    const problem = statusDetailsProblem(options.statusDetails);
    if (problem !== undefined) throw cpErr('InvalidRequestException', problem);
    details = { ...options.statusDetails };
  }
  const force = options.force === true;
  ctx.mutate((at, out) => {
    jobOrThrow(ctx, jobId);
    const e = ctx.store.getExecution(jobId, thingName);
    if (e === undefined) {
      throw cpErr(
        'ResourceNotFoundException',
        `job execution ${jobId} for thing ${thingName} does not exist`,
      );
    }
    if (options.expectedVersion !== undefined && options.expectedVersion !== e.versionNumber) {
      throw cpErr(
        'VersionConflictException',
        `expectedVersion ${options.expectedVersion} does not match the current version ${e.versionNumber}`,
      );
    }
    const check = checkTransition(e.status, 'CANCELED', { actor: 'service', force });
    if (!check.ok) {
      // AWS CancelJobExecution: IN_PROGRESS without force → InvalidStateTransitionException; so is a
      // terminal execution.
      throw cpErr(
        'InvalidStateTransitionException',
        check.reason === 'needs-force'
          ? `job execution ${jobId} on ${thingName} is IN_PROGRESS; cancel it with force=true`
          : `job execution ${jobId} on ${thingName} is ${e.status} and cannot be canceled`,
      );
    }
    cancelExecution(ctx, e, force, at, out, details);
    maybeComplete(ctx, jobId, at);
  });
}

function deleteJob(ctx: JobsContext, jobId: string, options: { force?: boolean }): void {
  const force = options.force === true;
  ctx.mutate((at, out) => {
    const job = jobOrThrow(ctx, jobId);
    const pending = ctx.store.pendingForJob(job.jobId);
    const active = job.status === 'IN_PROGRESS' || job.status === 'SCHEDULED';
    if (!force && (active || pending.some((e) => e.status === 'IN_PROGRESS'))) {
      // AWS DeleteJob: without force only a job in a terminal state (COMPLETED or CANCELED) may be
      // deleted; we also refuse while a device still works on it.
      throw cpErr(
        'InvalidStateTransitionException',
        `job ${jobId} is ${job.status}${pending.length > 0 ? ' with pending executions' : ''}; delete it with force=true`,
      );
    }
    ctx.store.deleteJob(job.jobId);
    const things = new Set(pending.map((e) => e.thingName));
    for (const t of things) out.push(...notificationsFor(ctx, t, true, at));
  });
}
