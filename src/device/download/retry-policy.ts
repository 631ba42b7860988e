import { backoffDelay, type Clock, systemClock } from '../../shared/clock.ts';
import { AbortedError } from '../../shared/errors.ts';
import { DownloadError, type DownloadErrorKind } from '../errors.ts';
import { FsError, fsErrorMessage, isFsError } from '../fs-safe.ts';

/**
 * The download's retry policy: which failures are worth another request (a table from error kind to
 * action), how errors of every origin map to a kind, and the time-based retry budget. Kept apart from
 * the loop so a multi-range downloader can share it.
 */
/**
 * What the loop does about each kind of failure. Abort (a stop) is not in the table: it ends the download
 * at once and keeps the `.part` for a resume.
 * - resume: back off (full jitter) and ask again from the bytes on disk, within the retry window;
 * - restart: truncate and start at 0 (bounded by maxRestarts);
 * - refresh: ask the caller for a fresh presigned URL, then resume (bounded by maxRestarts);
 * - fail: give up now; the `.part` and sidecar are removed (their bytes are wrong or will never finish).
 */
export type FailureAction = 'resume' | 'restart' | 'refresh' | 'fail';

export const ACTION_BY_KIND: Readonly<Record<DownloadErrorKind, FailureAction>> = {
  network: 'resume',
  unavailable: 'resume',
  changed: 'restart',
  range: 'restart',
  expired: 'refresh',
  http: 'fail',
  size: 'fail',
  checksum: 'fail',
  disk: 'fail',
  exhausted: 'fail',
};

/** Error codes of a connection that may work next time (node:net, node:dns, TLS, our reader). */
const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  // DNS "no such name": on a device, usually no network yet (a car in a tunnel), not a wrong name; the
  // document's host was validated, so retry it within the window.
  'ENOTFOUND',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ERR_STREAM_PREMATURE_CLOSE',
  'ERR_SSL_DECRYPTION_FAILED_OR_BAD_RECORD_MAC',
  'UND_ERR_SOCKET',
  'TimeoutError',
  'RequestTimeout',
]);

/** Maps any error of an attempt to a DownloadError (or 'abort'); `part` names the file for disk errors. */
export function classifyFailure(err: unknown, part: string): DownloadError | 'abort' {
  if (err instanceof DownloadError) return err;
  if (err instanceof AbortedError) return 'abort';
  const e = err as { name?: string; code?: string; message?: string } | undefined;
  if (e?.name === 'AbortError' || e?.code === 'ABORT_ERR') return 'abort';
  if (err instanceof FsError) return new DownloadError('disk', err.message, { cause: err });
  if (isFsError(err))
    return new DownloadError('disk', fsErrorMessage(err, 'cannot write', part), { cause: err });
  if (
    (e?.code && NETWORK_CODES.has(e.code)) ||
    (e?.name && NETWORK_CODES.has(e.name)) ||
    e?.message === 'aborted' ||
    e?.message === 'socket hang up'
  ) {
    return new DownloadError('network', e?.message ?? String(err), { cause: err });
  }
  // Anything else is unexpected (a bug, or a source we do not know): fail rather than loop on it.
  return new DownloadError('http', e?.message ?? String(err), { cause: err });
}

export interface RetryBudgetOptions {
  /** Give up when the last progress is older than this (default 5 min). */
  windowMs?: number;
  /** And/or after this many consecutive failed attempts without progress (default: no count limit). */
  retries?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  random?: () => number;
  timers?: Clock;
}

/**
 * A time-based retry budget: transient failures are retried with exponential backoff and full jitter for
 * as long as some progress was made within the window. A count of failures says little on a device
 * (20 quick refusals during a broker restart are not 20 chances used up); time without progress does.
 */
export class RetryBudget {
  private failures = 0;
  private lastProgressAt: number;
  private readonly windowMs: number;
  private readonly timers: Clock;

  constructor(private readonly o: RetryBudgetOptions = {}) {
    this.timers = o.timers ?? systemClock;
    this.windowMs = o.windowMs ?? 5 * 60_000;
    this.lastProgressAt = this.timers.now();
  }

  /** Records a failed attempt; returns the delay before the next one, or throws `exhausted`. */
  next(cause: DownloadError, progressed: boolean): number {
    const now = this.timers.now();
    if (progressed) {
      this.failures = 1;
      this.lastProgressAt = now;
    } else this.failures++;
    const idle = now - this.lastProgressAt;
    const { retries } = this.o;
    if (idle >= this.windowMs || (retries !== undefined && this.failures > retries)) {
      throw new DownloadError(
        'exhausted',
        `gave up after ${this.failures} failed attempts and ${Math.round(idle / 1000)} s without progress: ${cause.message}`,
        { cause },
      );
    }
    const delay = backoffDelay(
      this.failures - 1,
      this.o.baseDelayMs ?? 500,
      this.o.maxDelayMs ?? 30_000,
      this.o.random,
    );
    return Math.min(delay, this.windowMs - idle);
  }
}
