import type { Clock } from '../../shared/clock.ts';
import type { Logger } from '../../shared/log.ts';
import type { DownloadSource } from '../source/sources.ts';
import type { MinFree, StatFsFn } from './disk-space.ts';
import type { TokenBucket } from './token-bucket.ts';

/** What downloadFirmware (download.ts) takes and returns. */
export interface DownloadOptions {
  source: DownloadSource;
  dir: string;
  fileName: string;
  expectedSize: number;
  /** 64 hex chars, when the job document gives one. */
  sha256?: string;
  /** Called whenever bytes reach the disk, with the bytes on disk so far. Must be cheap. */
  onProgress?: (bytesDone: number, total: number) => void;
  /** Called once per request, with its first byte (0 or a resume point). */
  onRequest?: (offset: number) => void;
  /** Called once, before the first request, with the bytes already on disk (a resume). */
  onStart?: (bytesOnDisk: number) => void;
  /** The number of connections in flight changed (logs, tests). */
  onConnections?: (n: number) => void;
  /**
   * A 403 on a presigned URL: get a fresh source (the agent sends `{jobId}/get`; docs/protocol.md,
   * Presigned URL placeholders).
   */
  refreshSource?: () => Promise<DownloadSource>;
  signal?: AbortSignal;
  /**
   * Ranged GETs at once: a number fixes it, `auto` (default) starts with one and adds more while the
   * aggregate throughput grows, up to `maxConnections` (default 8). See connection-count.ts.
   */
  connections?: number | 'auto';
  maxConnections?: number;
  /** The `--max-rate` bucket, shared by every connection (and every download of the agent). */
  bucket?: TokenBucket;
  /** No byte for this long while wanting bytes → drop the connection and resume (default 60 s; 0 = off). */
  stallTimeoutMs?: number;
  /** Free space to keep after the download (default 5 % of the file system). */
  minFree?: MinFree;
  /** `fs.statfs` (injected in tests). */
  statfs?: StatFsFn;
  /** The sidecar (done ranges) is rewritten at most this often while bytes arrive (default 1000 ms). */
  persistEveryMs?: number;
  /**
   * The retry budget, in time: transient failures (network, 5xx) are retried with backoff for as long as
   * the last progress is at most this old (default 5 min), so a broker or stack restart, or a car in a
   * tunnel, does not fail a download that would have resumed.
   */
  retryWindowMs?: number;
  /** An extra cap on consecutive failed attempts without progress, per connection (default: none). */
  retries?: number;
  /** Restarts at 0 (the object changed, 416) and presigned-URL refreshes allowed, each (default 5). */
  maxRestarts?: number;
  /** Hard cap on requests that ended short (failed, or a short range), whatever the progress (default 100). */
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  random?: () => number;
  /** Size of each staging (write) buffer of the first connection; up to 5 are in use (default 256 KiB, less for small images). */
  highWaterMark?: number;
  logger?: Logger;
  timers?: Clock;
}

export interface DownloadResult {
  path: string;
  bytes: number;
  sha256: string;
  /** Bytes already on disk when the download started (0 = fresh). */
  resumedFrom: number;
  requests: number;
  restarts: number;
  refreshes: number;
  /** Bytes received over the network (≥ bytes when cuts forced re-requests). */
  bytesReceived: number;
  /** Most connections in flight at once. */
  connections?: number;
  /** Epoch ms of the first request and of the atomic rename. */
  startedAt: number;
  renamedAt: number;
}
