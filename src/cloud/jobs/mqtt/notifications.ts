/**
 * `notify` (JobExecutionsChanged) and `notify-next` (NextJobExecutionChanged), computed inside the
 * transaction of the change that causes them (AWS developer guide, "Jobs notifications").
 */
import type { JobsContext } from '../context.ts';
import { renderDocument } from '../document.ts';
import type { ExecutionRecord } from '../types.ts';
import { keyOf, type Outbound } from './outbound.ts';
import { executionJson, type JsonObject, jobsTopic, seconds, summaryJson, toJsonText } from './wire.ts';

/** A `notify` lists no more than 15 pending executions (AWS "Jobs notifications"). */
const NOTIFY_LIST_LIMIT = 15;

const headKey = (e: ExecutionRecord | undefined) =>
  e === undefined ? null : `${e.jobId}#${e.executionNumber}`;

/**
 * `notify` when the pending list changed (queued, status change, terminal, removal); `notify-next` only
 * when the head of the pending list is a different execution than the one last announced.
 */
export function notificationsFor(
  ctx: JobsContext,
  thingName: string,
  listChanged: boolean,
  at: number,
): Outbound[] {
  const { store } = ctx;
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
    const topic = jobsTopic(thingName, 'notify-next');
    if (head === undefined) {
      const body = JSON.stringify({ timestamp: seconds(at) });
      out.push({ thingName, topic, render: () => body });
    } else {
      const job = store.getJob(head.jobId);
      out.push({
        thingName,
        topic,
        ...(job !== undefined && { document: keyOf(head) }),
        render: async () => {
          const doc = job === undefined ? undefined : await renderDocument(job, ctx.presign);
          return toJsonText({ timestamp: seconds(at), execution: executionJson(head, doc) });
        },
      });
    }
  }
  return out;
}
