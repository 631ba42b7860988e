import { OtaError } from '../shared/errors.ts';
import type { JobsMqttErrorCode } from '../shared/jobs-protocol.ts';

/**
 * Why a download attempt failed, as data. What the download does about each kind (resume with Range,
 * restart at 0, refresh a presigned URL, or give up and remove the `.part`) is one table in download.ts.
 */
export type DownloadErrorKind =
  | 'network' // connection refused/reset, DNS failure, premature end, timeout: resume with Range
  | 'unavailable' // HTTP 5xx, 429, 408: the server says "later": resume with Range
  | 'http' // any other HTTP status (`status` says which): the request can never succeed
  | 'changed' // the object changed under us (412, 200 to a ranged request, ETag differs): restart at 0
  | 'range' // 416: our offset is past the object's end: restart at 0
  | 'expired' // 403 on a presigned URL: fetch a fresh URL ({jobId}/get, docs/protocol.md), then resume
  | 'size' // size differs from the job document / Content-Length / Content-Range
  | 'checksum' // sha256 differs from the job document
  | 'disk' // the local file system refused: disk full, read-only, not writable (the path is named)
  | 'exhausted'; // the retry budget (time without progress, or restarts) is used up

export class DownloadError extends OtaError {
  readonly kind: DownloadErrorKind;
  readonly status: number | undefined;
  constructor(kind: DownloadErrorKind, message: string, options: { status?: number; cause?: unknown } = {}) {
    super(`OTA_DOWNLOAD_${kind.toUpperCase()}`, message, options);
    this.kind = kind;
    this.status = options.status;
  }
  /** Whether a later attempt may succeed (network, unavailable): the download loop resumes these. */
  get retryable(): boolean {
    return this.kind === 'network' || this.kind === 'unavailable';
  }
}

/** The Jobs service's error codes, plus the client's own: no reply in time, or no connection. */
export type JobsErrorCode = JobsMqttErrorCode | 'Timeout' | 'Disconnected';

/** A Jobs MQTT API request was rejected (docs/protocol.md, Error replies) or timed out. */
export class JobsRequestError extends OtaError {
  readonly jobsCode: JobsErrorCode | string;
  readonly executionState:
    | { status?: string; statusDetails?: Record<string, string>; versionNumber?: number }
    | undefined;
  constructor(
    jobsCode: string,
    message: string,
    executionState?: { status?: string; statusDetails?: Record<string, string>; versionNumber?: number },
  ) {
    super(`OTA_JOBS_${jobsCode.toUpperCase()}`, `${jobsCode}: ${message}`);
    this.jobsCode = jobsCode;
    this.executionState = executionState;
  }
  /**
   * The execution is over for the device: cancelled with force, removed or in a terminal state
   * (docs/protocol.md, Cancellation; a describe of a force-cancelled job answers TerminalStateReached):
   * stop working on it.
   */
  get executionGone(): boolean {
    return (
      this.jobsCode === 'TerminalStateReached' ||
      this.jobsCode === 'InvalidStateTransition' ||
      this.jobsCode === 'ResourceNotFound'
    );
  }
  /** Retry only RequestThrottled, InternalError (docs/protocol.md, Request rates) and our own timeouts. */
  get retryable(): boolean {
    return (
      this.jobsCode === 'RequestThrottled' || this.jobsCode === 'InternalError' || this.jobsCode === 'Timeout'
    );
  }
}

/** A job must end REJECTED (not FAILED): the document, its source or its version is unacceptable. */
export class JobRejectedError extends OtaError {
  readonly reason: string;
  constructor(reason: string, options?: { cause?: unknown }) {
    super('OTA_JOB_REJECTED', reason, options);
    this.reason = reason;
  }
}
