import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { addAbortSignal, Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { AbortedError } from '../shared/errors.ts';
import { type Logger, silentLogger } from '../shared/log.ts';
import { DownloadError } from './errors.ts';
import { type RawBody, type RawResponse, rawGet } from './http-body.ts';

/** Validators recorded from the first response, sent back on resume so a changed object is detected. */
export interface Validator {
  etag?: string;
  lastModified?: string;
}

export interface OpenRequest {
  /** First byte wanted; 0 = the whole object. */
  offset: number;
  /** Only with offset > 0. */
  validator?: Validator;
  signal: AbortSignal;
}

export interface OpenedBody {
  /** 200 = the whole object from byte 0, 206 = a range starting at `start`. */
  status: 200 | 206;
  body: Readable;
  /**
   * The same body without the stream machinery (src/device/http-body.ts); when present, downloadFirmware
   * reads this and never touches `body` (which is then created only on access).
   */
  raw?: RawBody;
  start: number;
  /** The object's total size, from Content-Range (206) or Content-Length (200), when the server said. */
  total?: number;
  etag?: string;
  lastModified?: string;
}

/** One interface over S3 GetObject and plain HTTP(S) GET. */
export interface DownloadSource {
  /** Stable identity of the object (no query string: presigned URLs change), kept in the sidecar. */
  readonly identity: string;
  /** Presigned URLs expire: a 403 then means "refresh", not "forbidden" (reference section 4). */
  readonly presigned: boolean;
  open(req: OpenRequest): Promise<OpenedBody>;
}

const CONTENT_RANGE = /^bytes (\d+)-(\d+)\/(\d+|\*)$/;

function parseContentRange(v: string | undefined): { start: number; total?: number } | undefined {
  if (!v) return undefined;
  const m = CONTENT_RANGE.exec(v.trim());
  if (!m) return undefined;
  return { start: Number(m[1]), ...(m[3] !== '*' ? { total: Number(m[3]) } : {}) };
}

function statusError(status: number, what: string, presigned: boolean): DownloadError {
  if (status === 412) return new DownloadError('changed', `${what}: 412 precondition failed`, { status });
  if (status === 416) return new DownloadError('range', `${what}: 416 range not satisfiable`, { status });
  if (status === 403 && presigned) {
    return new DownloadError('expired', `${what}: 403 (presigned URL expired?)`, { status });
  }
  const retryable = status >= 500 || status === 429 || status === 408;
  return new DownloadError('http', `${what}: HTTP ${status}`, { status, retryable });
}

/** Plain HTTP(S) GET: presigned URLs and any other https URL (http only for loopback, checked earlier). */
export class HttpSource implements DownloadSource {
  readonly identity: string;
  readonly presigned: boolean;
  constructor(
    readonly url: URL,
    private readonly tls: { ca?: string | Buffer } = {},
  ) {
    this.presigned = url.searchParams.has('X-Amz-Signature');
    this.identity = `${url.origin}${url.pathname}`;
  }

  async open(req: OpenRequest): Promise<OpenedBody> {
    const headers: Record<string, string> = {};
    if (req.offset > 0) {
      headers.range = `bytes=${req.offset}-`;
      // RFC 9110 section 13.1.5: If-Range makes the server send the whole (new) object with 200 when the
      // validator no longer matches, instead of a range of a different object.
      const v =
        req.validator?.etag && !req.validator.etag.startsWith('W/')
          ? req.validator.etag
          : req.validator?.lastModified;
      if (v) headers['if-range'] = v;
    }
    const res = await rawGet(this.url, {
      headers,
      signal: req.signal,
      ...(this.url.protocol === 'https:' && this.tls.ca ? { ca: this.tls.ca } : {}),
    });
    return openedFrom(res, `GET ${this.identity}`, this.presigned);
  }
}

/** Maps a raw response to OpenedBody (or a DownloadError for a non-2xx status / bad Content-Range). */
function openedFrom(res: RawResponse, what: string, presigned: boolean): OpenedBody {
  const { status } = res;
  if (status !== 200 && status !== 206) {
    res.body.destroy();
    throw statusError(status, what, presigned);
  }
  const etag = res.headers.get('etag');
  const lastModified = res.headers.get('last-modified');
  let start = 0;
  let total: number | undefined;
  if (status === 206) {
    const cr = parseContentRange(res.headers.get('content-range'));
    if (!cr) {
      res.body.destroy();
      throw new DownloadError('network', `${what}: 206 without a valid Content-Range`);
    }
    start = cr.start;
    total = cr.total;
  } else {
    const len = res.headers.get('content-length');
    total = len !== undefined ? Number(len) : undefined;
  }
  const raw = res.body;
  let body: Readable | undefined;
  return {
    status,
    raw,
    get body(): Readable {
      body ??= rawToReadable(raw);
      return body;
    },
    start,
    ...opt('total', total),
    ...opt('etag', etag),
    ...opt('lastModified', lastModified),
  };
}

/** A Readable over a RawBody, for callers of DownloadSource.open that want a stream. */
function rawToReadable(raw: RawBody): Readable {
  let started = false;
  const r: Readable = new Readable({
    read() {
      if (started) {
        raw.resume();
        return;
      }
      started = true;
      raw
        .pump((c) => r.push(Buffer.from(c)))
        .then(
          () => r.push(null),
          (err: Error) => r.destroy(err),
        );
    },
    destroy(err, cb) {
      raw.destroy();
      cb(err);
    },
  });
  return r;
}

/** Presigns a GetObject URL (the agent's light SigV4 signer, or the SDK: see src/device/agent.ts). */
export interface S3Presigner {
  presignGetObject(bucket: string, key: string, expiresIn: number): Promise<URL>;
}

/** S3 GetObject: a presigned GET (credentials: default chain, local stack, or IoT provider). */
export class S3Source implements DownloadSource {
  readonly identity: string;
  readonly presigned = false;
  private readonly signer: S3Presigner;
  constructor(
    client: S3Client | S3Presigner,
    readonly bucket: string,
    readonly key: string,
    private readonly tls: { ca?: string | Buffer } = {},
  ) {
    this.identity = `s3://${bucket}/${key}`;
    this.signer = 'presignGetObject' in client ? client : sdkPresigner(client);
  }

  /**
   * The request is signed as a short-lived presigned GetObject URL; the bytes then go through
   * http-body.ts instead of the SDK's node:http handler, which costs ~3× the CPU per byte (see
   * docs/benchmarks.md). Range and If-Match are sent as plain headers: SigV4 query authentication does not
   * need them signed, and S3 applies them as on a header-signed request (412 when the ETag changed).
   */
  async open(req: OpenRequest): Promise<OpenedBody> {
    const what = `GetObject ${this.identity}`;
    const url = await this.signer.presignGetObject(this.bucket, this.key, 900);
    const headers: Record<string, string> = {};
    if (req.offset > 0) {
      headers.range = `bytes=${req.offset}-`;
      // S3 answers 412 when the ETag no longer matches: the object changed, restart from 0.
      if (req.validator?.etag) headers['if-match'] = req.validator.etag;
    }
    const res = await rawGet(url, {
      headers,
      signal: req.signal,
      ...(this.tls.ca ? { ca: this.tls.ca } : {}),
    });
    return openedFrom(res, what, false);
  }
}

/**
 * Presigning through an S3Client (its endpoint rules and credential chain). The SDK modules are loaded on
 * first use only: @aws-sdk/client-s3 alone is ~14 MiB of RSS and ~0.1 s of CPU (docs/benchmarks.md).
 */
export function sdkPresigner(client: S3Client): S3Presigner {
  return {
    async presignGetObject(bucket, key, expiresIn) {
      const [{ GetObjectCommand }, { getSignedUrl }] = await Promise.all([
        import('@aws-sdk/client-s3'),
        import('@aws-sdk/s3-request-presigner'),
      ]);
      return new URL(
        await getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key: key }), { expiresIn }),
      );
    },
  };
}

function opt<K extends string, V>(k: K, v: V | undefined): { [P in K]?: V } {
  return (v === undefined ? {} : { [k]: v }) as { [P in K]?: V };
}

export interface DownloadOptions {
  source: DownloadSource;
  dir: string;
  fileName: string;
  expectedSize: number;
  /** 64 hex chars, when the job document gives one. */
  sha256?: string;
  /** Called after every chunk written to disk. Must be cheap; throttling is the caller's job. */
  onProgress?: (bytesDone: number, total: number) => void;
  /** Called once per request, with the offset asked for (0 or a resume point). */
  onRequest?: (offset: number) => void;
  /** A 403 on a presigned URL: get a fresh source (the agent sends `{jobId}/get`, reference section 4). */
  refreshSource?: () => Promise<DownloadSource>;
  signal?: AbortSignal;
  /** Consecutive failed attempts without progress before giving up (default 5). */
  retries?: number;
  /** Hard cap on requests, whatever the progress (default 100). */
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  random?: () => number;
  /** Size of each staging (write) buffer; up to 5 are in use (default 256 KiB, less for small images). */
  highWaterMark?: number;
  logger?: Logger;
}

export interface DownloadResult {
  path: string;
  bytes: number;
  sha256: string;
  /** Offset the first request resumed from (0 = fresh). */
  resumedFrom: number;
  requests: number;
  restarts: number;
  refreshes: number;
  /** Bytes received over the network (≥ bytes when cuts forced re-requests). */
  bytesReceived: number;
  /** Epoch ms of the first request and of the atomic rename. */
  startedAt: number;
  renamedAt: number;
}

interface Sidecar {
  identity: string;
  size: number;
  etag?: string;
  lastModified?: string;
}

export function partPaths(dir: string, fileName: string): { final: string; part: string; sidecar: string } {
  const final = join(dir, fileName);
  return { final, part: `${final}.part`, sidecar: `${final}.part.json` };
}

const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
  'TimeoutError',
  'RequestTimeout',
]);

function classify(err: unknown): DownloadError | 'abort' | undefined {
  if (err instanceof DownloadError) return err;
  const e = err as { name?: string; code?: string; message?: string };
  if (e?.name === 'AbortError' || e?.code === 'ABORT_ERR') return 'abort';
  if (
    (e?.code && NETWORK_CODES.has(e.code)) ||
    (e?.name && NETWORK_CODES.has(e.name)) ||
    e?.message === 'aborted' ||
    e?.message === 'socket hang up'
  ) {
    return new DownloadError('network', e.message ?? String(err), { cause: err });
  }
  return undefined;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortedError('download aborted'));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new AbortedError('download aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): uniform in [0, min(cap, base·2^n)). */
export function backoffDelay(
  attempt: number,
  baseMs: number,
  capMs: number,
  random: () => number = Math.random,
): number {
  return Math.floor(random() * Math.min(capMs, baseMs * 2 ** attempt));
}

async function hashPrefix(path: string, length: number, hash: Hash, signal?: AbortSignal): Promise<void> {
  if (length === 0) return;
  const rs = fs.createReadStream(path, { start: 0, end: length - 1, highWaterMark: 1 << 20 });
  for await (const chunk of rs) {
    if (signal?.aborted) {
      rs.destroy();
      throw new AbortedError('download aborted');
    }
    hash.update(chunk as Buffer);
  }
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
class StagedWriter {
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
  private timer: NodeJS.Timeout | undefined;
  private submittedEnd: number;
  private nextSync: number;
  private waiters: (() => void)[] = [];

  constructor(
    private readonly fd: number,
    start: number,
    private readonly hash: Hash,
    private readonly limit: number,
    private readonly onChunk: (written: number) => void,
    private readonly stageSize: number,
    private readonly maxInFlight = 4,
    private readonly syncEvery = 32 << 20,
    private readonly maxStageMs = 50,
  ) {
    this.written = start;
    this.received = start;
    this.submittedEnd = start;
    this.nextSync = start + syncEvery;
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
        this.timer = setTimeout(() => this.submitPartial(), this.maxStageMs);
        this.timer.unref?.();
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
    clearTimeout(this.timer);
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
      this.hash.update(q.len === q.buf.length ? q.buf : q.buf.subarray(0, q.len));
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
    clearTimeout(this.timer);
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

function discard(opened: OpenedBody): void {
  if (opened.raw) opened.raw.destroy();
  else opened.body.destroy();
}

/** Feeds the response body to the writer, pausing the source while the writer has no free buffer. */
async function consume(opened: OpenedBody, writer: StagedWriter, signal: AbortSignal): Promise<void> {
  const raw = opened.raw;
  if (raw) {
    writer.onDrain = () => raw.resume();
    writer.onError = () => raw.destroy();
    // Abort: rawGet was given the signal and fails the body with an AbortError.
    await raw.pump((chunk) => writer.push(chunk));
    return;
  }
  const body = addAbortSignal(signal, opened.body);
  writer.onError = () => body.destroy();
  for await (const chunk of body) {
    if (!writer.push(chunk as Buffer)) await writer.drained();
    if (writer.error) break;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  try {
    const h = await open(dir, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    // Some platforms (Windows) cannot fsync a directory; the rename is still atomic.
  }
}

async function readSidecar(path: string): Promise<Sidecar | undefined> {
  try {
    const v = JSON.parse(await readFile(path, 'utf8')) as Sidecar;
    return typeof v?.identity === 'string' && typeof v.size === 'number' ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Streams the object to `<dir>/<fileName>.part` in constant memory, resuming with Range from a previous
 * `.part` (validated by the sidecar's ETag/Last-Modified), checking the size against the document and the
 * response headers and the sha256 when given, then fsyncs and renames atomically to `<dir>/<fileName>`.
 * A failed download never leaves `<dir>/<fileName>`; `.part` is kept only when the failure was transient.
 */
export async function downloadFirmware(opts: DownloadOptions): Promise<DownloadResult> {
  const log = opts.logger ?? silentLogger;
  const { dir, fileName, expectedSize } = opts;
  const retries = opts.retries ?? 5;
  const maxAttempts = opts.maxAttempts ?? 100;
  const baseDelay = opts.baseDelayMs ?? 500;
  const maxDelay = opts.maxDelayMs ?? 30_000;
  const random = opts.random ?? Math.random;
  // Staging buffer size: 256 KiB writes (up to 5 buffers, 1.25 MiB: 1 MiB writes held 5 MiB of the
  // agent's ≤ 64 MiB and were no faster, docs/benchmarks.md), at most 1/16 of the image (≥ 64 KiB) so a
  // fleet of small downloads in one process (ota sim) holds little per device.
  const hwm = opts.highWaterMark ?? Math.min(256 * 1024, Math.max(64 * 1024, Math.ceil(expectedSize / 16)));
  const signal = opts.signal ?? new AbortController().signal;
  const paths = partPaths(dir, fileName);
  let source = opts.source;

  await mkdir(dir, { recursive: true });
  // Decide whether the existing .part can be resumed: same object identity and size as recorded.
  let offset = 0;
  let validator: Validator | undefined;
  const side = await readSidecar(paths.sidecar);
  const partStat = await stat(paths.part).catch(() => undefined);
  if (
    side &&
    partStat &&
    side.identity === source.identity &&
    side.size === expectedSize &&
    partStat.size <= expectedSize
  ) {
    offset = partStat.size;
    validator = { ...opt('etag', side.etag), ...opt('lastModified', side.lastModified) };
  }
  const fh = await open(paths.part, offset > 0 ? 'r+' : 'w');
  let hash = createHash('sha256');
  let keepPart = true;
  const result = {
    resumedFrom: offset,
    requests: 0,
    restarts: 0,
    refreshes: 0,
    bytesReceived: 0,
    startedAt: Date.now(),
  };
  try {
    if (offset > 0) {
      await fh.truncate(offset);
      await hashPrefix(paths.part, offset, hash, signal);
      log.info({ offset, file: fileName }, 'resuming download from .part');
    }
    let failures = 0;
    const restart = async () => {
      offset = 0;
      validator = undefined;
      hash = createHash('sha256');
      await fh.truncate(0);
      result.restarts++;
    };
    for (;;) {
      if (signal.aborted) throw new AbortedError('download aborted');
      if (result.requests >= maxAttempts) {
        throw new DownloadError('exhausted', `gave up after ${result.requests} requests`);
      }
      result.requests++;
      opts.onRequest?.(offset);
      const before = offset;
      let writer: StagedWriter | undefined;
      try {
        const opened = await source.open({
          offset,
          ...(offset > 0 && validator ? { validator } : {}),
          signal,
        });
        if (offset > 0) {
          const changed =
            opened.status === 200 ||
            (validator?.etag !== undefined && opened.etag !== undefined && opened.etag !== validator.etag);
          if (changed) {
            log.warn(
              { file: fileName, status: opened.status },
              'object changed since the .part was written; restarting at 0',
            );
            if (opened.status !== 200) {
              discard(opened);
              await restart();
              continue;
            }
            await restart();
          } else if (opened.start !== offset) {
            discard(opened);
            throw new DownloadError(
              'network',
              `Content-Range starts at ${opened.start}, asked for ${offset}`,
            );
          }
        }
        if (opened.total !== undefined && opened.total !== expectedSize) {
          discard(opened);
          throw new DownloadError(
            'size',
            `object is ${opened.total} bytes but the job document says firmware.size ${expectedSize}`,
          );
        }
        if (offset === 0) {
          validator = { ...opt('etag', opened.etag), ...opt('lastModified', opened.lastModified) };
          const sc: Sidecar = { identity: source.identity, size: expectedSize, ...validator };
          await writeFile(paths.sidecar, JSON.stringify(sc));
        }
        const onProgress = opts.onProgress;
        const start = offset;
        writer = new StagedWriter(
          fh.fd,
          offset,
          hash,
          expectedSize,
          onProgress ? (w) => onProgress(w, expectedSize) : () => {},
          hwm,
        );
        try {
          await consume(opened, writer, signal);
          await writer.flush();
        } catch (err) {
          // The bytes received before a cut are a valid prefix: put them on disk so the resume starts
          // after them (not after the last full staging buffer).
          writer.submitPartial();
          throw writer.error ?? err;
        } finally {
          await writer.settled();
          offset = writer.written;
          result.bytesReceived += offset - start;
        }
        if (offset < expectedSize) {
          throw new DownloadError('network', `connection ended after ${offset} of ${expectedSize} bytes`);
        }
        break;
      } catch (err) {
        if (writer) {
          await writer.settled();
          offset = writer.written;
        }
        const c = classify(err);
        if (c === 'abort' || signal.aborted) throw new AbortedError('download aborted', { cause: err });
        if (!c) throw err;
        if (c.kind === 'size' || c.kind === 'checksum') {
          keepPart = false;
          throw c;
        }
        if (c.kind === 'changed' || c.kind === 'range') {
          log.warn({ file: fileName, kind: c.kind }, 'restarting download at 0');
          await restart();
          if (result.restarts > retries)
            throw new DownloadError('exhausted', `object kept changing (${c.message})`);
          continue;
        }
        if (c.kind === 'expired') {
          if (!opts.refreshSource || result.refreshes >= retries) {
            throw new DownloadError('http', c.message, { status: 403, retryable: false, cause: c });
          }
          result.refreshes++;
          log.info({ file: fileName }, 'presigned URL refused (403); fetching a fresh one');
          source = await opts.refreshSource();
          continue;
        }
        if (!c.retryable) {
          keepPart = false;
          throw c;
        }
        failures = offset > before ? 1 : failures + 1;
        if (failures > retries) {
          throw new DownloadError('exhausted', `gave up after ${failures} failed attempts: ${c.message}`, {
            cause: c,
          });
        }
        const delay = backoffDelay(failures - 1, baseDelay, maxDelay, random);
        log.warn(
          { file: fileName, offset, delay, err: c.message },
          'download interrupted; resuming with Range',
        );
        await sleep(delay, signal);
      }
    }
    const digest = hash.digest('hex');
    if (opts.sha256 && digest !== opts.sha256.toLowerCase()) {
      keepPart = false;
      throw new DownloadError(
        'checksum',
        `sha256 ${digest} does not match firmware.sha256 ${opts.sha256.toLowerCase()}`,
      );
    }
    await fh.sync();
    await fh.close();
    await rename(paths.part, paths.final);
    await fsyncDir(dir);
    await rm(paths.sidecar, { force: true });
    return {
      path: paths.final,
      bytes: offset,
      sha256: digest,
      ...result,
      renamedAt: Date.now(),
    };
  } catch (err) {
    await fh.close().catch(() => {});
    if (!keepPart) {
      await rm(paths.part, { force: true });
      await rm(paths.sidecar, { force: true });
    }
    throw err;
  }
}
