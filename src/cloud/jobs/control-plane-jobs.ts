/** Control-plane operations on jobs and job executions (AWS IoT Jobs management API). */
import { errorMessage } from '../../shared/errors.ts';
import type { JobsContext } from './context.ts';
import {
  cpErr,
  groupOrThrow,
  jobOrThrow,
  pageOf,
  requireJobId,
  requireThingName,
  thingOrThrow,
} from './control-plane-common.ts';
import { documentProblem } from './document.ts';
import { cancelExecution, maybeComplete, queueExecution } from './executions.ts';
import { CONTROL_CHARS, statusDetailsProblem } from './mqtt-requests.ts';
import { notificationsFor } from './notifications.ts';
import { checkTransition, isExecutionStatus } from './state-machine.ts';
import type { CreateJobInput, JobRecord, JobStatus, JobsControlPlane, TargetSelection } from './types.ts';

const REASON_CODE = /^[\p{Lu}\p{Nd}_]{1,128}$/u;

type JobOperations = Omit<
  JobsControlPlane,
  | 'createThing'
  | 'describeThing'
  | 'listThings'
  | 'createThingGroup'
  | 'describeThingGroup'
  | 'addThingToThingGroup'
  | 'listThingsInThingGroup'
>;

function parseTarget(ctx: JobsContext, arn: unknown): { kind: 'thing' | 'group'; name: string } {
  if (typeof arn !== 'string') throw cpErr('InvalidRequestException', 'targets must be ARN strings');
  const m = /^arn:aws:iot:([a-z0-9-]+):(\d{12}):(thing|thinggroup)\/(.+)$/.exec(arn);
  if (m === null) {
    throw cpErr(
      'InvalidRequestException',
      `target ${arn} is not a thing ARN (arn:aws:iot:<region>:<account>:thing/<name>) or thing-group ARN (…:thinggroup/<name>)`,
    );
  }
  const [, r, acct, kind, name = ''] = m;
  if (r !== ctx.region || acct !== ctx.accountId) {
    throw cpErr(
      'ResourceNotFoundException',
      `target ${arn} is not in region ${ctx.region} and account ${ctx.accountId}`,
    );
  }
  if (kind === 'thing') {
    thingOrThrow(ctx, name);
    return { kind: 'thing', name };
  }
  groupOrThrow(ctx, name);
  return { kind: 'group', name };
}

/** Field checks of CreateJob that need no database. */
function validateCreateJob(input: CreateJobInput, document: string): TargetSelection {
  const problem = documentProblem(document);
  if (problem !== undefined) throw cpErr('InvalidRequestException', problem);
  const targetSelection: TargetSelection = input.targetSelection ?? 'SNAPSHOT';
  if (targetSelection !== 'SNAPSHOT' && targetSelection !== 'CONTINUOUS') {
    throw cpErr('InvalidRequestException', 'targetSelection must be SNAPSHOT or CONTINUOUS');
  }
  if (!Array.isArray(input.targets) || input.targets.length === 0) {
    throw cpErr('InvalidRequestException', 'targets must list at least one thing or thing-group ARN');
  }
  const d = input.description;
  if (d !== undefined && (typeof d !== 'string' || d.length > 2028 || CONTROL_CHARS.test(d))) {
    throw cpErr(
      'InvalidRequestException',
      'description must be at most 2028 characters without control characters',
    );
  }
  const expires = input.presignedUrlConfig?.expiresInSec;
  if (expires !== undefined && (!Number.isInteger(expires) || expires < 60 || expires > 3600)) {
    throw cpErr(
      'InvalidRequestException',
      'presignedUrlConfig.expiresInSec must be an integer from 60 to 3600',
    );
  }
  const inProgress = input.timeoutConfig?.inProgressTimeoutInMinutes;
  if (inProgress !== undefined && (!Number.isInteger(inProgress) || inProgress < 1 || inProgress > 10080)) {
    throw cpErr(
      'InvalidRequestException',
      'timeoutConfig.inProgressTimeoutInMinutes must be an integer from 1 to 10080 (7 days)',
    );
  }
  return targetSelection;
}

export function jobOperations(ctx: JobsContext): JobOperations {
  const { store } = ctx;

  function createJobSync(
    input: CreateJobInput,
    document: string,
    documentSource: string | undefined,
  ): JobRecord {
    const jobId = requireJobId(input.jobId);
    const targetSelection = validateCreateJob(input, document);
    return ctx.mutate((at, out) => {
      if (store.getJob(jobId) !== undefined) {
        throw cpErr('ResourceAlreadyExistsException', `job ${jobId} already exists`);
      }
      const targets = input.targets.map((t) => parseTarget(ctx, t));
      const job: JobRecord = {
        jobId,
        jobArn: ctx.arn.job(jobId),
        targets: [...input.targets],
        targetSelection,
        document,
        status: 'IN_PROGRESS',
        createdAt: at,
        lastUpdatedAt: at,
      };
      if (documentSource !== undefined) job.documentSource = documentSource;
      if (input.description !== undefined) job.description = input.description;
      if (input.presignedUrlConfig !== undefined) job.presignedUrlConfig = { ...input.presignedUrlConfig };
      if (input.timeoutConfig !== undefined) job.timeoutConfig = { ...input.timeoutConfig };
      store.insertJob(job);
      const things = new Set<string>();
      for (const t of targets) {
        if (t.kind === 'thing') things.add(t.name);
        else for (const m of store.allMembers(t.name)) things.add(m);
      }
      for (const thingName of things) queueExecution(ctx, job, thingName, at, out);
      return job;
    });
  }

  const ops: JobOperations = {
    createJob(input) {
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
      return createJobSync(input, input.document, undefined);
    },
    async createJobAsync(input) {
      if (input.documentSource === undefined) return ops.createJob(input);
      if (input.document !== undefined) {
        throw cpErr('InvalidRequestException', 'give either document or documentSource, not both');
      }
      const fetchDocument = ctx.fetchDocument;
      if (fetchDocument === undefined) return ops.createJob(input);
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
      return createJobSync(input, document, source);
    },
    describeJob(jobId) {
      const job = jobOrThrow(ctx, jobId);
      return { job, processDetails: store.processDetails(job.jobId) };
    },
    getJobDocument: (jobId) => jobOrThrow(ctx, jobId).document,
    listJobs(filter, page) {
      const statuses: JobStatus[] = ['IN_PROGRESS', 'CANCELED', 'COMPLETED', 'DELETION_IN_PROGRESS'];
      if (filter.status !== undefined && !statuses.includes(filter.status)) {
        throw cpErr('InvalidRequestException', `status must be one of ${statuses.join(', ')}`);
      }
      const ts = filter.targetSelection;
      if (ts !== undefined && ts !== 'SNAPSHOT' && ts !== 'CONTINUOUS') {
        throw cpErr('InvalidRequestException', 'targetSelection must be SNAPSHOT or CONTINUOUS');
      }
      return pageOf(page, (after, limit) => store.listJobs(filter, after, limit));
    },
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
    cancelJob(jobId, options) {
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
        for (const e of store.pendingForJob(job.jobId)) cancelExecution(ctx, e, force, at, out);
        const next: JobRecord = { ...job, status: 'CANCELED', lastUpdatedAt: at };
        if (force) next.forceCanceled = true;
        if (comment !== undefined) next.comment = comment;
        if (reasonCode !== undefined) next.reasonCode = reasonCode;
        store.updateJob(next);
        return next;
      });
    },
    cancelJobExecution(jobId, thingName, options) {
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
        const e = store.getExecution(jobId, thingName);
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
    },
    deleteJob(jobId, options) {
      const force = options.force === true;
      ctx.mutate((at, out) => {
        const job = jobOrThrow(ctx, jobId);
        const pending = store.pendingForJob(job.jobId);
        if (!force && (job.status === 'IN_PROGRESS' || pending.some((e) => e.status === 'IN_PROGRESS'))) {
          // AWS DeleteJob: without force only a job in a terminal state (COMPLETED or CANCELED) may be
          // deleted; we also refuse while a device still works on it.
          throw cpErr(
            'InvalidStateTransitionException',
            `job ${jobId} is ${job.status}${pending.length > 0 ? ' with pending executions' : ''}; delete it with force=true`,
          );
        }
        store.deleteJob(job.jobId);
        const things = new Set(pending.map((e) => e.thingName));
        for (const t of things) out.push(...notificationsFor(ctx, t, true, at));
      });
    },
  };
  return ops;
}
