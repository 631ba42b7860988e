/**
 * The local AWS IoT Jobs service: the device side (the Jobs MQTT API of docs/protocol.md) as a broker
 * TopicService, and the control plane (JobsControlPlane, ./types.ts) that the HTTP facade maps onto.
 * This file only composes the parts:
 *
 * - store.ts, state-machine.ts, executions.ts — the records and every change to an execution;
 * - mqtt/api.ts, mqtt/requests.ts — the device API and its request schemas;
 * - control-plane-*.ts — the operations the control plane calls;
 * - timers.ts — the deadlines, on the injected clock (src/shared/clock.ts);
 * - outbound.ts, notifications.ts, wire.ts, document.ts — what goes out, when and in which shape.
 *
 * Shape of every state change: one SQLite transaction computes the new rows AND the messages they cause
 * (reply, `notify`, `notify-next`); the messages are sent only after the commit is durable (a group
 * commit, group-commit.ts), in order, through a per-thing queue. Presigned-URL placeholders are resolved
 * at send time (docs/protocol.md, Presigned URL placeholders).
 */
import { type Clock, systemClock } from '../../shared/clock.ts';
import { errorMessage, ValidationError } from '../../shared/errors.ts';
import type { JobsMqttErrorCode } from '../../shared/jobs-protocol.ts';
import { type Logger, silentLogger } from '../../shared/log.ts';
import type { TopicService } from '../broker/types.ts';
import type { JobsContext } from './context.ts';
import { expireDue, failUndeliverable } from './lifecycle/outcomes.ts';
import { createTimerLoop } from './lifecycle/timers.ts';
import { jobOperations } from './management/jobs.ts';
import { templateOperations } from './management/templates.ts';
import { thingOperations } from './management/things.ts';
import { createMqttApi } from './mqtt/api.ts';
import { createGroupCommit } from './mqtt/group-commit.ts';
import { createOutbound, type Outbound } from './mqtt/outbound.ts';
import { JobsStore } from './store/store.ts';
import type { JobsControlPlane } from './types.ts';

export { MAX_DOCUMENT_BYTES, PRESIGNED_PLACEHOLDER } from './document.ts';
export { statusDetailsProblem } from './mqtt/requests.ts';
/** Error codes of the Jobs MQTT API ("Jobs device MQTT API operations", ErrorResponse). */
export type { JobsMqttErrorCode };

/**
 * A job document that fails to render this many times in a row fails its execution. A transient presign
 * error gets a device retry or two; a permanent one cannot wedge the thing's queue (section 4).
 */
export const MAX_RENDER_FAILURES = 3;

export interface JobsServiceOptions {
  /** SQLite file (':memory:' allowed in unit tests). */
  dbPath: string;
  /** Default 'us-west-2'. */
  region?: string;
  /** Default '000000000000' (used in ARNs). */
  accountId?: string;
  /** Cloud → device publish (the broker's). */
  publish: (topic: string, payload: string, qos: 0 | 1) => void | Promise<void>;
  /** Resolves `${aws:iot:s3-presigned-url:<url>}` placeholders (docs/protocol.md). */
  presign: (s3Url: string, expiresInSec: number) => Promise<string>;
  /** Fetches a CreateJob `documentSource` (an S3 URL). Without it documentSource is refused. */
  fetchDocument?: (url: string) => Promise<string>;
  /** Length of a "minute" for every Jobs duration; default 60000. Tests use e.g. 50. */
  minuteMs?: number;
  /** Clock and timers; default the system's. Tests pass a ManualClock and move time by hand. */
  clock?: Clock;
  /** Whether a device may move IN_PROGRESS → REJECTED (docs/protocol.md, Unconfirmed); default true. */
  allowRejectFromInProgress?: boolean;
  /**
   * Jobs MQTT API requests a thing may make per second (a token bucket, bursts of the same size); over
   * it a request is answered RequestThrottled. AWS throttles the Jobs data plane per thing but publishes
   * no exact figures (docs/protocol.md, Request rates). Default: no limit.
   */
  requestsPerSecondPerThing?: number;
  /** Called after a DeleteThing has committed (the stack drops the thing's MQTT connection). */
  onThingDeleted?: (thingName: string) => void;
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

export function createJobsService(opts: JobsServiceOptions): JobsService {
  const rate = opts.requestsPerSecondPerThing;
  if (rate !== undefined && !(Number.isFinite(rate) && rate > 0)) {
    throw new ValidationError('requestsPerSecondPerThing', `must be a number above 0 (got ${rate})`);
  }
  const region = opts.region ?? 'us-west-2';
  const accountId = opts.accountId ?? '000000000000';
  const clock = opts.clock ?? systemClock;
  const log = opts.logger ?? silentLogger;
  const store = new JobsStore(opts.dbPath);
  const arnPrefix = `arn:aws:iot:${region}:${accountId}:`;
  // Consecutive failures to render an execution's document; at MAX_RENDER_FAILURES it is failed.
  const renderFailures = new Map<string, number>();
  const outbound = createOutbound({
    publish: opts.publish,
    now: () => clock.now(),
    log,
    onDocument(key, error) {
      const id = `${key.jobId}\n${key.thingName}\n${key.executionNumber}`;
      if (error === undefined) {
        renderFailures.delete(id);
        return;
      }
      const n = (renderFailures.get(id) ?? 0) + 1;
      renderFailures.set(id, n);
      if (n < MAX_RENDER_FAILURES || closed) return;
      renderFailures.delete(id);
      try {
        ctx.mutate((at, out) => failUndeliverable(ctx, key, errorMessage(error), at, out));
      } catch (err) {
        log.error({ err }, 'jobs: could not fail an undeliverable execution');
      }
    },
  });
  let closed = false;
  const commit = createGroupCommit({
    sync: (done) => store.syncWal(done),
    deliver: (messages) => outbound.send(messages),
    log,
  });
  // Set while a device's Jobs request runs: its replies wait for the group commit. Any other change (the
  // control plane, whose HTTP answer follows at once) is synced before `mutate` returns.
  let inDeviceRequest = false;

  const ctx: JobsContext = {
    store,
    clock,
    log,
    region,
    accountId,
    minuteMs: opts.minuteMs ?? 60_000,
    allowRejectFromInProgress: opts.allowRejectFromInProgress ?? true,
    presign: opts.presign,
    fetchDocument: opts.fetchDocument,
    arn: {
      thing: (name) => `${arnPrefix}thing/${name}`,
      group: (name) => `${arnPrefix}thinggroup/${name}`,
      job: (jobId) => `${arnPrefix}job/${jobId}`,
    },
    onThingDeleted(thingName) {
      try {
        opts.onThingDeleted?.(thingName);
      } catch (err) {
        log.warn({ err, thingName }, 'jobs: onThingDeleted failed');
      }
    },
    send: (messages) => commit.send(messages),
    mutate<T>(fn: (at: number, out: Outbound[]) => T): T {
      const at = clock.now();
      const out: Outbound[] = [];
      const result = store.transaction(() => {
        out.push(...expireDue(ctx, at));
        return fn(at, out);
      });
      if (!inDeviceRequest) store.syncWalNow();
      commit.send(out);
      timers.schedule();
      return result;
    },
  };
  const timers = createTimerLoop(ctx);
  const controlPlane: JobsControlPlane = {
    ...thingOperations(ctx),
    ...jobOperations(ctx),
    ...templateOperations(ctx),
  };
  const mqttApi = createMqttApi(ctx, {
    isClosed: () => closed,
    ...(opts.requestsPerSecondPerThing !== undefined && {
      requestsPerSecondPerThing: opts.requestsPerSecondPerThing,
    }),
  });
  const topicService: TopicService = {
    claims: (topic) => mqttApi.claims(topic),
    onPublish(from, topic, payload) {
      inDeviceRequest = true;
      try {
        mqttApi.onPublish(from, topic, payload);
      } finally {
        inDeviceRequest = false;
      }
    },
  };

  // Timers survive restarts: they are rows in the database, re-armed here (docs/protocol.md, Timeouts).
  timers.schedule();

  return {
    controlPlane,
    topicService,
    idle: async () => {
      await commit.idle();
      await outbound.idle();
    },
    close() {
      if (closed) return;
      closed = true;
      timers.close();
      commit.close();
      outbound.close();
      store.close();
    },
  };
}
