/**
 * JSON shapes of the Jobs MQTT API (docs/protocol.md, MQTT API; AWS "Jobs device MQTT API operations"):
 * what goes out on `accepted`/`rejected`, `notify` and `notify-next`. Times are seconds on this wire.
 */
import type { JobsMqttErrorCode } from '../../../shared/jobs-protocol.ts';
import type { ExecutionRecord, ExecutionStatus } from '../types.ts';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

/** JSON text that goes out as it is (a rendered job document): never parsed, never re-serialized. */
export class RawJson {
  constructor(readonly text: string) {}
}
/** A reply under construction: our own shallow shapes, with raw JSON text as leaves where needed. */
export type OutJson = Json | RawJson | OutJson[] | { [k: string]: OutJson };
export type OutObject = { [k: string]: OutJson };

/**
 * Serializes a reply. Our shapes are a few levels deep; a document inside is spliced in as text, so the
 * depth of a job document never reaches JSON.stringify.
 */
export function toJsonText(v: OutJson): string {
  if (v instanceof RawJson) return v.text;
  if (Array.isArray(v)) return `[${v.map(toJsonText).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const parts: string[] = [];
    for (const [k, x] of Object.entries(v))
      if (x !== undefined) parts.push(`${JSON.stringify(k)}:${toJsonText(x)}`);
    return `{${parts.join(',')}}`;
  }
  return JSON.stringify(v);
}

export interface ExecutionStateJson {
  status: ExecutionStatus;
  statusDetails?: Record<string, string>;
  versionNumber: number;
}

export const seconds = (ms: number): number => Math.floor(ms / 1000);

export const jobsTopic = (thingName: string, suffix: string): string =>
  `$aws/things/${thingName}/jobs/${suffix}`;

/** JobExecutionSummary. */
export function summaryJson(e: ExecutionRecord): JsonObject {
  const s: JsonObject = { jobId: e.jobId, queuedAt: seconds(e.queuedAt) };
  if (e.startedAt !== undefined) s.startedAt = seconds(e.startedAt);
  s.lastUpdatedAt = seconds(e.lastUpdatedAt);
  s.versionNumber = e.versionNumber;
  s.executionNumber = e.executionNumber;
  return s;
}

/**
 * JobExecutionState, holding only the fields that are set: the live service sends
 * `{"status":"QUEUED","versionNumber":1}` for an execution that never got statusDetails.
 */
export function stateJson(e: ExecutionRecord): ExecutionStateJson {
  const hasDetails = Object.keys(e.statusDetails).length > 0;
  return {
    status: e.status,
    ...(hasDetails && { statusDetails: { ...e.statusDetails } }),
    versionNumber: e.versionNumber,
  };
}

/** JobExecution; `jobDocument` is the rendered document's text (undefined leaves it out). */
export function executionJson(e: ExecutionRecord, jobDocument: string | undefined): OutObject {
  const x: OutObject = { jobId: e.jobId, thingName: e.thingName };
  if (jobDocument !== undefined) x.jobDocument = new RawJson(jobDocument);
  x.status = e.status;
  x.statusDetails = { ...e.statusDetails };
  x.queuedAt = seconds(e.queuedAt);
  if (e.startedAt !== undefined) x.startedAt = seconds(e.startedAt);
  x.lastUpdatedAt = seconds(e.lastUpdatedAt);
  x.versionNumber = e.versionNumber;
  x.executionNumber = e.executionNumber;
  return x;
}

/** ErrorResponse `{code, message, clientToken?, timestamp, executionState?}`. */
export function errorBody(
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
