import { z } from 'zod';
import {
  ControlPlaneError,
  EXECUTION_STATUSES,
  type ExecutionRecord,
  type JobRecord,
  type JobsControlPlane,
  type PageRequest,
  TERMINAL_EXECUTION_STATUSES,
  type ThingRecord,
} from '../jobs/types.ts';
import { createRouter, type RestMatch } from './router.ts';

/**
 * The REST-JSON (restJson1) operations of AWS IoT's control plane that the local stack serves. Methods,
 * paths, query names, body members and response members are those of the @aws-sdk/client-iot operation
 * schemas (e.g. `CreateJob$ = { http: ['PUT', '/jobs/{jobId}', 200] }` and `CreateJobRequest$`).
 * Timestamps go out as epoch seconds (JSON numbers), restJson1's default timestamp format, so the SDK
 * turns them into Dates.
 */

export interface RouteContext {
  controlPlane: JobsControlPlane;
  /** Epoch milliseconds. */
  now: () => number;
  iotEndpointAddress?: string;
  credentialsEndpointAddress?: string;
}

export interface ApiRequest {
  /** Path labels, percent-decoded. */
  labels: Record<string, string>;
  query: Record<string, string | string[]>;
  /** The parsed JSON body ({} when the body is empty). */
  body: unknown;
}

export interface Route {
  operation: string;
  method: string;
  pattern: string;
  /** May be async: CreateJob fetches a `documentSource` first. */
  handle(ctx: RouteContext, req: ApiRequest): unknown;
}

// ---------------------------------------------------------------------------------------------------
// Input validation. Messages name the field (`targets[0]: ...`) and come back as InvalidRequestException.

const JOB_STATUSES = ['IN_PROGRESS', 'CANCELED', 'COMPLETED', 'DELETION_IN_PROGRESS', 'SCHEDULED'] as const;
const TARGET_SELECTIONS = ['SNAPSHOT', 'CONTINUOUS'] as const;

/** Query values arrive as strings; a repeated key (an array) is refused rather than guessed at. */
const queryString = z.string({ error: 'expected a single value' });
/** maxResults: 1–250 for every list operation here (AWS IoT API reference, ListJobs et al.). */
const maxResultsQuery = queryString
  .regex(/^\d+$/, 'expected an integer')
  .transform(Number)
  .pipe(z.number().int().min(1).max(250));
const booleanQuery = z
  .enum(['true', 'false'], { error: "expected 'true' or 'false'" })
  .transform((v) => v === 'true');
const pageQuery = { maxResults: maxResultsQuery.optional(), nextToken: queryString.optional() };

const stringMap = z.record(z.string(), z.string());

const CreateJobBody = z.object({
  targets: z.array(z.string()).min(1, 'at least one thing or thing-group ARN is required'),
  document: z.string().optional(),
  documentSource: z.string().optional(),
  description: z.string().optional(),
  targetSelection: z.enum(TARGET_SELECTIONS).optional(),
  presignedUrlConfig: z
    .object({ roleArn: z.string().optional(), expiresInSec: z.number().int().optional() })
    .optional(),
  timeoutConfig: z.object({ inProgressTimeoutInMinutes: z.number().int().optional() }).optional(),
  // Accepted and ignored: tags change nothing about how the job runs.
  tags: z.array(z.object({ Key: z.string(), Value: z.string().optional() })).optional(),
});
/** CreateJob members whose behaviour the local Jobs service does not implement: refused, not ignored. */
const CREATE_JOB_UNSUPPORTED = [
  'jobExecutionsRolloutConfig',
  'abortConfig',
  'jobExecutionsRetryConfig',
  'schedulingConfig',
  'jobTemplateArn',
  'documentParameters',
  'namespaceId',
  'destinationPackageVersions',
] as const;

const CancelJobBody = z.object({ reasonCode: z.string().optional(), comment: z.string().optional() });
const CancelJobExecutionBody = z.object({
  expectedVersion: z.number().int().optional(),
  statusDetails: stringMap.optional(),
});
const CreateThingBody = z.object({
  attributePayload: z.object({ attributes: stringMap.optional(), merge: z.boolean().optional() }).optional(),
});
const CreateThingGroupBody = z.object({
  thingGroupProperties: z.object({ thingGroupDescription: z.string().optional() }).optional(),
  tags: z.array(z.object({ Key: z.string(), Value: z.string().optional() })).optional(),
});
const AddThingToThingGroupBody = z.object({
  thingGroupName: z.string().optional(),
  thingGroupArn: z.string().optional(),
  thingName: z.string().optional(),
  thingArn: z.string().optional(),
  overrideDynamicGroups: z.boolean().optional(),
});

function invalid(message: string): ControlPlaneError {
  return new ControlPlaneError('InvalidRequestException', message);
}

function parse<T extends z.ZodType>(schema: T, value: unknown, where: string): z.output<T> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const path = issue?.path.length
    ? issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p)))
    : [];
  const field = path.join('.').replace(/\.\[/g, '[');
  throw invalid(`${field || where}: ${issue?.message ?? 'invalid'}`);
}

function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.output<T> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw invalid('request body: expected a JSON object');
  }
  return parse(schema, body, 'request body');
}

function parseQuery<S extends z.ZodRawShape>(shape: S, query: ApiRequest['query']): z.output<z.ZodObject<S>> {
  return parse(z.object(shape), query, 'query');
}

function refuseUnsupported(source: unknown, fields: readonly string[], where: string): void {
  if (typeof source !== 'object' || source === null) return;
  for (const field of fields) {
    const v = (source as Record<string, unknown>)[field];
    if (v !== undefined && v !== null) {
      throw invalid(`${field}: not supported by the local control plane (${where})`);
    }
  }
}

function page(q: { maxResults?: number; nextToken?: string }): PageRequest {
  const p: PageRequest = {};
  if (q.maxResults !== undefined) p.maxResults = q.maxResults;
  if (q.nextToken !== undefined) p.nextToken = q.nextToken;
  return p;
}

function label(req: ApiRequest, name: string): string {
  const v = req.labels[name];
  if (v === undefined || v === '') throw invalid(`${name}: must not be empty`);
  return v;
}

/** `arn:aws:iot:<region>:<account>:thing/<name>` → `<name>`; a plain name passes through. */
function nameFromArn(arnOrName: string, resource: 'thing' | 'thinggroup'): string {
  if (!arnOrName.startsWith('arn:')) return arnOrName;
  const m = /^arn:[^:]+:iot:[^:]*:[^:]*:([a-z]+)\/(.+)$/.exec(arnOrName);
  if (!m || m[1] !== resource) {
    throw invalid(
      `${resource === 'thing' ? 'thingArn' : 'thingGroupArn'}: not a ${resource} ARN: ${arnOrName}`,
    );
  }
  return m[2] ?? '';
}

// ---------------------------------------------------------------------------------------------------
// Output mapping.

/** Epoch milliseconds → epoch seconds (restJson1 default timestamp format). */
function sec(ms: number | undefined): number | undefined {
  return ms === undefined ? undefined : ms / 1000;
}

function jobSummary(j: JobRecord) {
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
    retryAttempt: 0,
  };
}

/**
 * Executions carry only the thing name; the thing's ARN comes from the registry, or, for a thing that is
 * not registered, is built in the job ARN's partition, region and account.
 */
function thingArnOf(ctx: RouteContext, thingName: string, jobArn: () => string): string {
  try {
    return ctx.controlPlane.describeThing(thingName).thingArn;
  } catch (err) {
    if (!(err instanceof ControlPlaneError) || err.code !== 'ResourceNotFoundException') throw err;
    return jobArn().replace(/:job\/.*$/, `:thing/${thingName}`);
  }
}

function thingAttribute(t: ThingRecord) {
  return { thingName: t.thingName, thingArn: t.thingArn, attributes: t.attributes, version: t.version };
}

// ---------------------------------------------------------------------------------------------------
// The routes.

export const ROUTES: readonly Route[] = [
  {
    operation: 'CreateJob',
    method: 'PUT',
    pattern: '/jobs/{jobId}',
    async handle(ctx, req) {
      refuseUnsupported(req.body, CREATE_JOB_UNSUPPORTED, 'CreateJob');
      const b = parseBody(CreateJobBody, req.body);
      // createJobAsync resolves a documentSource (S3 URL) through the service's fetcher, if it has one.
      const job = await ctx.controlPlane.createJobAsync({
        jobId: label(req, 'jobId'),
        targets: b.targets,
        ...(b.document !== undefined && { document: b.document }),
        ...(b.documentSource !== undefined && { documentSource: b.documentSource }),
        ...(b.description !== undefined && { description: b.description }),
        ...(b.targetSelection !== undefined && { targetSelection: b.targetSelection }),
        ...(b.presignedUrlConfig !== undefined && { presignedUrlConfig: b.presignedUrlConfig }),
        ...(b.timeoutConfig !== undefined && { timeoutConfig: b.timeoutConfig }),
      });
      return { jobArn: job.jobArn, jobId: job.jobId, description: job.description };
    },
  },
  {
    operation: 'DescribeJob',
    method: 'GET',
    pattern: '/jobs/{jobId}',
    handle(ctx, req) {
      parseQuery({ beforeSubstitution: booleanQuery.optional() }, req.query);
      const { job: j, processDetails } = ctx.controlPlane.describeJob(label(req, 'jobId'));
      return {
        documentSource: j.documentSource,
        job: {
          ...jobSummary(j),
          forceCanceled: j.forceCanceled,
          reasonCode: j.reasonCode,
          comment: j.comment,
          targets: j.targets,
          description: j.description,
          presignedUrlConfig: j.presignedUrlConfig,
          timeoutConfig: j.timeoutConfig,
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
      // (reference section 4).
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
      if (q.status === 'SCHEDULED') return { jobs: [] }; // scheduling is not implemented: never any
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
  {
    operation: 'CreateThing',
    method: 'POST',
    pattern: '/things/{thingName}',
    handle(ctx, req) {
      refuseUnsupported(req.body, ['thingTypeName', 'billingGroupName'], 'CreateThing');
      const b = parseBody(CreateThingBody, req.body);
      const attributes = b.attributePayload?.attributes;
      const t = ctx.controlPlane.createThing({
        thingName: label(req, 'thingName'),
        ...(attributes !== undefined && { attributes }),
      });
      return { thingName: t.thingName, thingArn: t.thingArn, thingId: t.thingId };
    },
  },
  {
    operation: 'DescribeThing',
    method: 'GET',
    pattern: '/things/{thingName}',
    handle(ctx, req) {
      const t = ctx.controlPlane.describeThing(label(req, 'thingName'));
      // AWS reports the thing name as the default MQTT client ID.
      return { defaultClientId: t.thingName, thingId: t.thingId, ...thingAttribute(t) };
    },
  },
  {
    operation: 'ListThings',
    method: 'GET',
    pattern: '/things',
    handle(ctx, req) {
      refuseUnsupported(
        req.query,
        ['attributeName', 'attributeValue', 'thingTypeName', 'usePrefixAttributeValue'],
        'ListThings',
      );
      const q = parseQuery(pageQuery, req.query);
      const result = ctx.controlPlane.listThings(page(q));
      return { things: result.items.map(thingAttribute), nextToken: result.nextToken };
    },
  },
  {
    operation: 'AddThingToThingGroup',
    method: 'PUT',
    pattern: '/thing-groups/addThingToThingGroup',
    handle(ctx, req) {
      const b = parseBody(AddThingToThingGroupBody, req.body);
      const groupRef = b.thingGroupName ?? b.thingGroupArn;
      const thingRef = b.thingName ?? b.thingArn;
      if (groupRef === undefined)
        throw invalid('thingGroupName: thingGroupName or thingGroupArn is required');
      if (thingRef === undefined) throw invalid('thingName: thingName or thingArn is required');
      ctx.controlPlane.addThingToThingGroup({
        thingGroupName: b.thingGroupName ?? nameFromArn(groupRef, 'thinggroup'),
        thingName: b.thingName ?? nameFromArn(thingRef, 'thing'),
      });
      return {};
    },
  },
  {
    operation: 'CreateThingGroup',
    method: 'POST',
    pattern: '/thing-groups/{thingGroupName}',
    handle(ctx, req) {
      refuseUnsupported(req.body, ['parentGroupName'], 'CreateThingGroup');
      refuseUnsupported(
        (req.body as { thingGroupProperties?: unknown } | null)?.thingGroupProperties,
        ['attributePayload'],
        'CreateThingGroup',
      );
      const b = parseBody(CreateThingGroupBody, req.body);
      const description = b.thingGroupProperties?.thingGroupDescription;
      const g = ctx.controlPlane.createThingGroup({
        thingGroupName: label(req, 'thingGroupName'),
        ...(description !== undefined && { description }),
      });
      return {
        thingGroupName: g.thingGroupName,
        thingGroupArn: g.thingGroupArn,
        thingGroupId: g.thingGroupId,
      };
    },
  },
  {
    operation: 'DescribeThingGroup',
    method: 'GET',
    pattern: '/thing-groups/{thingGroupName}',
    handle(ctx, req) {
      const g = ctx.controlPlane.describeThingGroup(label(req, 'thingGroupName'));
      return {
        thingGroupName: g.thingGroupName,
        thingGroupId: g.thingGroupId,
        thingGroupArn: g.thingGroupArn,
        version: g.version,
        thingGroupProperties: g.description !== undefined ? { thingGroupDescription: g.description } : {},
        thingGroupMetadata: { rootToParentThingGroups: [], creationDate: sec(g.createdAt) },
      };
    },
  },
  {
    operation: 'ListThingsInThingGroup',
    method: 'GET',
    pattern: '/thing-groups/{thingGroupName}/things',
    handle(ctx, req) {
      // Groups do not nest here, so `recursive` changes nothing; it is still validated.
      const q = parseQuery({ recursive: booleanQuery.optional(), ...pageQuery }, req.query);
      const result = ctx.controlPlane.listThingsInThingGroup(label(req, 'thingGroupName'), page(q));
      return { things: result.items, nextToken: result.nextToken };
    },
  },
  {
    operation: 'DescribeEndpoint',
    method: 'GET',
    pattern: '/endpoint',
    handle(ctx, req) {
      const q = parseQuery({ endpointType: queryString.optional() }, req.query);
      const type = q.endpointType ?? 'iot:Data';
      // AWS IoT developer guide, "Connecting devices": iot:Data-ATS (and legacy iot:Data) and iot:Jobs
      // are the MQTT/Jobs endpoints; iot:CredentialProvider is the credentials provider (reference sec. 5).
      let address: string | undefined;
      if (type === 'iot:Data' || type === 'iot:Data-ATS' || type === 'iot:Jobs')
        address = ctx.iotEndpointAddress;
      else if (type === 'iot:CredentialProvider') address = ctx.credentialsEndpointAddress;
      else {
        throw invalid(
          `endpointType: must be one of iot:Data, iot:Data-ATS, iot:Jobs, iot:CredentialProvider (got ${type})`,
        );
      }
      if (address === undefined) {
        throw new ControlPlaneError(
          'ResourceNotFoundException',
          `endpointType ${type}: no such endpoint is configured on this local control plane`,
        );
      }
      return { endpointAddress: address };
    },
  },
];

/** Literal segments win over labels (PUT /thing-groups/addThingToThingGroup is not a group name). */
const router = createRouter(ROUTES);

export type RouteMatch = RestMatch<Route>;

/** Finds the route for a method and a raw (percent-encoded) path; labels come back decoded. */
export function matchRoute(method: string, rawPath: string): RouteMatch {
  return router.match(method, rawPath);
}
