/**
 * JSON shapes of the Jobs MQTT API (reference section 1, "Jobs device MQTT API operations"): what goes
 * out on `accepted`/`rejected`, `notify` and `notify-next`. Times are seconds on this wire.
 */
import type { JobsMqttErrorCode } from '../../shared/jobs-protocol.ts';
import type { ExecutionRecord, ExecutionStatus } from './types.ts';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

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

/** JobExecution; `jobDocument` is the already rendered document (undefined leaves it out). */
export function executionJson(e: ExecutionRecord, jobDocument: Json | undefined): JsonObject {
  const x: JsonObject = { jobId: e.jobId, thingName: e.thingName };
  if (jobDocument !== undefined) x.jobDocument = jobDocument;
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
