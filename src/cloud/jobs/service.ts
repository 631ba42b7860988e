/**
 * The local AWS IoT Jobs service: the device side (Jobs MQTT API, reference section 1) as a broker
 * TopicService, and the control plane (JobsControlPlane, ./types.ts) that the HTTP facade maps onto.
 *
 * Shape of every state change: one SQLite transaction computes the new rows AND the messages they cause
 * (reply, `notify`, `notify-next`); the messages are sent only after the commit, in order, through a
 * per-thing queue (so a device never sees an `update/accepted` after the `notify-next` it caused).
 * Presigned-URL placeholders are resolved at send time (reference section 4).
 */
import { randomUUID } from 'node:crypto';
import { errorMessage } from '../../shared/errors.ts';
import type { JobsMqttErrorCode } from '../../shared/jobs-protocol.ts';
import { type Logger, silentLogger } from '../../shared/log.ts';
import { JOB_ID_PATTERN, THING_NAME_PATTERN } from '../../shared/topics.ts';
import type { ClientIdentity, TopicService } from '../broker/types.ts';
import { checkTransition, DEVICE_SETTABLE_STATUSES, isExecutionStatus, isTerminal } from './state-machine.ts';
import { JobsStore, type Seq } from './store.ts';
import {
  ControlPlaneError,
  type CreateJobInput,
  type ExecutionRecord,
  type ExecutionStatus,
  type JobRecord,
  type JobStatus,
  type JobsControlPlane,
  type Page,
  type PageRequest,
  type TargetSelection,
  type ThingGroupRecord,
  type ThingRecord,
} from './types.ts';

export interface JobsServiceOptions {
  /** SQLite file (':memory:' allowed in unit tests). */
  dbPath: string;
  /** Default 'us-west-2'. */
  region?: string;
  /** Default '000000000000' (used in ARNs). */
  accountId?: string;
  /** Cloud → device publish (the broker's). */
  publish: (topic: string, payload: string, qos: 0 | 1) => void | Promise<void>;
  /** Resolves `${aws:iot:s3-presigned-url:<url>}` placeholders (reference section 4). */
  presign: (s3Url: string, expiresInSec: number) => Promise<string>;
  /** Fetches a CreateJob `documentSource` (an S3 URL). Without it documentSource is refused. */
  fetchDocument?: (url: string) => Promise<string>;
  /** Length of a "minute" for the step and in-progress timers; default 60000. Tests use e.g. 50. */
  minuteMs?: number;
  /** Clock in epoch milliseconds. */
  now?: () => number;
  /** Whether a device may move IN_PROGRESS → REJECTED (reference section 2, UNCONFIRMED); default true. */
  allowRejectFromInProgress?: boolean;
  logger?: Logger;
}

export interface JobsService {
  controlPlane: JobsControlPlane;
  /** Claims `$aws/things/+/jobs/...`. */
  topicService: TopicService;
  /** Resolves once every message caused so far has been handed to `publish`. */
  idle(): Promise<void>;
  /** Stops timers and closes the database. Messages not yet sent are dropped. */
  close(): void;
}

/** Error codes of the Jobs MQTT API ("Jobs device MQTT API operations", ErrorResponse). */
export type { JobsMqttErrorCode };

/** The document placeholder of reference section 4. */
export const PRESIGNED_PLACEHOLDER = /\$\{aws:iot:s3-presigned-url:([^}]+)\}/g;

/** Job document limit (reference section 3): 32 KB. */
export const MAX_DOCUMENT_BYTES = 32 * 1024;
const MAX_CLIENT_TOKEN = 64;
const MAX_STATUS_DETAILS = 10;
const STATUS_DETAIL_KEY = /^[a-zA-Z0-9:_-]{1,128}$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
const GROUP_NAME_PATTERN = /^[a-zA-Z0-9:_-]{1,128}$/;
const ATTRIBUTE_KEY = /^[a-zA-Z0-9_.,@/:#-]{1,128}$/;
const ATTRIBUTE_VALUE = /^[a-zA-Z0-9_.,@/:#-]{0,800}$/;
const REASON_CODE = /^[\p{Lu}\p{Nd}_]{1,128}$/u;
/** Pending summaries in a `get` reply (reference section 1) and in a `notify` (AWS: "no more than 15"). */
const GET_LIST_LIMIT = 10;
const NOTIFY_LIST_LIMIT = 15;
const MAX_PAGE = 250;
const MAX_TIMER_DELAY = 2 ** 31 - 1;

class RequestError extends Error {
  readonly code: JobsMqttErrorCode;
  readonly executionState?: ExecutionStateJson;
  constructor(code: JobsMqttErrorCode, message: string, executionState?: ExecutionStateJson) {
    super(message);
    this.code = code;
    if (executionState !== undefined) this.executionState = executionState;
  }
}

interface ExecutionStateJson {
  status: ExecutionStatus;
  statusDetails: Record<string, string>;
  versionNumber: number;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

/** A message caused by a committed change; `render` runs at send time (presigning happens there). */
interface Outbound {
  thingName: string;
  topic: string;
  render: () => string | Promise<string>;
  /** Topic to send an InternalError to when rendering fails (request replies only). */
  errorTopic?: string;
  clientToken?: string;
}

const seconds = (ms: number): number => Math.floor(ms / 1000);
const cpErr = (code: ConstructorParameters<typeof ControlPlaneError>[0], message: string) =>
  new ControlPlaneError(code, message);

export function createJobsService(opts: JobsServiceOptions): JobsService {
  const region = opts.region ?? 'us-west-2';
  const accountId = opts.accountId ?? '000000000000';
  const minuteMs = opts.minuteMs ?? 60_000;
  const now = opts.now ?? Date.now;
  const log = opts.logger ?? silentLogger;
  const allowRejectFromInProgress = opts.allowRejectFromInProgress ?? true;
  const store = new JobsStore(opts.dbPath);
  const arnPrefix = `arn:aws:iot:${region}:${accountId}:`;

  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  const chains = new Map<string, Promise<void>>();

  // ---------------------------------------------------------------- outbound

  function send(messages: Outbound[]): void {
    for (const m of messages) {
      const prev = chains.get(m.thingName) ?? Promise.resolve();
      const next = prev.then(() => deliver(m));
      chains.set(m.thingName, next);
      void next.then(() => {
        if (chains.get(m.thingName) === next) chains.delete(m.thingName);
      });
    }
  }

  async function deliver(m: Outbound): Promise<void> {
    if (closed) return;
    let payload: string;
    try {
      payload = await m.render();
    } catch (err) {
      log.error({ err, topic: m.topic }, 'jobs: could not render a message');
      if (m.errorTopic === undefined) return;
      payload = JSON.stringify(errorBody('InternalError', 'internal error', m.clientToken, now()));
      await rawPublish(m.errorTopic, payload);
      return;
    }
    await rawPublish(m.topic, payload);
  }

  async function rawPublish(topic: string, payload: string): Promise<void> {
    if (closed) return;
    try {
      await opts.publish(topic, payload, 1);
    } catch (err) {
      log.warn({ err, topic }, 'jobs: publish failed');
    }
  }

  function errorBody(
    code: JobsMqttErrorCode,
    message: string,
    clientToken: string | undefined,
    at: number,
    executionState?: ExecutionStateJson,
  ): JsonObject {
    const body: JsonObject = { code, message };
    if (clientToken !== undefined) body.clientToken = clientToken;
    body.timestamp = seconds(at);
    if (executionState !== undefined) body.executionState = { ...executionState };
    return body;
  }

  // ---------------------------------------------------------------- documents and JSON shapes

  async function renderDocument(job: JobRecord): Promise<Json> {
    const doc = JSON.parse(job.document) as Json;
    const urls = new Set<string>();
    walkStrings(doc, (s) => {
      for (const m of s.matchAll(PRESIGNED_PLACEHOLDER)) urls.add(m[1] ?? '');
      return s;
    });
    if (urls.size === 0) return doc;
    const expires = job.presignedUrlConfig?.expiresInSec ?? 3600;
    const signed = new Map<string, string>();
    for (const url of urls) signed.set(url, await opts.presign(url, expires));
    return walkStrings(doc, (s) =>
      s.replace(PRESIGNED_PLACEHOLDER, (_all, url: string) => signed.get(url) ?? ''),
    );
  }

  function summaryJson(e: ExecutionRecord): JsonObject {
    const s: JsonObject = { jobId: e.jobId, queuedAt: seconds(e.queuedAt) };
    if (e.startedAt !== undefined) s.startedAt = seconds(e.startedAt);
    s.lastUpdatedAt = seconds(e.lastUpdatedAt);
    s.versionNumber = e.versionNumber;
    s.executionNumber = e.executionNumber;
    return s;
  }

  function stateJson(e: ExecutionRecord): ExecutionStateJson {
    return { status: e.status, statusDetails: { ...e.statusDetails }, versionNumber: e.versionNumber };
  }

  /** JobExecution; the document (if asked) is rendered at send time. */
  async function executionJson(e: ExecutionRecord, job: JobRecord | undefined): Promise<JsonObject> {
    const x: JsonObject = { jobId: e.jobId, thingName: e.thingName };
    if (job !== undefined) x.jobDocument = await renderDocument(job);
    x.status = e.status;
    x.statusDetails = { ...e.statusDetails };
    x.queuedAt = seconds(e.queuedAt);
    if (e.startedAt !== undefined) x.startedAt = seconds(e.startedAt);
    x.lastUpdatedAt = seconds(e.lastUpdatedAt);
    x.versionNumber = e.versionNumber;
    x.executionNumber = e.executionNumber;
    return x;
  }

  const jobsTopic = (thingName: string, suffix: string) => `$aws/things/${thingName}/jobs/${suffix}`;
  const headKey = (e: ExecutionRecord | undefined) =>
    e === undefined ? null : `${e.jobId}#${e.executionNumber}`;

  /**
   * Notifications for one thing after a change, computed inside the transaction ("Jobs notifications"):
   * `notify` when the pending list changed (queued, status change, terminal, removal); `notify-next` only
   * when the head of the pending list is a different execution than the one last announced.
   */
  function notificationsFor(thingName: string, listChanged: boolean, at: number): Outbound[] {
    const out: Outbound[] = [];
    const pending = store.pendingForThing(thingName);
    if (listChanged) {
      const inProgress = pending.filter((e) => e.status === 'IN_PROGRESS');
      const queued = pending.filter((e) => e.status === 'QUEUED');
      const jobs: JsonObject = {};
      let room = NOTIFY_LIST_LIMIT;
      if (inProgress.length > 0) {
        jobs.IN_PROGRESS = inProgress.slice(0, room).map(summaryJson);
        room -= jobs.IN_PROGRESS.length;
      }
      if (queued.length > 0 && room > 0) jobs.QUEUED = queued.slice(0, room).map(summaryJson);
      const body = JSON.stringify({ timestamp: seconds(at), jobs });
      out.push({ thingName, topic: jobsTopic(thingName, 'notify'), render: () => body });
    }
    const head = pending[0];
    const key = headKey(head);
    if (store.getThing(thingName) !== undefined && key !== store.getNotifiedHead(thingName)) {
      store.setNotifiedHead(thingName, key);
      if (head === undefined) {
        const body = JSON.stringify({ timestamp: seconds(at) });
        out.push({ thingName, topic: jobsTopic(thingName, 'notify-next'), render: () => body });
      } else {
        const job = store.getJob(head.jobId);
        out.push({
          thingName,
          topic: jobsTopic(thingName, 'notify-next'),
          render: async () =>
            JSON.stringify({ timestamp: seconds(at), execution: await executionJson(head, job) }),
        });
      }
    }
    return out;
  }

  /** SNAPSHOT jobs complete when every execution is terminal (AWS "Job states"). */
  function maybeComplete(jobId: string, at: number): void {
    const job = store.getJob(jobId);
    if (job === undefined || job.status !== 'IN_PROGRESS' || job.targetSelection !== 'SNAPSHOT') return;
    const c = store.countExecutions(jobId);
    if (c.total > 0 && c.pending === 0) {
      store.updateJob({ ...job, status: 'COMPLETED', lastUpdatedAt: at, completedAt: at });
    }
  }

  /** Times out every IN_PROGRESS execution whose timer has expired (reference section 2). */
  function expireDue(at: number): Outbound[] {
    const out: Outbound[] = [];
    for (const e of store.expired(at)) {
      const next: ExecutionRecord = {
        ...e,
        status: 'TIMED_OUT',
        lastUpdatedAt: at,
        versionNumber: e.versionNumber + 1,
      };
      delete next.stepTimeoutAt;
      delete next.inProgressTimeoutAt;
      store.updateExecution(next, e.versionNumber);
      maybeComplete(e.jobId, at);
      out.push(...notificationsFor(e.thingName, true, at));
      log.info({ jobId: e.jobId, thingName: e.thingName }, 'jobs: execution timed out');
    }
    return out;
  }

  function schedule(): void {
    if (closed) return;
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    const deadline = store.nextDeadline();
    if (deadline === undefined) return;
    const delay = Math.min(Math.max(0, deadline - now()), MAX_TIMER_DELAY);
    timer = setTimeout(onTimer, delay);
    timer.unref();
  }

  function onTimer(): void {
    timer = undefined;
    if (closed) return;
    try {
      const at = now();
      send(store.transaction(() => expireDue(at)));
    } catch (err) {
      log.error({ err }, 'jobs: timer processing failed');
    }
    schedule();
  }

  /** Runs a state change: one transaction (expiring due timers first), then sends, then re-arms timers. */
  function mutate<T>(fn: (at: number, out: Outbound[]) => T): T {
    const at = now();
    const out: Outbound[] = [];
    const result = store.transaction(() => {
      out.push(...expireDue(at));
      return fn(at, out);
    });
    send(out);
    schedule();
    return result;
  }

  // ---------------------------------------------------------------- device side (Jobs MQTT API)

  const topicService: TopicService = {
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
      if (closed) return;
      try {
        handlePublish(from, topic, payload);
      } catch (err) {
        // Never let a request crash the broker: answer InternalError (reference section 1).
        log.error({ err, topic }, 'jobs: request failed');
        try {
          const parts = topic.split('/');
          const thingName = parts[2] ?? '';
          send([
            replyError(thingName, `${topic}/rejected`, 'InternalError', 'internal error', undefined, now()),
          ]);
        } catch (err2) {
          log.error({ err: err2 }, 'jobs: could not report an internal error');
        }
      }
    },
  };

  function replyError(
    thingName: string,
    topic: string,
    code: JobsMqttErrorCode,
    message: string,
    clientToken: string | undefined,
    at: number,
    executionState?: ExecutionStateJson,
  ): Outbound {
    const body = JSON.stringify(errorBody(code, message, clientToken, at, executionState));
    return { thingName, topic, render: () => body };
  }

  function handlePublish(from: ClientIdentity, topic: string, payload: Buffer): void {
    // Operators never act on a device's jobs topics; the ACL already refuses them (broker types).
    if (from.kind !== 'thing') return;
    const parts = topic.split('/');
    const thingName = parts[2] ?? '';
    if (thingName !== from.thingName) {
      log.warn({ topic, thingName: from.thingName }, 'jobs: publish to another thing’s topic ignored');
      return;
    }
    const rest = parts.slice(4);
    const last = rest[rest.length - 1];
    // Our own reply topics: never answer them, so a misrouted reply can not start a loop.
    if (last === 'accepted' || last === 'rejected') return;

    let op: 'get' | 'start-next' | 'describe' | 'update' | undefined;
    let jobId = '';
    if (rest.length === 1 && rest[0] === 'get') op = 'get';
    else if (rest.length === 1 && rest[0] === 'start-next') op = 'start-next';
    else if (rest.length === 2 && rest[1] === 'get') {
      op = 'describe';
      jobId = rest[0] ?? '';
    } else if (rest.length === 2 && rest[1] === 'update') {
      op = 'update';
      jobId = rest[0] ?? '';
    }
    const rejected = `${topic}/rejected`;
    const accepted = `${topic}/accepted`;
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
      const req = parseRequest(payload);
      clientToken = readClientToken(req);
      switch (op) {
        case 'get':
          send([getPending(thingName, accepted, clientToken)]);
          return;
        case 'start-next':
          startNext(thingName, req, accepted, clientToken);
          return;
        case 'describe':
          describe(thingName, jobId, req, accepted, clientToken);
          return;
        case 'update':
          update(thingName, jobId, req, accepted, clientToken);
          return;
      }
    } catch (err) {
      if (err instanceof RequestError) {
        send([
          replyError(thingName, rejected, err.code, err.message, clientToken, now(), err.executionState),
        ]);
        return;
      }
      log.error({ err, topic }, 'jobs: request failed');
      send([replyError(thingName, rejected, 'InternalError', 'internal error', clientToken, now())]);
    }
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

  function readClientToken(req: JsonObject): string | undefined {
    const t = req.clientToken;
    if (t === undefined || t === null) return undefined;
    if (typeof t !== 'string' || t.length < 1 || t.length > MAX_CLIENT_TOKEN) {
      throw new RequestError(
        'InvalidRequest',
        `clientToken must be a string of 1–${MAX_CLIENT_TOKEN} characters`,
      );
    }
    return t;
  }

  function readBoolean(req: JsonObject, field: string, dflt: boolean): boolean {
    const v = req[field];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') throw new RequestError('InvalidRequest', `${field} must be a boolean`);
    return v;
  }

  function readWholeNumber(req: JsonObject, field: string, min: number): number | undefined {
    const v = req[field];
    if (v === undefined || v === null) return undefined;
    // Devices send numbers or numeric strings (reference section 1, "Docs vs wire"); accept both.
    const n =
      typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,15}$/.test(v) ? Number(v) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min) {
      throw new RequestError(
        'InvalidRequest',
        `${field} must be an integer ≥ ${min} (number or numeric string)`,
      );
    }
    return n;
  }

  function readStepTimeout(req: JsonObject): number | undefined {
    const v = req.stepTimeoutInMinutes;
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || !(v === -1 || (v >= 1 && v <= 10080))) {
      throw new RequestError(
        'InvalidRequest',
        'stepTimeoutInMinutes must be an integer from 1 to 10080, or -1',
      );
    }
    return v;
  }

  function readStatusDetails(req: JsonObject): Record<string, string> | undefined {
    const v = req.statusDetails;
    if (v === undefined || v === null) return undefined;
    const problem = statusDetailsProblem(v);
    if (problem !== undefined) throw new RequestError('InvalidRequest', problem);
    return { ...(v as Record<string, string>) };
  }

  function readJobId(jobId: string): void {
    if (!JOB_ID_PATTERN.test(jobId)) {
      throw new RequestError('InvalidRequest', `jobId must match ${JOB_ID_PATTERN.source}`);
    }
  }

  function getPending(thingName: string, accepted: string, clientToken: string | undefined): Outbound {
    const { pending, at } = mutate((at) => ({ pending: store.pendingForThing(thingName), at }));
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
    if (clientToken !== undefined) body.clientToken = clientToken;
    const text = JSON.stringify(body);
    return { thingName, topic: accepted, render: () => text };
  }

  function startNext(
    thingName: string,
    req: JsonObject,
    accepted: string,
    clientToken: string | undefined,
  ): void {
    const statusDetails = readStatusDetails(req);
    const stepTimeout = readStepTimeout(req);
    mutate((at, out) => {
      const head = store.pendingForThing(thingName)[0];
      let execution = head;
      let job: JobRecord | undefined;
      if (head !== undefined) {
        job = store.getJob(head.jobId);
        if (head.status === 'QUEUED') {
          // QUEUED → IN_PROGRESS with the given statusDetails; an IN_PROGRESS head is returned as is
          // (reference section 1, StartNextPendingJobExecution).
          execution = startExecution(head, job, at, statusDetails, stepTimeout);
        }
      }
      out.push(acceptedReply(thingName, accepted, clientToken, at, execution, job));
      if (execution !== head) out.push(...notificationsFor(thingName, true, at));
    });
  }

  function startExecution(
    e: ExecutionRecord,
    job: JobRecord | undefined,
    at: number,
    statusDetails: Record<string, string> | undefined,
    stepTimeout: number | undefined,
  ): ExecutionRecord {
    const next: ExecutionRecord = {
      ...e,
      status: 'IN_PROGRESS',
      statusDetails: statusDetails ?? e.statusDetails,
      startedAt: at,
      lastUpdatedAt: at,
      versionNumber: e.versionNumber + 1,
    };
    const inProgressMinutes = job?.timeoutConfig?.inProgressTimeoutInMinutes;
    // The in-progress timer is fixed when the execution starts (reference section 2).
    if (inProgressMinutes !== undefined) next.inProgressTimeoutAt = at + inProgressMinutes * minuteMs;
    applyStepTimeout(next, stepTimeout, at);
    store.updateExecution(next, e.versionNumber);
    return next;
  }

  /** Each new stepTimeoutInMinutes replaces the old one; -1 clears it (reference section 2). */
  function applyStepTimeout(e: ExecutionRecord, stepTimeout: number | undefined, at: number): void {
    if (stepTimeout === undefined) return;
    if (stepTimeout === -1) delete e.stepTimeoutAt;
    else e.stepTimeoutAt = at + stepTimeout * minuteMs;
  }

  function acceptedReply(
    thingName: string,
    topic: string,
    clientToken: string | undefined,
    at: number,
    execution: ExecutionRecord | undefined,
    job: JobRecord | undefined,
  ): Outbound {
    const snapshot =
      execution === undefined ? undefined : { ...execution, statusDetails: { ...execution.statusDetails } };
    const o: Outbound = {
      thingName,
      topic,
      errorTopic: topic.replace(/\/accepted$/, '/rejected'),
      render: async () => {
        const body: JsonObject = {};
        if (snapshot !== undefined) body.execution = await executionJson(snapshot, job);
        body.timestamp = seconds(at);
        if (clientToken !== undefined) body.clientToken = clientToken;
        return JSON.stringify(body);
      },
    };
    if (clientToken !== undefined) o.clientToken = clientToken;
    return o;
  }

  function describe(
    thingName: string,
    jobId: string,
    req: JsonObject,
    accepted: string,
    clientToken: string | undefined,
  ): void {
    if (jobId !== '$next') readJobId(jobId);
    const executionNumber = readWholeNumber(req, 'executionNumber', 1);
    const includeJobDocument = readBoolean(req, 'includeJobDocument', true);
    mutate((at, out) => {
      let execution: ExecutionRecord | undefined;
      if (jobId === '$next') {
        // `$next`: the head of the pending list; none pending → a reply without `execution`.
        execution = store.pendingForThing(thingName)[0];
      } else {
        execution = store.getExecution(jobId, thingName, executionNumber);
        if (execution === undefined) {
          throw new RequestError(
            'ResourceNotFound',
            `job execution ${jobId} for thing ${thingName} not found`,
          );
        }
      }
      const job = execution !== undefined && includeJobDocument ? store.getJob(execution.jobId) : undefined;
      out.push(acceptedReply(thingName, accepted, clientToken, at, execution, job));
    });
  }

  function update(
    thingName: string,
    jobId: string,
    req: JsonObject,
    accepted: string,
    clientToken: string | undefined,
  ): void {
    readJobId(jobId);
    const status = req.status;
    if (status === undefined || status === null)
      throw new RequestError('InvalidRequest', 'status is required');
    if (!isExecutionStatus(status) || !DEVICE_SETTABLE_STATUSES.includes(status)) {
      throw new RequestError(
        'InvalidRequest',
        `status must be one of ${DEVICE_SETTABLE_STATUSES.join(', ')}`,
      );
    }
    const statusDetails = readStatusDetails(req);
    const expectedVersion = readWholeNumber(req, 'expectedVersion', 0);
    const executionNumber = readWholeNumber(req, 'executionNumber', 1);
    const includeState = readBoolean(req, 'includeJobExecutionState', false);
    const includeDoc = readBoolean(req, 'includeJobDocument', false);
    const stepTimeout = readStepTimeout(req);

    // A rejection found inside the transaction must still commit what ran before it (timers expired
    // on the way), so it is returned, not thrown.
    const refusal = mutate((at, out): RequestError | undefined => {
      const e = store.getExecution(jobId, thingName, executionNumber);
      if (e === undefined) {
        return new RequestError(
          'ResourceNotFound',
          `job execution ${jobId} for thing ${thingName} not found`,
        );
      }
      if (expectedVersion !== undefined && expectedVersion !== e.versionNumber) {
        return new RequestError(
          'VersionMismatch',
          `expectedVersion ${expectedVersion} does not match the current version ${e.versionNumber}`,
          stateJson(e),
        );
      }
      const check = checkTransition(e.status, status, { actor: 'device', allowRejectFromInProgress });
      if (!check.ok) {
        // Updates after a terminal state (including a cancel) are InvalidStateTransition with the state
        // (reference section 2; AWS ErrorResponse: "for example ... SUCCEEDED to IN_PROGRESS").
        return new RequestError(
          'InvalidStateTransition',
          `job execution ${jobId} cannot change from ${e.status} to ${status}`,
          stateJson(e),
        );
      }
      let next: ExecutionRecord;
      const job = store.getJob(jobId);
      if (e.status === 'QUEUED' && status === 'IN_PROGRESS') {
        next = startExecution(e, job, at, statusDetails, stepTimeout);
      } else {
        next = {
          ...e,
          status,
          statusDetails: statusDetails ?? e.statusDetails,
          lastUpdatedAt: at,
          versionNumber: e.versionNumber + 1,
        };
        if (isTerminal(status)) {
          delete next.stepTimeoutAt;
          delete next.inProgressTimeoutAt;
        } else {
          applyStepTimeout(next, stepTimeout, at);
        }
        store.updateExecution(next, e.versionNumber);
        if (isTerminal(status)) maybeComplete(jobId, at);
      }
      const snapshot = { ...next, statusDetails: { ...next.statusDetails } };
      out.push({
        thingName,
        topic: accepted,
        errorTopic: accepted.replace(/\/accepted$/, '/rejected'),
        ...(clientToken === undefined ? {} : { clientToken }),
        render: async () => {
          const body: JsonObject = {};
          if (includeState) body.executionState = { ...stateJson(snapshot) };
          if (includeDoc && job !== undefined) body.jobDocument = await renderDocument(job);
          body.timestamp = seconds(at);
          if (clientToken !== undefined) body.clientToken = clientToken;
          return JSON.stringify(body);
        },
      });
      out.push(...notificationsFor(thingName, next.status !== e.status, at));
      return undefined;
    });
    if (refusal !== undefined) throw refusal;
  }

  // ---------------------------------------------------------------- control plane

  const thingArn = (name: string) => `${arnPrefix}thing/${name}`;
  const groupArn = (name: string) => `${arnPrefix}thinggroup/${name}`;
  const jobArn = (jobId: string) => `${arnPrefix}job/${jobId}`;

  function requireThingName(name: unknown, field = 'thingName'): string {
    if (typeof name !== 'string' || !THING_NAME_PATTERN.test(name)) {
      throw cpErr('InvalidRequestException', `${field} must match ${THING_NAME_PATTERN.source}`);
    }
    return name;
  }
  function requireGroupName(name: unknown): string {
    if (typeof name !== 'string' || !GROUP_NAME_PATTERN.test(name)) {
      throw cpErr('InvalidRequestException', `thingGroupName must match ${GROUP_NAME_PATTERN.source}`);
    }
    return name;
  }
  function requireJobId(jobId: unknown): string {
    if (typeof jobId !== 'string' || !JOB_ID_PATTERN.test(jobId)) {
      throw cpErr('InvalidRequestException', `jobId must match ${JOB_ID_PATTERN.source}`);
    }
    return jobId;
  }
  function thingOrThrow(name: string): ThingRecord {
    const t = store.getThing(requireThingName(name));
    if (t === undefined) throw cpErr('ResourceNotFoundException', `thing ${name} does not exist`);
    return t;
  }
  function groupOrThrow(name: string): ThingGroupRecord {
    const g = store.getGroup(requireGroupName(name));
    if (g === undefined) throw cpErr('ResourceNotFoundException', `thing group ${name} does not exist`);
    return g;
  }
  function jobOrThrow(jobId: string): JobRecord {
    const j = store.getJob(requireJobId(jobId));
    if (j === undefined) throw cpErr('ResourceNotFoundException', `job ${jobId} does not exist`);
    return j;
  }

  function pageOf<T>(
    page: PageRequest | undefined,
    fetch: (after: number, limit: number) => Seq<T>[],
  ): Page<T> {
    const max = page?.maxResults ?? MAX_PAGE;
    if (!Number.isInteger(max) || max < 1 || max > MAX_PAGE) {
      throw cpErr('InvalidRequestException', `maxResults must be an integer from 1 to ${MAX_PAGE}`);
    }
    const after = page?.nextToken === undefined || page.nextToken === '' ? 0 : decodeToken(page.nextToken);
    const rows = fetch(after, max + 1);
    const items = rows.slice(0, max);
    const result: Page<T> = { items: items.map((r) => r.item) };
    const last = items[items.length - 1];
    if (rows.length > max && last !== undefined) result.nextToken = encodeToken(last.seq);
    return result;
  }

  function queueExecution(job: JobRecord, thingName: string, at: number, out: Outbound[]): void {
    if (store.getExecution(job.jobId, thingName) !== undefined) return;
    store.insertExecution({
      jobId: job.jobId,
      thingName,
      executionNumber: 1,
      status: 'QUEUED',
      statusDetails: {},
      queuedAt: at,
      lastUpdatedAt: at,
      versionNumber: 1,
    });
    out.push(...notificationsFor(thingName, true, at));
  }

  function parseTarget(arn: unknown): { kind: 'thing' | 'group'; name: string } {
    if (typeof arn !== 'string') throw cpErr('InvalidRequestException', 'targets must be ARN strings');
    const m = /^arn:aws:iot:([a-z0-9-]+):(\d{12}):(thing|thinggroup)\/(.+)$/.exec(arn);
    if (m === null) {
      throw cpErr(
        'InvalidRequestException',
        `target ${arn} is not a thing ARN (arn:aws:iot:<region>:<account>:thing/<name>) or thing-group ARN (…:thinggroup/<name>)`,
      );
    }
    const [, r, acct, kind, name = ''] = m;
    if (r !== region || acct !== accountId) {
      throw cpErr(
        'ResourceNotFoundException',
        `target ${arn} is not in region ${region} and account ${accountId}`,
      );
    }
    if (kind === 'thing') {
      thingOrThrow(name);
      return { kind: 'thing', name };
    }
    groupOrThrow(name);
    return { kind: 'group', name };
  }

  function validateDocument(document: unknown): string {
    if (typeof document !== 'string')
      throw cpErr('InvalidRequestException', 'document must be a string of JSON');
    const bytes = Buffer.byteLength(document, 'utf8');
    if (bytes > MAX_DOCUMENT_BYTES) {
      throw cpErr(
        'InvalidRequestException',
        `document is ${bytes} bytes; the job document limit is ${MAX_DOCUMENT_BYTES} bytes (32 KB)`,
      );
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(document);
    } catch (err) {
      throw cpErr('InvalidRequestException', `document is not valid JSON: ${errorMessage(err)}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw cpErr('InvalidRequestException', 'document must be a JSON object');
    }
    return document;
  }

  function createJobSync(
    input: CreateJobInput,
    document: string,
    documentSource: string | undefined,
  ): JobRecord {
    const jobId = requireJobId(input.jobId);
    validateDocument(document);
    const targetSelection: TargetSelection = input.targetSelection ?? 'SNAPSHOT';
    if (targetSelection !== 'SNAPSHOT' && targetSelection !== 'CONTINUOUS') {
      throw cpErr('InvalidRequestException', 'targetSelection must be SNAPSHOT or CONTINUOUS');
    }
    if (!Array.isArray(input.targets) || input.targets.length === 0) {
      throw cpErr('InvalidRequestException', 'targets must list at least one thing or thing-group ARN');
    }
    if (input.description !== undefined) {
      if (
        typeof input.description !== 'string' ||
        input.description.length > 2028 ||
        CONTROL_CHARS.test(input.description)
      ) {
        throw cpErr(
          'InvalidRequestException',
          'description must be at most 2028 characters without control characters',
        );
      }
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
    return mutate((at, out) => {
      if (store.getJob(jobId) !== undefined) {
        throw cpErr('ResourceAlreadyExistsException', `job ${jobId} already exists`);
      }
      const targets = input.targets.map(parseTarget);
      const job: JobRecord = {
        jobId,
        jobArn: jobArn(jobId),
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
      for (const thingName of things) queueExecution(job, thingName, at, out);
      return job;
    });
  }

  function validateDetails(details: unknown): Record<string, string> {
    const problem = statusDetailsProblem(details);
    if (problem !== undefined) throw cpErr('InvalidRequestException', problem);
    return { ...(details as Record<string, string>) };
  }

  /** Cancels one pending execution inside a transaction; returns false when it was left alone. */
  function cancelExecution(
    e: ExecutionRecord,
    force: boolean,
    at: number,
    out: Outbound[],
    statusDetails?: Record<string, string>,
  ): boolean {
    const check = checkTransition(e.status, 'CANCELED', { actor: 'service', force });
    if (!check.ok) return false;
    const next: ExecutionRecord = {
      ...e,
      status: 'CANCELED',
      statusDetails: statusDetails ?? e.statusDetails,
      lastUpdatedAt: at,
      versionNumber: e.versionNumber + 1,
    };
    if (e.status === 'IN_PROGRESS') next.forceCanceled = true;
    delete next.stepTimeoutAt;
    delete next.inProgressTimeoutAt;
    store.updateExecution(next, e.versionNumber);
    out.push(...notificationsFor(e.thingName, true, at));
    return true;
  }

  const controlPlane: JobsControlPlane = {
    createThing(input) {
      const thingName = requireThingName(input.thingName);
      const attributes = input.attributes ?? {};
      const entries = Object.entries(attributes);
      if (entries.length > 50) throw cpErr('InvalidRequestException', 'attributes: at most 50 entries');
      for (const [k, v] of entries) {
        if (!ATTRIBUTE_KEY.test(k)) {
          throw cpErr('InvalidRequestException', `attribute name ${k} must match ${ATTRIBUTE_KEY.source}`);
        }
        if (typeof v !== 'string' || !ATTRIBUTE_VALUE.test(v)) {
          throw cpErr(
            'InvalidRequestException',
            `attribute ${k}: value must match ${ATTRIBUTE_VALUE.source}`,
          );
        }
      }
      return mutate((at) => {
        const existing = store.getThing(thingName);
        if (existing !== undefined) {
          // AWS CreateThing is idempotent for identical input, and a conflict otherwise.
          if (JSON.stringify(existing.attributes) === JSON.stringify(attributes)) return existing;
          throw cpErr(
            'ResourceAlreadyExistsException',
            `thing ${thingName} already exists with other attributes`,
          );
        }
        const t: ThingRecord = {
          thingName,
          thingArn: thingArn(thingName),
          thingId: randomUUID(),
          attributes: { ...attributes },
          version: 1,
          createdAt: at,
        };
        store.insertThing(t);
        return t;
      });
    },
    describeThing: (thingName) => thingOrThrow(thingName),
    listThings: (page) => pageOf(page, (after, limit) => store.listThings(after, limit)),

    createThingGroup(input) {
      const name = requireGroupName(input.thingGroupName);
      if (
        input.description !== undefined &&
        (typeof input.description !== 'string' || input.description.length > 2028)
      ) {
        throw cpErr('InvalidRequestException', 'description must be at most 2028 characters');
      }
      return mutate((at) => {
        const existing = store.getGroup(name);
        if (existing !== undefined) {
          if (existing.description === input.description) return existing;
          throw cpErr(
            'ResourceAlreadyExistsException',
            `thing group ${name} already exists with another description`,
          );
        }
        const g: ThingGroupRecord = {
          thingGroupName: name,
          thingGroupArn: groupArn(name),
          thingGroupId: randomUUID(),
          version: 1,
          createdAt: at,
        };
        if (input.description !== undefined) g.description = input.description;
        store.insertGroup(g);
        return g;
      });
    },
    describeThingGroup: (name) => groupOrThrow(name),
    addThingToThingGroup(input) {
      mutate((at, out) => {
        const g = groupOrThrow(input.thingGroupName);
        const t = thingOrThrow(input.thingName);
        if (!store.addMember(g.thingGroupName, t.thingName)) return;
        // CONTINUOUS jobs reach things added to their groups later (AWS "Continuous jobs").
        for (const job of store.activeContinuousJobs()) {
          if (job.targets.includes(g.thingGroupArn)) queueExecution(job, t.thingName, at, out);
        }
      });
    },
    listThingsInThingGroup(name, page) {
      groupOrThrow(name);
      return pageOf(page, (after, limit) => store.listMembers(name, after, limit));
    },

    createJob(input) {
      if (input.document !== undefined && input.documentSource !== undefined) {
        throw cpErr('InvalidRequestException', 'give either document or documentSource, not both');
      }
      if (input.documentSource !== undefined) {
        throw cpErr(
          'InvalidRequestException',
          opts.fetchDocument === undefined
            ? 'documentSource is not supported by this service (no document fetcher configured); send document'
            : 'documentSource must be fetched first: use createJobAsync',
        );
      }
      if (input.document === undefined)
        throw cpErr('InvalidRequestException', 'document or documentSource is required');
      return createJobSync(input, input.document, undefined);
    },
    async createJobAsync(input) {
      if (input.documentSource === undefined) return controlPlane.createJob(input);
      if (input.document !== undefined) {
        throw cpErr('InvalidRequestException', 'give either document or documentSource, not both');
      }
      const fetchDocument = opts.fetchDocument;
      if (fetchDocument === undefined) return controlPlane.createJob(input);
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
      const job = jobOrThrow(jobId);
      return { job, processDetails: store.processDetails(job.jobId) };
    },
    getJobDocument: (jobId) => jobOrThrow(jobId).document,
    listJobs(filter, page) {
      const statuses: JobStatus[] = ['IN_PROGRESS', 'CANCELED', 'COMPLETED', 'DELETION_IN_PROGRESS'];
      if (filter.status !== undefined && !statuses.includes(filter.status)) {
        throw cpErr('InvalidRequestException', `status must be one of ${statuses.join(', ')}`);
      }
      if (
        filter.targetSelection !== undefined &&
        filter.targetSelection !== 'SNAPSHOT' &&
        filter.targetSelection !== 'CONTINUOUS'
      ) {
        throw cpErr('InvalidRequestException', 'targetSelection must be SNAPSHOT or CONTINUOUS');
      }
      return pageOf(page, (after, limit) => store.listJobs(filter, after, limit));
    },
    listJobExecutionsForJob(jobId, filter, page) {
      jobOrThrow(jobId);
      if (filter.status !== undefined && !isExecutionStatus(filter.status)) {
        throw cpErr('InvalidRequestException', 'status is not a job execution status');
      }
      return pageOf(page, (after, limit) => store.listExecutionsForJob(jobId, filter.status, after, limit));
    },
    listJobExecutionsForThing(thingName, filter, page) {
      thingOrThrow(thingName);
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
      if (
        options.comment !== undefined &&
        (typeof options.comment !== 'string' || options.comment.length > 2028)
      ) {
        throw cpErr('InvalidRequestException', 'comment must be at most 2028 characters');
      }
      if (options.reasonCode !== undefined && !REASON_CODE.test(options.reasonCode)) {
        throw cpErr('InvalidRequestException', `reasonCode must match ${REASON_CODE.source}`);
      }
      return mutate((at, out) => {
        const job = jobOrThrow(jobId);
        if (job.status === 'COMPLETED') {
          throw cpErr('InvalidStateTransitionException', `job ${jobId} is COMPLETED and cannot be canceled`);
        }
        // QUEUED executions are canceled; IN_PROGRESS ones only with force (AWS CancelJob).
        for (const e of store.pendingForJob(job.jobId)) cancelExecution(e, force, at, out);
        const next: JobRecord = { ...job, status: 'CANCELED', lastUpdatedAt: at };
        if (force) next.forceCanceled = true;
        if (options.comment !== undefined) next.comment = options.comment;
        if (options.reasonCode !== undefined) next.reasonCode = options.reasonCode;
        store.updateJob(next);
        return next;
      });
    },
    cancelJobExecution(jobId, thingName, options) {
      requireJobId(jobId);
      requireThingName(thingName);
      const details =
        options.statusDetails === undefined ? undefined : validateDetails(options.statusDetails);
      const force = options.force === true;
      mutate((at, out) => {
        jobOrThrow(jobId);
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
        cancelExecution(e, force, at, out, details);
        maybeComplete(jobId, at);
      });
    },
    deleteJob(jobId, options) {
      const force = options.force === true;
      mutate((at, out) => {
        const job = jobOrThrow(jobId);
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
        for (const t of things) out.push(...notificationsFor(t, true, at));
      });
    },
  };

  // Timers survive restarts: they are rows in the database, re-armed here (reference section 2).
  schedule();

  return {
    controlPlane,
    topicService,
    async idle() {
      while (chains.size > 0) await Promise.all([...chains.values()]);
    },
    close() {
      if (closed) return;
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      store.close();
    },
  };
}

/** statusDetails limits of reference section 3; returns the problem, or undefined when valid. */
export function statusDetailsProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return 'statusDetails must be an object of string values';
  }
  const entries = Object.entries(value);
  if (entries.length > MAX_STATUS_DETAILS)
    return `statusDetails may hold at most ${MAX_STATUS_DETAILS} entries`;
  for (const [k, v] of entries) {
    if (!STATUS_DETAIL_KEY.test(k))
      return `statusDetails key ${JSON.stringify(k)} must match ${STATUS_DETAIL_KEY.source}`;
    if (typeof v !== 'string') return `statusDetails.${k} must be a string`;
    if (v.length < 1 || v.length > 1024) return `statusDetails.${k} must be 1–1024 characters`;
    if (CONTROL_CHARS.test(v)) return `statusDetails.${k} must not contain control characters`;
  }
  return undefined;
}

function walkStrings(v: Json, f: (s: string) => string): Json {
  if (typeof v === 'string') return f(v);
  if (Array.isArray(v)) return v.map((x) => walkStrings(x, f));
  if (v !== null && typeof v === 'object') {
    const o: { [k: string]: Json } = {};
    for (const [k, x] of Object.entries(v)) o[k] = walkStrings(x, f);
    return o;
  }
  return v;
}

function encodeToken(seq: number): string {
  return Buffer.from(JSON.stringify({ v: 1, after: seq })).toString('base64url');
}

function decodeToken(token: string): number {
  try {
    const parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as {
      v?: unknown;
      after?: unknown;
    };
    if (
      parsed.v === 1 &&
      typeof parsed.after === 'number' &&
      Number.isSafeInteger(parsed.after) &&
      parsed.after >= 0
    ) {
      return parsed.after;
    }
  } catch {
    // fall through
  }
  throw new ControlPlaneError('InvalidRequestException', 'nextToken is not valid');
}
