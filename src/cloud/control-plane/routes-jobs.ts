/** Control-plane routes of AWS IoT Jobs: jobs and job executions. */
import { z } from 'zod';
import {
  ControlPlaneError,
  type CreateJobInput,
  EXECUTION_STATUSES,
  type ExecutionRecord,
  type JobRecord,
  TERMINAL_EXECUTION_STATUSES,
} from '../jobs/types.ts';
import {
  booleanQuery,
  defined,
  label,
  page,
  pageQuery,
  parseBody,
  parseQuery,
  queryString,
  type Route,
  type RouteContext,
  refuseUnsupported,
  sec,
  stringMap,
  tagList,
} from './route-kit.ts';

const JOB_STATUSES = ['IN_PROGRESS', 'CANCELED', 'COMPLETED', 'DELETION_IN_PROGRESS', 'SCHEDULED'] as const;
const TARGET_SELECTIONS = ['SNAPSHOT', 'CONTINUOUS'] as const;
/** An object whose members the service validates (job-config.ts), in AWS's words. */
export const configObject = z.custom<Record<string, unknown>>(
  (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
  'expected an object',
);

/** The members CreateJob and CreateJobTemplate share (JobConfigs). */
export const jobConfigMembers = {
  document: z.string().optional(),
  documentSource: z.string().optional(),
  presignedUrlConfig: z
    .object({ roleArn: z.string().optional(), expiresInSec: z.number().int().optional() })
    .optional(),
  timeoutConfig: z.object({ inProgressTimeoutInMinutes: z.number().int().optional() }).optional(),
  jobExecutionsRolloutConfig: configObject.optional(),
  abortConfig: configObject.optional(),
  jobExecutionsRetryConfig: configObject.optional(),
  // Accepted and ignored: tags change nothing about how the job runs.
  tags: tagList.optional(),
};

const CreateJobBody = z.object({
  targets: z.array(z.string()).min(1, 'at least one thing or thing-group ARN is required'),
  description: z.string().optional(),
  targetSelection: z.enum(TARGET_SELECTIONS).optional(),
  ...jobConfigMembers,
  schedulingConfig: configObject.optional(),
  jobTemplateArn: z.string().optional(),
});
/** CreateJob members whose behaviour the local Jobs service does not implement: refused, not ignored. */
const CREATE_JOB_UNSUPPORTED = ['documentParameters', 'namespaceId', 'destinationPackageVersions'] as const;

const CancelJobBody = z.object({ reasonCode: z.string().optional(), comment: z.string().optional() });
const CancelJobExecutionBody = z.object({
  expectedVersion: z.number().int().optional(),
  statusDetails: stringMap.optional(),
});

export function jobSummary(j: JobRecord) {
  return {
    jobArn: j.jobArn,
    jobId: j.jobId,
    targetSelection: j.targetSelection,
    status: j.status,
    createdAt: sec(j.createdAt),
    lastUpdatedAt: sec(j.lastUpdatedAt),
    completedAt: sec(j.completedAt),
    isConcurrent: false,
  };
}

function executionSummary(e: ExecutionRecord) {
  return {
    status: e.status,
    queuedAt: sec(e.queuedAt),
    startedAt: sec(e.startedAt),
    lastUpdatedAt: sec(e.lastUpdatedAt),
    executionNumber: e.executionNumber,
    retryAttempt: e.retryAttempt,
  };
}

/**
 * Executions carry only the thing name; the thing's ARN comes from the registry, or, for a thing that is
 * not registered, is built in the job ARN's partition, region and account.
 */
export function thingArnOf(ctx: RouteContext, thingName: string, jobArn: () => string): string {
  try {
    return ctx.controlPlane.describeThing(thingName).thingArn;
  } catch (err) {
    if (!(err instanceof ControlPlaneError) || err.code !== 'ResourceNotFoundException') throw err;
    return jobArn().replace(/:job\/.*$/, `:thing/${thingName}`);
  }
}

export const JOB_ROUTES: readonly Route[] = [
  {
    operation: 'CreateJob',
    method: 'PUT',
    pattern: '/jobs/{jobId}',
    async handle(ctx, req) {
      refuseUnsupported(req.body, CREATE_JOB_UNSUPPORTED, 'CreateJob');
      const b = parseBody(CreateJobBody, req.body);
      // createJobAsync resolves a documentSource (S3 URL) through the service's fetcher, if it has one.
      // The configurations' ranges are checked by the service (job-config.ts), in AWS's words.
      const { tags: _tags, ...input } = b;
      const job = await ctx.controlPlane.createJobAsync({
        jobId: label(req, 'jobId'),
        ...defined(input),
      } as CreateJobInput);
      return { jobArn: job.jobArn, jobId: job.jobId, description: job.description };
    },
  },
  {
    operation: 'DescribeJob',
    method: 'GET',
    pattern: '/jobs/{jobId}',
    handle(ctx, req) {
      parseQuery({ beforeSubstitution: booleanQuery.optional() }, req.query);
      const { job: j, processDetails, rollout } = ctx.controlPlane.describeJob(label(req, 'jobId'));
      return {
        documentSource: j.documentSource,
        job: {
          ...jobSummary(j),
          // Rolling out new executions or cancelling created ones (AWS Job.isConcurrent).
          isConcurrent: j.status === 'IN_PROGRESS' && rollout.waiting > 0,
          forceCanceled: j.forceCanceled,
          reasonCode: j.reasonCode,
          comment: j.comment,
          targets: j.targets,
          description: j.description,
          presignedUrlConfig: j.presignedUrlConfig,
          jobExecutionsRolloutConfig: j.jobExecutionsRolloutConfig,
          abortConfig: j.abortConfig,
          timeoutConfig: j.timeoutConfig,
          jobExecutionsRetryConfig: j.jobExecutionsRetryConfig,
          schedulingConfig: j.schedulingConfig,
          scheduledJobRollouts:
            rollout.nextWindows.length > 0
              ? rollout.nextWindows.map((startTime) => ({ startTime }))
              : undefined,
          jobTemplateArn: j.jobTemplateArn,
          jobProcessDetails: processDetails,
        },
      };
    },
  },
  {
    operation: 'GetJobDocument',
    method: 'GET',
    pattern: '/jobs/{jobId}/job-document',
    handle(ctx, req) {
      // beforeSubstitution changes nothing: the control plane always returns placeholders unreplaced
      // (docs/protocol.md, Presigned URL placeholders).
      parseQuery({ beforeSubstitution: booleanQuery.optional() }, req.query);
      return { document: ctx.controlPlane.getJobDocument(label(req, 'jobId')) };
    },
  },
  {
    operation: 'ListJobs',
    method: 'GET',
    pattern: '/jobs',
    handle(ctx, req) {
      refuseUnsupported(req.query, ['thingGroupName', 'thingGroupId', 'namespaceId'], 'ListJobs');
      const q = parseQuery(
        {
          status: z.enum(JOB_STATUSES).optional(),
          targetSelection: z.enum(TARGET_SELECTIONS).optional(),
          ...pageQuery,
        },
        req.query,
      );
      const result = ctx.controlPlane.listJobs(
        {
          ...(q.status !== undefined && { status: q.status }),
          ...(q.targetSelection !== undefined && { targetSelection: q.targetSelection }),
        },
        page(q),
      );
      return { jobs: result.items.map(jobSummary), nextToken: result.nextToken };
    },
  },
  {
    operation: 'ListJobExecutionsForJob',
    method: 'GET',
    pattern: '/jobs/{jobId}/things',
    handle(ctx, req) {
      const q = parseQuery({ status: z.enum(EXECUTION_STATUSES).optional(), ...pageQuery }, req.query);
      const jobId = label(req, 'jobId');
      const result = ctx.controlPlane.listJobExecutionsForJob(
        jobId,
        q.status !== undefined ? { status: q.status } : {},
        page(q),
      );
      let jobArn: string | undefined;
      const lazyJobArn = () => {
        jobArn ??= ctx.controlPlane.describeJob(jobId).job.jobArn;
        return jobArn;
      };
      return {
        executionSummaries: result.items.map((e) => ({
          thingArn: thingArnOf(ctx, e.thingName, lazyJobArn),
          jobExecutionSummary: executionSummary(e),
        })),
        nextToken: result.nextToken,
      };
    },
  },
  {
    operation: 'ListJobExecutionsForThing',
    method: 'GET',
    pattern: '/things/{thingName}/jobs',
    handle(ctx, req) {
      refuseUnsupported(req.query, ['namespaceId'], 'ListJobExecutionsForThing');
      const q = parseQuery(
        { status: z.enum(EXECUTION_STATUSES).optional(), jobId: queryString.optional(), ...pageQuery },
        req.query,
      );
      const result = ctx.controlPlane.listJobExecutionsForThing(
        label(req, 'thingName'),
        {
          ...(q.status !== undefined && { status: q.status }),
          ...(q.jobId !== undefined && { jobId: q.jobId }),
        },
        page(q),
      );
      return {
        executionSummaries: result.items.map((e) => ({
          jobId: e.jobId,
          jobExecutionSummary: executionSummary(e),
        })),
        nextToken: result.nextToken,
      };
    },
  },
  {
    operation: 'DescribeJobExecution',
    method: 'GET',
    pattern: '/things/{thingName}/jobs/{jobId}',
    handle(ctx, req) {
      const q = parseQuery(
        {
          executionNumber: queryString
            .regex(/^\d+$/, 'expected an integer')
            .transform(Number)
            .pipe(z.number().int().min(1))
            .optional(),
        },
        req.query,
      );
      const jobId = label(req, 'jobId');
      const e = ctx.controlPlane.describeJobExecution(jobId, label(req, 'thingName'), q.executionNumber);
      const timers = [e.stepTimeoutAt, e.inProgressTimeoutAt].filter((t): t is number => t !== undefined);
      const approximateSecondsBeforeTimedOut =
        timers.length > 0 && !TERMINAL_EXECUTION_STATUSES.includes(e.status)
          ? Math.max(0, Math.round((Math.min(...timers) - ctx.now()) / 1000))
          : undefined;
      return {
        execution: {
          jobId: e.jobId,
          status: e.status,
          forceCanceled: e.forceCanceled,
          statusDetails: { detailsMap: e.statusDetails },
          thingArn: thingArnOf(ctx, e.thingName, () => ctx.controlPlane.describeJob(jobId).job.jobArn),
          queuedAt: sec(e.queuedAt),
          startedAt: sec(e.startedAt),
          lastUpdatedAt: sec(e.lastUpdatedAt),
          executionNumber: e.executionNumber,
          versionNumber: e.versionNumber,
          approximateSecondsBeforeTimedOut,
        },
      };
    },
  },
  {
    operation: 'CancelJob',
    method: 'PUT',
    pattern: '/jobs/{jobId}/cancel',
    handle(ctx, req) {
      const q = parseQuery({ force: booleanQuery.optional() }, req.query);
      const b = parseBody(CancelJobBody, req.body);
      const job = ctx.controlPlane.cancelJob(label(req, 'jobId'), {
        ...(q.force !== undefined && { force: q.force }),
        ...(b.comment !== undefined && { comment: b.comment }),
        ...(b.reasonCode !== undefined && { reasonCode: b.reasonCode }),
      });
      return { jobArn: job.jobArn, jobId: job.jobId, description: job.description };
    },
  },
  {
    operation: 'CancelJobExecution',
    method: 'PUT',
    pattern: '/things/{thingName}/jobs/{jobId}/cancel',
    handle(ctx, req) {
      const q = parseQuery({ force: booleanQuery.optional() }, req.query);
      const b = parseBody(CancelJobExecutionBody, req.body);
      ctx.controlPlane.cancelJobExecution(label(req, 'jobId'), label(req, 'thingName'), {
        ...(q.force !== undefined && { force: q.force }),
        ...(b.expectedVersion !== undefined && { expectedVersion: b.expectedVersion }),
        ...(b.statusDetails !== undefined && { statusDetails: b.statusDetails }),
      });
      return {};
    },
  },
  {
    operation: 'DeleteJob',
    method: 'DELETE',
    pattern: '/jobs/{jobId}',
    handle(ctx, req) {
      refuseUnsupported(req.query, ['namespaceId'], 'DeleteJob');
      const q = parseQuery({ force: booleanQuery.optional() }, req.query);
      ctx.controlPlane.deleteJob(label(req, 'jobId'), q.force !== undefined ? { force: q.force } : {});
      return {};
    },
  },
];
