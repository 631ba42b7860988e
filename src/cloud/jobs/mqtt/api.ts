/**
 * The device side of the service: the Jobs MQTT API (docs/protocol.md, MQTT API) as a broker
 * TopicService.
 * Requests arrive on `$aws/things/<thing>/jobs/...`; replies go to `<topic>/accepted` or `/rejected`.
 */
import { errorMessage } from '../../../shared/errors.ts';
import type { JobsMqttErrorCode } from '../../../shared/jobs-protocol.ts';
import type { ClientIdentity, TopicService } from '../../broker/types.ts';
import type { JobsContext } from '../context.ts';
import { OPERATIONS, type Operation, type Request, RequestError, readClientToken } from './operations.ts';
import type { Outbound } from './outbound.ts';
import { createThrottle } from './throttle.ts';

import { type ExecutionStateJson, errorBody, type JsonObject } from './wire.ts';

export interface MqttApiOptions {
  isClosed: () => boolean;
  /** Per-thing request rate (service.ts, requestsPerSecondPerThing); undefined: no limit. */
  requestsPerSecondPerThing?: number;
}

export function createMqttApi(ctx: JobsContext, options: MqttApiOptions): TopicService {
  const now = () => ctx.clock.now();
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
      OPERATIONS[op](ctx, req);
    } catch (err) {
      if (err instanceof RequestError) {
        ctx.send([replyError(thingName, rejected, err.code, err.message, clientToken, err.executionState)]);
        return;
      }
      ctx.log.error({ err, topic }, 'jobs: request failed');
      ctx.send([replyError(thingName, rejected, 'InternalError', 'internal error', clientToken)]);
    }
  }

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
        // Never let a request crash the broker: answer InternalError (docs/protocol.md, Error replies).
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
