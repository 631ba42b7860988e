/**
 * The device side of the service: the Jobs MQTT API (reference section 1) as a broker TopicService.
 * Requests arrive on `$aws/things/<thing>/jobs/...`; replies go to `<topic>/accepted` or `/rejected`.
 */
import { errorMessage } from '../../shared/errors.ts';
import type { JobsMqttErrorCode } from '../../shared/jobs-protocol.ts';
import { JOB_ID_PATTERN } from '../../shared/topics.ts';
import type { ClientIdentity, TopicService } from '../broker/types.ts';
import type { JobsContext } from './context.ts';
import { renderDocument } from './document.ts';
import { applyDeviceUpdate, startExecution } from './executions.ts';
import {
  clientTokenSchema,
  DescribeRequest,
  GetPendingRequest,
  JOB_ID_MESSAGE,
  parseWith,
  StartNextRequest,
  UpdateRequest,
} from './mqtt-requests.ts';
import { notificationsFor } from './notifications.ts';
import { keyOf, type Outbound } from './outbound.ts';
import { afterTerminal } from './outcomes.ts';
import { checkTransition, isTerminal } from './state-machine.ts';
import { createThrottle } from './throttle.ts';
import type { ExecutionRecord, JobRecord } from './types.ts';

const terminalJob = (job: JobRecord) => job.status === 'COMPLETED' || job.status === 'CANCELED';

import {
  type ExecutionStateJson,
  errorBody,
  executionJson,
  type JsonObject,
  type OutObject,
  RawJson,
  seconds,
  stateJson,
  summaryJson,
  toJsonText,
} from './wire.ts';

/** Pending summaries in a `get` reply (reference section 1: at most 10 of each). */
const GET_LIST_LIMIT = 10;

class RequestError extends Error {
  readonly code: JobsMqttErrorCode;
  readonly executionState?: ExecutionStateJson;
  constructor(code: JobsMqttErrorCode, message: string, executionState?: ExecutionStateJson) {
    super(message);
    this.code = code;
    if (executionState !== undefined) this.executionState = executionState;
  }
}

type Operation = 'get' | 'start-next' | 'describe' | 'update';

interface Request {
  thingName: string;
  jobId: string;
  body: JsonObject;
  accepted: string;
  clientToken: string | undefined;
}

export interface MqttApiOptions {
  isClosed: () => boolean;
  /** Per-thing request rate (service.ts, requestsPerSecondPerThing); undefined: no limit. */
  requestsPerSecondPerThing?: number;
}

export function createMqttApi(ctx: JobsContext, options: MqttApiOptions): TopicService {
  const now = () => ctx.scheduler.now();
  const { isClosed } = options;
  const rate = options.requestsPerSecondPerThing;
  const throttle = rate === undefined ? undefined : createThrottle(rate, now);

  function replyError(
    thingName: string,
    topic: string,
    code: JobsMqttErrorCode,
    message: string,
    clientToken: string | undefined,
    executionState?: ExecutionStateJson,
  ): Outbound {
    const body = JSON.stringify(errorBody(code, message, clientToken, now(), executionState));
    return { thingName, topic, render: () => body };
  }

  function handlePublish(from: ClientIdentity, topic: string, payload: Buffer): void {
    // Operators never act on a device's jobs topics; the ACL already refuses them (broker types).
    if (from.kind !== 'thing') return;
    const parts = topic.split('/');
    const thingName = parts[2] ?? '';
    if (thingName !== from.thingName) {
      ctx.log.warn({ topic, thingName: from.thingName }, 'jobs: publish to another thing’s topic ignored');
      return;
    }
    const rest = parts.slice(4);
    const last = rest[rest.length - 1];
    // Our own reply topics: never answer them, so a misrouted reply can not start a loop.
    if (last === 'accepted' || last === 'rejected') return;
    const { op, jobId } = operationOf(rest);
    const rejected = `${topic}/rejected`;
    let clientToken: string | undefined;
    try {
      if (op === undefined) {
        try {
          clientToken = readClientToken(parseRequest(payload));
        } catch {
          // The topic is the error to report; a bad payload on it has no token to echo.
        }
        throw new RequestError('InvalidTopic', `topic ${topic} does not map to any Jobs API operation`);
      }
      const body = parseRequest(payload);
      clientToken = readClientToken(body);
      if (throttle !== undefined && !throttle.take(thingName)) {
        throw new RequestError(
          'RequestThrottled',
          `thing ${thingName} made more than ${rate} Jobs requests per second`,
        );
      }
      const req: Request = { thingName, jobId, body, accepted: `${topic}/accepted`, clientToken };
      OPERATIONS[op](req);
    } catch (err) {
      if (err instanceof RequestError) {
        ctx.send([replyError(thingName, rejected, err.code, err.message, clientToken, err.executionState)]);
        return;
      }
      ctx.log.error({ err, topic }, 'jobs: request failed');
      ctx.send([replyError(thingName, rejected, 'InternalError', 'internal error', clientToken)]);
    }
  }

  function parse<T>(r: { ok: true; value: T } | { ok: false; message: string }): T {
    if (!r.ok) throw new RequestError('InvalidRequest', r.message);
    return r.value;
  }

  function readClientToken(body: JsonObject): string | undefined {
    return parse(parseWith(clientTokenSchema, body.clientToken));
  }

  function readJobId(jobId: string): void {
    if (!JOB_ID_PATTERN.test(jobId)) throw new RequestError('InvalidRequest', JOB_ID_MESSAGE);
  }

  function acceptedReply(
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
  function getPending(req: Request): void {
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
  function startNext(req: Request): void {
    const r = parse(parseWith(StartNextRequest, req.body));
    ctx.mutate((at, out) => {
      const head = ctx.store.pendingForThing(req.thingName)[0];
      let execution = head;
      let job: JobRecord | undefined;
      if (head !== undefined) {
        job = ctx.store.getJob(head.jobId);
        if (head.status === 'QUEUED') {
          // QUEUED → IN_PROGRESS with the given statusDetails; an IN_PROGRESS head is returned as is
          // (reference section 1, StartNextPendingJobExecution).
          execution = startExecution(ctx, head, job, at, r.statusDetails, r.stepTimeoutInMinutes);
        }
      }
      // AWS publishes nothing on `notify` or `notify-next` for a start-next (observed on the live
      // service): the head of the queue stays the same execution, only its status changed.
      out.push(acceptedReply(req, at, execution, job));
    });
  }

  /** DescribeJobExecution (`$next` allowed). */
  function describe(req: Request): void {
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
          throw new RequestError(
            'ResourceNotFound',
            `job execution ${jobId} for thing ${thingName} not found`,
          );
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
      out.push(acceptedReply(req, at, execution, includeDoc ? job : undefined));
    });
  }

  /** UpdateJobExecution. */
  function update(req: Request): void {
    const { jobId, thingName } = req;
    readJobId(jobId);
    const r = parse(parseWith(UpdateRequest, req.body));
    // A rejection found inside the transaction must still commit what ran before it (timers expired
    // on the way), so it is returned, not thrown.
    const refusal = ctx.mutate((at, out): RequestError | undefined => {
      const e = ctx.store.getExecution(jobId, thingName, r.executionNumber);
      if (e === undefined) {
        return new RequestError(
          'ResourceNotFound',
          `job execution ${jobId} for thing ${thingName} not found`,
        );
      }
      if (r.expectedVersion !== undefined && r.expectedVersion !== e.versionNumber) {
        return new RequestError(
          'VersionMismatch',
          // The live service's wording (reference section 1, VersionMismatch).
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
        // (reference section 2; AWS ErrorResponse: "for example ... SUCCEEDED to IN_PROGRESS").
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

  const OPERATIONS: Record<Operation, (req: Request) => void> = {
    get: getPending,
    'start-next': startNext,
    describe,
    update,
  };

  return {
    /**
     * Device → service request topics only. The service → device topics (`notify`, `notify-next`,
     * `.../accepted`, `.../rejected`) are not claimed: the broker forwards claimed topics to the service
     * instead of subscribers, and these must reach the device.
     */
    claims(topic: string): boolean {
      const parts = topic.split('/');
      if (parts.length < 5 || parts[0] !== '$aws' || parts[1] !== 'things' || parts[3] !== 'jobs')
        return false;
      const last = parts[parts.length - 1];
      if (last === 'accepted' || last === 'rejected') return false;
      return !(parts.length === 5 && (last === 'notify' || last === 'notify-next'));
    },
    onPublish(from: ClientIdentity, topic: string, payload: Buffer): void {
      if (isClosed()) return;
      try {
        handlePublish(from, topic, payload);
      } catch (err) {
        // Never let a request crash the broker: answer InternalError (reference section 1).
        ctx.log.error({ err, topic }, 'jobs: request failed');
        try {
          const thingName = topic.split('/')[2] ?? '';
          ctx.send([
            replyError(thingName, `${topic}/rejected`, 'InternalError', 'internal error', undefined),
          ]);
        } catch (err2) {
          ctx.log.error({ err: err2 }, 'jobs: could not report an internal error');
        }
      }
    },
  };
}

function operationOf(rest: string[]): { op: Operation | undefined; jobId: string } {
  if (rest.length === 1 && rest[0] === 'get') return { op: 'get', jobId: '' };
  if (rest.length === 1 && rest[0] === 'start-next') return { op: 'start-next', jobId: '' };
  if (rest.length === 2 && rest[1] === 'get') return { op: 'describe', jobId: rest[0] ?? '' };
  if (rest.length === 2 && rest[1] === 'update') return { op: 'update', jobId: rest[0] ?? '' };
  return { op: undefined, jobId: '' };
}

function parseRequest(payload: Buffer): JsonObject {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(payload);
  } catch {
    throw new RequestError('InvalidJson', 'the request is not valid UTF-8');
  }
  if (text.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new RequestError('InvalidJson', `the request is not valid JSON: ${errorMessage(err)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RequestError('InvalidRequest', 'the request must be a JSON object');
  }
  return value as JsonObject;
}
