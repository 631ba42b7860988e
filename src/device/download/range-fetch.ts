import type { Readable } from 'node:stream';
import type { Clock, TimerHandle } from '../../shared/clock.ts';
import { DownloadError } from '../errors.ts';
import type { DownloadSource, OpenedBody, OpenRequest, Validator } from '../source/sources.ts';
import type { RawBody } from './http-body.ts';
import type { PrefixHasher } from './prefix-hasher.ts';
import type { Span } from './range-scheduler.ts';
import { StagedWriter } from './staged-writer.ts';
import { StallWatchdog } from './stall-watchdog.ts';
import type { TokenBucket } from './token-bucket.ts';

/**
 * One ranged GET of a span: open at the span's cursor, check what came back against what was asked
 * (status, Content-Range, ETag, size), and write the body at its offsets until the span's end — which a
 * steal may lower while the body streams — or until the response ends. Paced by the shared token bucket,
 * watched by a stall watchdog. The span's cursor is the on-disk end of its bytes afterwards, even after
 * a failure (staged bytes that did not reach the disk are asked for again).
 *
 * A hostile or broken server gets a clear error or a re-request, never bytes in the wrong place: a
 * Content-Range that does not start where asked or names another size is refused, extra bytes past the
 * span are dropped, a 200 to a ranged request or another ETag means the object changed (restart at 0),
 * and a short range is simply continued by the next request.
 */
export interface FetchEnv {
  source: DownloadSource;
  fd: number;
  size: number;
  /** From the first response; sent with every ranged request. */
  validator: Validator | undefined;
  signal: AbortSignal;
  hasher: PrefixHasher;
  bucket: TokenBucket | undefined;
  stallTimeoutMs: number;
  /**
   * How long to wait for the response head (0 = no limit). Longer than the stall timeout: a server that
   * queues the request (a whole fleet downloading at once) answers it in turn, while dropping it and
   * reconnecting only joins the back of that queue again — and leaves the server a request to serve
   * that nobody reads.
   */
  headTimeoutMs: number;
  timers: Clock;
  stageSize: number;
  maxInFlight: number;
  readBufferSize?: number;
  /** `[from, to)` reached the disk. */
  onWritten(from: number, to: number): void;
  /** `n` body bytes arrived (before they are written). */
  onBytes(n: number): void;
  /** The first body byte arrived `ms` after the request was sent. */
  onFirstByte(ms: number): void;
  /** The response head passed the checks (the first one gives the validator). */
  onHead(opened: OpenedBody): void | Promise<void>;
}

/** A 200 (the whole object) to a ranged request with the same validator: the server ignores Range. */
export class RangesIgnoredError extends DownloadError {
  constructor() {
    super('changed', 'the server answered a ranged request with the whole object (it ignores Range)');
  }
}

/** How a fetch ended: the span is complete, or the server sent less than asked (ask again). */
export type FetchEnd = 'done' | 'short';

export class RangeFetch {
  private readonly ac = new AbortController();
  private stalled = 0;
  /** Whether a body byte of this request arrived. */
  gotBytes = false;
  private headSeen = false;

  constructor(
    private readonly env: FetchEnv,
    private readonly span: Span,
  ) {}

  /** Cancels the request (a retire or a restart); run() then rejects with an AbortError. */
  cancel(): void {
    this.ac.abort();
  }

  async run(): Promise<FetchEnd> {
    const { env } = this;
    const onStop = () => this.ac.abort();
    env.signal.addEventListener('abort', onStop, { once: true });
    const dog = new StallWatchdog(
      env.headTimeoutMs,
      (idle) => {
        this.stalled = idle;
        this.ac.abort();
      },
      env.timers,
    );
    const sentAt = env.timers.now();
    this.span.reach = this.span.end;
    try {
      const opened = await env.source.open(this.request());
      this.headSeen = true;
      dog.retime(env.stallTimeoutMs);
      const limit = this.check(opened);
      await env.onHead(opened);
      return await this.write(opened, limit, dog, sentAt);
    } catch (err) {
      if (this.stalled > 0 && !env.signal.aborted) {
        const what = this.headSeen ? 'no bytes' : 'no response';
        throw new DownloadError('network', `${what} for ${Math.round(this.stalled / 1000)} s; reconnecting`, {
          cause: err,
        });
      }
      throw err;
    } finally {
      dog.stop();
      env.signal.removeEventListener('abort', onStop);
    }
  }

  private request(): OpenRequest {
    const { env, span } = this;
    const ranged = span.cursor > 0 || span.end < env.size;
    return {
      offset: span.cursor,
      ...(span.end < env.size ? { end: span.end } : {}),
      ...(ranged && env.validator ? { validator: env.validator } : {}),
      signal: this.ac.signal,
      ...(env.readBufferSize ? { readBufferSize: env.readBufferSize } : {}),
      // The watchdog replaces the socket's idle timeout: it knows when we paused on purpose.
      ...(env.stallTimeoutMs > 0 ? { idleTimeoutMs: 0 } : {}),
    };
  }

  /** Checks the response against the request; returns the end (exclusive) of the bytes it carries. */
  private check(o: OpenedBody): number {
    const { env, span } = this;
    const ranged = span.cursor > 0 || span.end < env.size;
    const v = env.validator;
    const fail = (e: DownloadError) => {
      discard(o);
      return e;
    };
    if (v?.etag !== undefined && o.etag !== undefined && o.etag !== v.etag) {
      throw fail(new DownloadError('changed', `the object changed (ETag ${o.etag}, was ${v.etag})`));
    }
    if (ranged && o.status === 200 && span.cursor > 0) {
      // If-Range failed (the object changed: caught above when the ETag says so) or the server ignores
      // Range: either way only a restart at 0 can use this body.
      throw fail(new RangesIgnoredError());
    }
    if (o.total !== undefined && o.total !== env.size) {
      throw fail(
        new DownloadError(
          'size',
          `object is ${o.total} bytes but the job document says firmware.size ${env.size}`,
        ),
      );
    }
    if (o.start !== span.cursor) {
      throw fail(
        new DownloadError(
          'http',
          `asked for bytes from ${span.cursor}, the server sent Content-Range from ${o.start}`,
        ),
      );
    }
    return Math.min(o.end ?? env.size, env.size);
  }

  /** Streams the body into a StagedWriter until the span's (moving) end or the response's end. */
  private async write(o: OpenedBody, limit: number, dog: StallWatchdog, sentAt: number): Promise<FetchEnd> {
    const { env, span } = this;
    const start = span.cursor;
    let onDisk = start;
    const writer = new StagedWriter({
      fd: env.fd,
      start,
      hash: env.hasher.claim(this, start),
      limit: env.size,
      onChunk: (w) => {
        env.onWritten(onDisk, w);
        onDisk = w;
        env.hasher.advanced(this, w);
      },
      stageSize: env.stageSize,
      maxInFlight: env.maxInFlight,
      timers: env.timers,
    });
    const raw = o.raw ?? readableToRaw(o.body);
    const gate = new Gate(raw, dog, env.timers);
    writer.onDrain = () => gate.open('writer');
    writer.onError = () => raw.destroy();
    const feed = { first: true, stolen: false, overflow: undefined as DownloadError | undefined };
    try {
      await raw.pump((chunk) => this.deliver(chunk, { limit, writer, gate, dog, raw, sentAt, feed }));
    } catch (err) {
      if (!feed.stolen || writer.error) {
        writer.submitPartial();
        await this.settle(writer, gate);
        throw feed.overflow ?? writer.error ?? err;
      }
    }
    await writer.flush().finally(() => this.settle(writer, gate));
    if (span.cursor >= span.end) return 'done';
    if (span.cursor < limit) {
      throw new DownloadError(
        'network',
        `response ended after ${span.cursor - start} of ${limit - start} bytes`,
      );
    }
    return 'short';
  }

  /** One piece of the body: written up to the span's end; false pauses the body. */
  private deliver(
    chunk: Buffer,
    c: {
      limit: number;
      writer: StagedWriter;
      gate: Gate;
      dog: StallWatchdog;
      raw: RawBody;
      sentAt: number;
      feed: { first: boolean; stolen: boolean; overflow: DownloadError | undefined };
    },
  ): boolean {
    const { env, span } = this;
    const { limit, feed } = c;
    const room = Math.min(span.end, limit) - span.cursor;
    if (chunk.length > room && span.end >= limit) {
      // More than the response itself announced (or than the object's size): never written.
      feed.overflow =
        limit === env.size
          ? new DownloadError('size', `received more than the expected ${env.size} bytes`)
          : new DownloadError('http', `the server sent more bytes than its Content-Range (to ${limit})`);
      c.raw.destroy();
      return false;
    }
    const piece = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (piece.length > 0) {
      if (feed.first) {
        feed.first = false;
        this.gotBytes = true;
        env.onFirstByte(env.timers.now() - c.sentAt);
      }
      c.dog.kick();
      if (!c.writer.push(piece)) c.gate.close('writer');
      span.cursor += piece.length;
      env.onBytes(piece.length);
      const wait = env.bucket?.take(piece.length) ?? 0;
      if (wait > 0) c.gate.closeFor('bucket', wait);
    }
    if (span.cursor >= span.end && span.end < limit) {
      // A steal moved our end: the rest of this response belongs to another connection.
      feed.stolen = true;
      c.raw.destroy();
      return false;
    }
    return c.gate.isOpen;
  }

  private async settle(writer: StagedWriter, gate: Gate): Promise<void> {
    gate.dispose();
    await writer.settled();
    this.span.cursor = writer.written;
    this.env.hasher.release(this, writer.written);
  }
}

function discard(o: OpenedBody): void {
  if (o.raw) o.raw.destroy();
  else o.body.destroy();
}

/**
 * Pauses the body for two reasons, the writer's buffers all busy or the token bucket in debt, and
 * resumes it when neither holds. The stall watchdog does not count paused time.
 */
class Gate {
  private readonly closed = new Set<string>();
  private timer: TimerHandle | undefined;
  constructor(
    private readonly raw: RawBody,
    private readonly dog: StallWatchdog,
    private readonly timers: Clock,
  ) {}

  get isOpen(): boolean {
    return this.closed.size === 0;
  }

  close(reason: string): void {
    if (this.closed.has(reason)) return;
    this.closed.add(reason);
    this.dog.pause();
  }

  closeFor(reason: string, ms: number): void {
    this.close(reason);
    this.timers.clear(this.timer);
    this.timer = this.timers.setTimeout(() => this.open(reason), ms);
  }

  open(reason: string): void {
    if (!this.closed.delete(reason)) return;
    this.dog.resume();
    if (this.closed.size === 0) this.raw.resume();
  }

  dispose(): void {
    this.timers.clear(this.timer);
  }
}

/** A RawBody over a Readable, for sources that only give a stream. */
function readableToRaw(body: Readable): RawBody {
  return {
    pump(onData) {
      return new Promise<void>((resolve, reject) => {
        body.on('data', (c: Buffer) => {
          if (!onData(c)) body.pause();
        });
        body.once('end', resolve);
        body.once('error', reject);
        body.once('close', () => {
          if (!body.readableEnded) reject(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
        });
      });
    },
    resume: () => body.resume(),
    destroy: () => body.destroy(),
  };
}
