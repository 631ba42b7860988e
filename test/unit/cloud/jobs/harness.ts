import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createJobsService,
  type JobsService,
  type JobsServiceOptions,
} from '../../../../src/cloud/jobs/service.ts';
import { ControlPlaneError } from '../../../../src/cloud/jobs/types.ts';
import { ManualClock } from '../../../../src/shared/clock.ts';

/**
 * A Jobs service on a temp SQLite file, a fake clock and a recording `publish`: the unit tests' world.
 * Time moves only through `h.clock.advanceSync()`; it starts at the real time so timestamps look real.
 */

// biome-ignore lint/suspicious/noExplicitAny: replies are arbitrary JSON that the tests inspect field by field.
export type Msg = { topic: string; payload: any; raw: string };

export const REGION = 'us-west-2';
export const ACCOUNT = '000000000000';
export const thingArn = (n: string) => `arn:aws:iot:${REGION}:${ACCOUNT}:thing/${n}`;
export const groupArn = (n: string) => `arn:aws:iot:${REGION}:${ACCOUNT}:thinggroup/${n}`;
/** The document placeholder (docs/protocol.md, Presigned URL placeholders). */
export const placeholder = (url: string) => `\${aws:iot:s3-presigned-url:${url}}`;
export const DOC = JSON.stringify({ operation: 'ota', version: '2.0.0' });

export interface Harness {
  svc: JobsService;
  clock: ManualClock;
  sent: Msg[];
  dbPath: string;
  presignCalls: { url: string; expires: number }[];
  /** Publishes as a thing to `$aws/things/<thing>/jobs/<suffix>` and returns what was sent in response. */
  request(thing: string, suffix: string, body: unknown): Promise<Msg[]>;
  /** Moves the fake clock and waits for the messages the timers caused. */
  advance(ms: number): Promise<void>;
  /** Messages sent since the mark. */
  since(mark: number): Msg[];
  restart(extra?: Partial<JobsServiceOptions>): void;
  close(): Promise<void>;
}

export async function harness(extra: Partial<JobsServiceOptions> = {}): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'jobs-svc-'));
  const dbPath = join(dir, 'jobs.db');
  const sent: Msg[] = [];
  const presignCalls: { url: string; expires: number }[] = [];
  const clock = new ManualClock({ start: Date.now() });
  let n = 0;
  const make = (more: Partial<JobsServiceOptions>) =>
    createJobsService({
      dbPath,
      clock,
      publish: (topic, payload) => {
        sent.push({ topic, payload: JSON.parse(payload), raw: payload });
      },
      presign: async (url, expires) => {
        presignCalls.push({ url, expires });
        n += 1;
        return `${url}?X-Amz-Signature=sig${n}&X-Amz-Expires=${expires}`;
      },
      ...more,
    });
  let more = extra;
  const h: Harness = {
    svc: make(more),
    clock,
    sent,
    dbPath,
    presignCalls,
    async request(thing, suffix, body) {
      const mark = sent.length;
      const payload = Buffer.isBuffer(body)
        ? body
        : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
      h.svc.topicService.onPublish(
        { kind: 'thing', thingName: thing },
        `$aws/things/${thing}/jobs/${suffix}`,
        payload,
      );
      await h.svc.idle();
      return sent.slice(mark);
    },
    async advance(ms) {
      clock.advanceSync(ms);
      await h.svc.idle();
    },
    since: (mark) => sent.slice(mark),
    restart(next) {
      h.svc.close();
      if (next !== undefined) more = { ...more, ...next };
      h.svc = make(more);
    },
    async close() {
      h.svc.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return h;
}

/**
 * Runs `fn` on a fresh harness and closes it afterwards, whether `fn` passed or threw:
 * `await withHarness(async (h) => { ... })`, or `withHarness({ minuteMs: 1000 }, async (h) => { ... })`.
 */
export async function withHarness<R>(fn: (h: Harness) => Promise<R>): Promise<R>;
export async function withHarness<R>(
  extra: Partial<JobsServiceOptions>,
  fn: (h: Harness) => Promise<R>,
): Promise<R>;
export async function withHarness<R>(
  a: Partial<JobsServiceOptions> | ((h: Harness) => Promise<R>),
  b?: (h: Harness) => Promise<R>,
): Promise<R> {
  const [extra, fn] = typeof a === 'function' ? [{}, a] : [a, b!];
  const h = await harness(extra);
  try {
    return await fn(h);
  } finally {
    await h.close();
  }
}

export const only = (msgs: Msg[], topic: string): Msg => {
  const m = msgs.filter((x) => x.topic === topic);
  if (m.length !== 1)
    assert.fail(`expected exactly one message on ${topic}, got ${msgs.map((x) => x.raw).join('\n')}`);
  return m[0] as Msg;
};
export const none = (msgs: Msg[], topic: string) =>
  assert.equal(msgs.filter((x) => x.topic === topic).length, 0, `unexpected message on ${topic}`);
export const T = (thing: string, suffix: string) => `$aws/things/${thing}/jobs/${suffix}`;

export const cpCode = (code: string, message?: RegExp) => (err: unknown) =>
  err instanceof ControlPlaneError &&
  err.code === code &&
  (message === undefined || message.test(err.message));

export async function withThing(h: Harness, thing = 'car-1') {
  h.svc.controlPlane.createThing({ thingName: thing });
  return thing;
}

export function assertErrorShape(m: Msg, code: string, clientToken?: string, withState = false) {
  const keys = ['code', 'message', ...(clientToken === undefined ? [] : ['clientToken']), 'timestamp'];
  if (withState) keys.push('executionState');
  assert.deepEqual(Object.keys(m.payload).sort(), keys.sort());
  assert.equal(m.payload.code, code);
  assert.equal(typeof m.payload.message, 'string');
  assert.ok(m.payload.message.length > 0);
  if (clientToken !== undefined) assert.equal(m.payload.clientToken, clientToken);
  assert.ok(Number.isInteger(m.payload.timestamp));
  assert.ok(Math.abs(m.payload.timestamp - Date.now() / 1000) < 5, 'timestamp is in seconds');
}

/** A thing group of `n` things named `<prefix><i>` (default `car-<i>`); returns the names. */
export function fleet(h: Harness, n: number, group = 'fleet', prefix = 'car-'): string[] {
  const cp = h.svc.controlPlane;
  cp.createThingGroup({ thingGroupName: group });
  const names = Array.from({ length: n }, (_, i) => `${prefix}${i}`);
  for (const name of names) {
    cp.createThing({ thingName: name });
    cp.addThingToThingGroup({ thingGroupName: group, thingName: name });
  }
  return names;
}
