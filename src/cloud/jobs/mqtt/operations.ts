/**
 * The four operations of the Jobs MQTT API (docs/protocol.md, MQTT API): GetPendingJobExecutions,
 * StartNextPendingJobExecution, DescribeJobExecution and UpdateJobExecution, each a request in and its
 * `/accepted` reply (with the notifications it causes) out. api.ts routes topics to them.
 */
import type { JobsMqttErrorCode } from '../../../shared/jobs-protocol.ts';
import { JOB_ID_PATTERN } from '../../../shared/topics.ts';
import type { JobsContext } from '../context.ts';
import { renderDocument } from '../document.ts';
import { applyDeviceUpdate, startExecution } from '../lifecycle/executions.ts';
import { afterTerminal } from '../lifecycle/outcomes.ts';
import { checkTransition, isTerminal } from '../lifecycle/state-machine.ts';
import type { ExecutionRecord, JobRecord } from '../types.ts';
import { notificationsFor } from './notifications.ts';
import { keyOf, type Outbound } from './outbound.ts';
import {
  clientTokenSchema,
  DescribeRequest,
  GetPendingRequest,
  JOB_ID_MESSAGE,
  parseWith,
  StartNextRequest,
  UpdateRequest,
} from './requests.ts';
import {
  type ExecutionStateJson,
  executionJson,
  type JsonObject,
  type OutObject,
  RawJson,
  seconds,
  stateJson,
  summaryJson,
  toJsonText,
} from './wire.ts';

const terminalJob = (job: JobRecord) => job.status === 'COMPLETED' || job.status === 'CANCELED';

/** Pending summaries in a `get` reply (docs/protocol.md, Requests and replies: at most 10 of each). */
const GET_LIST_LIMIT = 10;

export class RequestError extends Error {
  readonly code: JobsMqttErrorCode;
  readonly executionState?: ExecutionStateJson;
  constructor(code: JobsMqttErrorCode, message: string, executionState?: ExecutionStateJson) {
    super(message);
    this.code = code;
    if (executionState !== undefined) this.executionState = executionState;
  }
}

export type Operation = 'get' | 'start-next' | 'describe' | 'update';

export interface Request {
  thingName: string;
  jobId: string;
  body: JsonObject;
  accepted: string;
  clientToken: string | undefined;
}

function parse<T>(r: { ok: true; value: T } | { ok: false; message: string }): T {
  if (!r.ok) throw new RequestError('InvalidRequest', r.message);
  return r.value;
}

export function readClientToken(body: JsonObject): string | undefined {
  return parse(parseWith(clientTokenSchema, body.clientToken));
}

function readJobId(jobId: string): void {
  if (!JOB_ID_PATTERN.test(jobId)) throw new RequestError('InvalidRequest', JOB_ID_MESSAGE);
}

function acceptedReply(
  ctx: JobsContext,
  req: Request,
  at: number,
  execution: ExecutionRecord | undefined,
  job: JobRecord | undefined,
): Outbound {
  const snapshot =
    execution === undefined ? undefined : { ...execution, statusDetails: { ...execution.statusDetails } };
  const { clientToken } = req;
  const o: Outbound = {
    thingName: req.thingName,
    topic: req.accepted,
    errorTopic: req.accepted.replace(/\/accepted$/, '/rejected'),
    render: async () => {
      const body: OutObject = {};
      if (snapshot !== undefined) {
        const doc = job === undefined ? undefined : await renderDocument(job, ctx.presign);
        body.execution = executionJson(snapshot, doc);
      }
      body.timestamp = seconds(at);
      if (clientToken !== undefined) body.clientToken = clientToken;
      return toJsonText(body);
    },
  };
  if (clientToken !== undefined) o.clientToken = clientToken;
  if (snapshot !== undefined && job !== undefined) o.document = keyOf(snapshot);
  return o;
}

/** GetPendingJobExecutions. */
function getPending(ctx: JobsContext, req: Request): void {
  parse(parseWith(GetPendingRequest, req.body));
  const { pending, at } = ctx.mutate((at) => ({ pending: ctx.store.pendingForThing(req.thingName), at }));
  const body: JsonObject = {
    inProgressJobs: pending
      .filter((e) => e.status === 'IN_PROGRESS')
      .slice(0, GET_LIST_LIMIT)
      .map(summaryJson),
    queuedJobs: pending
      .filter((e) => e.status === 'QUEUED')
      .slice(0, GET_LIST_LIMIT)
      .map(summaryJson),
    timestamp: seconds(at),
  };
  if (req.clientToken !== undefined) body.clientToken = req.clientToken;
  const text = JSON.stringify(body);
  ctx.send([{ thingName: req.thingName, topic: req.accepted, render: () => text }]);
}

/** StartNextPendingJobExecution. */
function startNext(ctx: JobsContext, req: Request): void {
  const r = parse(parseWith(StartNextRequest, req.body));
  ctx.mutate((at, out) => {
    const head = ctx.store.pendingForThing(req.thingName)[0];
    let execution = head;
    let job: JobRecord | undefined;
    if (head !== undefined) {
      job = ctx.store.getJob(head.jobId);
      if (head.status === 'QUEUED') {
        // QUEUED → IN_PROGRESS with the given statusDetails; an IN_PROGRESS head is returned as is
        // (docs/protocol.md, Requests and replies).
        execution = startExecution(ctx, head, job, at, r.statusDetails, r.stepTimeoutInMinutes);
      }
    }
    // AWS publishes nothing on `notify` or `notify-next` for a start-next (observed on the live
    // service): the head of the queue stays the same execution, only its status changed.
    out.push(acceptedReply(ctx, req, at, execution, job));
  });
}

/** DescribeJobExecution (`$next` allowed). */
function describe(ctx: JobsContext, req: Request): void {
  const { jobId, thingName } = req;
  if (jobId !== '$next') readJobId(jobId);
  const r = parse(parseWith(DescribeRequest, req.body));
  ctx.mutate((at, out) => {
    let execution: ExecutionRecord | undefined;
    if (jobId === '$next') {
      // `$next`: the head of the pending list; none pending → a reply without `execution`.
      execution = ctx.store.pendingForThing(thingName)[0];
    } else {
      execution = ctx.store.getExecution(jobId, thingName, r.executionNumber);
      if (execution === undefined) {
        throw new RequestError('ResourceNotFound', `job execution ${jobId} for thing ${thingName} not found`);
      }
    }
    const job = execution === undefined ? undefined : ctx.store.getJob(execution.jobId);
    if (
      jobId !== '$next' &&
      execution !== undefined &&
      job !== undefined &&
      terminalJob(job) &&
      isTerminal(execution.status)
    ) {
      // ErrorResponse TerminalStateReached: "a command to describe a job is performed on a job that is
      // in a terminal state". An execution still running under a cancelled job is still described, so
      // its device can refresh its presigned URLs and finish.
      throw new RequestError(
        'TerminalStateReached',
        `job ${jobId} is ${job.status} and its execution on ${thingName} is ${execution.status}`,
      );
    }
    const includeDoc = r.includeJobDocument ?? true;
    out.push(acceptedReply(ctx, req, at, execution, includeDoc ? job : undefined));
  });
}

/** UpdateJobExecution. */
function update(ctx: JobsContext, req: Request): void {
  const { jobId, thingName } = req;
  readJobId(jobId);
  const r = parse(parseWith(UpdateRequest, req.body));
  // A rejection found inside the transaction must still commit what ran before it (timers expired
  // on the way), so it is returned, not thrown.
  const refusal = ctx.mutate((at, out): RequestError | undefined => {
    const e = ctx.store.getExecution(jobId, thingName, r.executionNumber);
    if (e === undefined) {
      return new RequestError('ResourceNotFound', `job execution ${jobId} for thing ${thingName} not found`);
    }
    if (r.expectedVersion !== undefined && r.expectedVersion !== e.versionNumber) {
      return new RequestError(
        'VersionMismatch',
        // The live service's wording (docs/protocol.md, Live-service behaviours).
        `Expected version ${r.expectedVersion} but found version ${e.versionNumber}`,
        stateJson(e),
      );
    }
    const check = checkTransition(e.status, r.status, {
      actor: 'device',
      allowRejectFromInProgress: ctx.allowRejectFromInProgress,
    });
    if (!check.ok) {
      // Updates after a terminal state (including a cancel) are InvalidStateTransition with the state
      // (docs/protocol.md, Transitions; AWS ErrorResponse: "for example ... SUCCEEDED to IN_PROGRESS").
      return new RequestError(
        'InvalidStateTransition',
        `job execution ${jobId} cannot change from ${e.status} to ${r.status}`,
        stateJson(e),
      );
    }
    const job = ctx.store.getJob(jobId);
    const next = applyDeviceUpdate(ctx, e, job, r.status, r.statusDetails, r.stepTimeoutInMinutes, at);
    out.push(
      updateAccepted(
        ctx,
        req,
        at,
        next,
        r.includeJobExecutionState === true,
        r.includeJobDocument === true ? job : undefined,
      ),
    );
    out.push(...notificationsFor(ctx, thingName, next.status !== e.status, at));
    // Abort criteria, a retry, completion: after the device's own reply and notifications.
    if (isTerminal(next.status)) afterTerminal(ctx, next, at, out);
    return undefined;
  });
  if (refusal !== undefined) throw refusal;
}

function updateAccepted(
  ctx: JobsContext,
  req: Request,
  at: number,
  next: ExecutionRecord,
  includeState: boolean,
  job: JobRecord | undefined,
): Outbound {
  const snapshot = { ...next, statusDetails: { ...next.statusDetails } };
  const { clientToken } = req;
  return {
    thingName: req.thingName,
    topic: req.accepted,
    errorTopic: req.accepted.replace(/\/accepted$/, '/rejected'),
    ...(clientToken === undefined ? {} : { clientToken }),
    ...(job !== undefined && { document: keyOf(next) }),
    render: async () => {
      const body: OutObject = {};
      if (includeState) body.executionState = { ...stateJson(snapshot) };
      if (job !== undefined) body.jobDocument = new RawJson(await renderDocument(job, ctx.presign));
      body.timestamp = seconds(at);
      if (clientToken !== undefined) body.clientToken = clientToken;
      return toJsonText(body);
    },
  };
}

export const OPERATIONS: Record<Operation, (ctx: JobsContext, req: Request) => void> = {
  get: getPending,
  'start-next': startNext,
  describe,
  update,
};
