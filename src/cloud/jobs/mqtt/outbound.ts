/**
 * Delivery of the messages a committed change causes. Every state change computes its messages inside
 * its transaction; they are sent only after the commit, in order, through one queue per thing, so a
 * device never sees an `update/accepted` after the `notify-next` it caused. `render` runs at send time,
 * which is where presigned URLs are made (docs/protocol.md, Presigned URL placeholders).
 */
import type { JobsMqttErrorCode } from '../../../shared/jobs-protocol.ts';
import type { Logger } from '../../../shared/log.ts';
import { errorBody } from './wire.ts';

/** Which execution's job document a message carries. */
export interface ExecutionKey {
  jobId: string;
  thingName: string;
  executionNumber: number;
}

export const keyOf = (e: ExecutionKey): ExecutionKey => ({
  jobId: e.jobId,
  thingName: e.thingName,
  executionNumber: e.executionNumber,
});

export interface Outbound {
  thingName: string;
  topic: string;
  render: () => string | Promise<string>;
  /** Topic to send an InternalError to when rendering fails (request replies only). */
  errorTopic?: string;
  clientToken?: string;
  /** Set when `render` renders this execution's job document (rendering may fail: a presign error). */
  document?: ExecutionKey;
}

export interface OutboundQueue {
  send(messages: Outbound[]): void;
  /** Resolves once every message queued so far has been handed to `publish`. */
  idle(): Promise<void>;
  close(): void;
}

export interface OutboundDeps {
  publish: (topic: string, payload: string, qos: 0 | 1) => void | Promise<void>;
  now: () => number;
  log: Logger;
  /** Told of every rendered or failed job document, so a document that never renders cannot wedge a queue. */
  onDocument?: (key: ExecutionKey, error: unknown | undefined) => void;
}

export function createOutbound(deps: OutboundDeps): OutboundQueue {
  const chains = new Map<string, Promise<void>>();
  let closed = false;

  async function rawPublish(topic: string, payload: string): Promise<void> {
    if (closed) return;
    try {
      await deps.publish(topic, payload, 1);
    } catch (err) {
      deps.log.warn({ err, topic }, 'jobs: publish failed');
    }
  }

  async function deliver(m: Outbound): Promise<void> {
    if (closed) return;
    let payload: string;
    try {
      payload = await m.render();
      if (m.document !== undefined) deps.onDocument?.(m.document, undefined);
    } catch (err) {
      deps.log.error({ err, topic: m.topic }, 'jobs: could not render a message');
      if (m.document !== undefined) deps.onDocument?.(m.document, err ?? new Error('render failed'));
      if (m.errorTopic === undefined) return;
      const code: JobsMqttErrorCode = 'InternalError';
      await rawPublish(
        m.errorTopic,
        JSON.stringify(errorBody(code, 'internal error', m.clientToken, deps.now())),
      );
      return;
    }
    await rawPublish(m.topic, payload);
  }

  return {
    send(messages) {
      for (const m of messages) {
        const prev = chains.get(m.thingName) ?? Promise.resolve();
        const next = prev.then(() => deliver(m));
        chains.set(m.thingName, next);
        void next.then(() => {
          if (chains.get(m.thingName) === next) chains.delete(m.thingName);
        });
      }
    },
    async idle() {
      while (chains.size > 0) await Promise.all([...chains.values()]);
    },
    close() {
      closed = true;
    },
  };
}
