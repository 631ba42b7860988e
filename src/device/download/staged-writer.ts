import type { Hash } from 'node:crypto';
import * as fs from 'node:fs';
import { type Clock, systemClock, type TimerHandle } from '../../shared/clock.ts';
import { DownloadError } from '../errors.ts';

export interface StagedWriterOptions {
  /** An open file; bytes go at explicit positions from `start` on. */
  fd: number;
  /** The file offset of the first byte pushed (the resume point). */
  start: number;
  /** Updated with the bytes in file order, as they reach the disk (none: another party hashes them). */
  hash?: Hash | undefined;
  /** No byte beyond this file offset is accepted (a `size` error). */
  limit: number;
  /** Called with the new on-disk prefix length whenever it grows. Must be cheap. */
  onChunk: (written: number) => void;
  /** Bytes per write (and per staging buffer). */
  stageSize: number;
  /** Writes in flight at once (default 4). */
  maxInFlight?: number;
  /** Start a background fdatasync every this many bytes (default 32 MiB). */
  syncEvery?: number;
  /** Write a partly filled staging buffer after this long (default 50 ms). */
  maxStageMs?: number;
  timers?: Clock;
}

/**
 * Copies body bytes into staging buffers of `stageSize` (default 256 KiB) and writes each full one with
 * `fs.write` at its explicit position, up to `maxInFlight` writes at once on the threadpool while reading
 * continues. Completed writes are hashed and counted strictly in file order, so `written` is always the
 * length of the valid on-disk prefix of the `.part` file (the resume offset) and the hash covers exactly
 * those bytes, whatever order the threadpool finishes in. With `maxInFlight` buffers busy it asks the
 * source to pause (push returns false) and calls `onDrain` when one is free: constant memory of about
 * (maxInFlight + 1) × stageSize, and the staging buffers are reused (no per-chunk garbage).
 *
 * It also starts an fdatasync every `syncEvery` bytes written, in the background: the final fsync before
 * the atomic rename then has little left to flush, instead of the whole image's dirty pages at the end.
 */
export class StagedWriter {
  written: number;
  /** The first failure (a write error, a short write, more bytes than the limit); sticky. */
  error: Error | undefined;
  onDrain: () => void = () => {};
  onError: () => void = () => {};
  private received: number;
  private cur: Buffer | undefined;
  private fill = 0;
  private readonly free: Buffer[] = [];
  private readonly queue: { buf: Buffer; len: number; done: boolean }[] = [];
  private syncing = false;
  private inflight = 0;
  private timer: TimerHandle | undefined;
  private submittedEnd: number;
  private nextSync: number;
  private waiters: (() => void)[] = [];

  private readonly fd: number;
  private readonly hash: Hash | undefined;
  private readonly limit: number;
  private readonly onChunk: (written: number) => void;
  private readonly stageSize: number;
  private readonly maxInFlight: number;
  private readonly syncEvery: number;
  private readonly maxStageMs: number;
  private readonly timers: Clock;

  constructor(o: StagedWriterOptions) {
    this.fd = o.fd;
    this.hash = o.hash;
    this.limit = o.limit;
    this.onChunk = o.onChunk;
    this.stageSize = o.stageSize;
    this.maxInFlight = o.maxInFlight ?? 4;
    this.syncEvery = o.syncEvery ?? 32 << 20;
    this.maxStageMs = o.maxStageMs ?? 50;
    this.timers = o.timers ?? systemClock;
    this.written = o.start;
    this.received = o.start;
    this.submittedEnd = o.start;
    this.nextSync = o.start + this.syncEvery;
  }

  /** Takes a copy of `chunk` (which may be a reused read buffer). false = pause the source. */
  push(chunk: Buffer): boolean {
    if (this.error) return false;
    if (this.received + chunk.length > this.limit) {
      this.fail(new DownloadError('size', `received more than the expected ${this.limit} bytes`));
      return false;
    }
    this.received += chunk.length;
    let i = 0;
    while (i < chunk.length) {
      if (!this.cur) {
        this.cur = this.free.pop() ?? Buffer.allocUnsafeSlow(this.stageSize);
        // A slow or stalled link must not keep received bytes off the disk (and out of the progress
        // reports) until a whole staging buffer fills: write what is staged after `maxStageMs`.
        this.timer = this.timers.setTimeout(() => this.submitPartial(), this.maxStageMs);
        (this.timer as { unref?: () => void }).unref?.();
      }
      const n = chunk.copy(this.cur, this.fill, i);
      this.fill += n;
      i += n;
      if (this.fill === this.stageSize) this.submit();
    }
    return this.queue.length < this.maxInFlight;
  }

  /** Writes what is staged (the bytes received so far are a valid prefix even after a cut). */
  submitPartial(): void {
    if (!this.error && this.fill > 0) this.submit();
  }

  /** Resolves when everything pushed is on disk (rejects with the first error). */
  async flush(): Promise<void> {
    this.submitPartial();
    await this.settled();
    if (this.error) throw this.error;
  }

  /** Resolves once no write or fdatasync is in flight; `written` is final after this. */
  settled(): Promise<void> {
    if (this.inflight === 0 && !this.syncing) return Promise.resolve();
    return new Promise((r) => this.waiters.push(r));
  }

  /** Resolves when push may continue (a buffer is free) or the writer failed. */
  drained(): Promise<void> {
    if (this.error || this.queue.length < this.maxInFlight) return Promise.resolve();
    return new Promise((r) => {
      const prev = this.onDrain;
      this.onDrain = () => {
        this.onDrain = prev;
        r();
      };
    });
  }

  private submit(): void {
    this.timers.clear(this.timer);
    this.timer = undefined;
    const buf = this.cur as Buffer;
    const len = this.fill;
    const pos = this.submittedEnd;
    this.submittedEnd += len;
    this.cur = undefined;
    this.fill = 0;
    const entry = { buf, len, done: false };
    this.queue.push(entry);
    this.inflight++;
    fs.write(this.fd, buf, 0, len, pos, (err, n) => {
      this.inflight--;
      if (err) this.fail(err);
      else if (n !== len) {
        // Short write (disk full?): count nothing of this batch; the resume re-requests it.
        this.fail(Object.assign(new Error(`short write: ${n} of ${len} bytes`), { code: 'ENOSPC' }));
      } else entry.done = true;
      this.complete();
    });
  }

  private complete(): void {
    const before = this.written;
    // After a failure nothing more is counted: `written` stays the prefix known good before it.
    while (!this.error && this.queue[0]?.done) {
      const q = this.queue.shift() as { buf: Buffer; len: number };
      this.hash?.update(q.len === q.buf.length ? q.buf : q.buf.subarray(0, q.len));
      this.written += q.len;
      this.free.push(q.buf);
    }
    if (this.written !== before) this.onChunk(this.written);
    if (!this.error && this.written >= this.nextSync && !this.syncing) {
      this.nextSync = this.written + this.syncEvery;
      this.syncing = true;
      fs.fdatasync(this.fd, () => {
        // An error here resurfaces in the final fsync, which is awaited and checked.
        this.syncing = false;
        this.wake();
      });
    }
    if (this.error || this.queue.length < this.maxInFlight) this.onDrain();
    this.wake();
  }

  private fail(err: Error): void {
    if (this.error) return;
    this.error = err;
    this.timers.clear(this.timer);
    this.onError();
    this.onDrain();
  }

  /**
   * Wakes settled() once no write is in flight. Writes still running after a failure must land before
   * the caller reads `written` or truncates the file (a restart at 0): a late write of old bytes must
   * not overwrite new ones.
   */
  private wake(): void {
    if (this.inflight > 0 || this.syncing) return;
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
