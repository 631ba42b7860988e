import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import { join } from 'node:path';
import { type Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, type GetObjectCommandOutput, type S3Client } from '@aws-sdk/client-s3';
import { AbortedError } from '../shared/errors.ts';
import { type Logger, silentLogger } from '../shared/log.ts';
import { DownloadError } from './errors.ts';

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

  open(req: OpenRequest): Promise<OpenedBody> {
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
    const mod = this.url.protocol === 'https:' ? https : http;
    const what = `GET ${this.identity}`;
    return new Promise<OpenedBody>((resolve, reject) => {
      const r = mod.request(
        this.url,
        {
          method: 'GET',
          headers,
          signal: req.signal,
          ...(this.url.protocol === 'https:' && this.tls.ca ? { ca: this.tls.ca } : {}),
        },
        (res) => {
          const status = res.statusCode ?? 0;
          if (status !== 200 && status !== 206) {
            res.resume();
            reject(statusError(status, what, this.presigned));
            return;
          }
          const etag = header(res.headers.etag);
          const lastModified = header(res.headers['last-modified']);
          if (status === 206) {
            const cr = parseContentRange(header(res.headers['content-range']));
            if (!cr) {
              res.destroy();
              reject(new DownloadError('network', `${what}: 206 without a valid Content-Range`));
              return;
            }
            resolve({
              status,
              body: res,
              start: cr.start,
              ...opt('total', cr.total),
              ...opt('etag', etag),
              ...opt('lastModified', lastModified),
            });
            return;
          }
          const len = header(res.headers['content-length']);
          resolve({
            status: 200,
            body: res,
            start: 0,
            ...opt('total', len !== undefined ? Number(len) : undefined),
            ...opt('etag', etag),
            ...opt('lastModified', lastModified),
          });
        },
      );
      r.on('error', (err) => reject(err));
      r.end();
    });
  }
}

/** S3 GetObject through @aws-sdk/client-s3 (credentials: default chain, local stack, or IoT provider). */
export class S3Source implements DownloadSource {
  readonly identity: string;
  readonly presigned = false;
  constructor(
    private readonly client: S3Client,
    readonly bucket: string,
    readonly key: string,
  ) {
    this.identity = `s3://${bucket}/${key}`;
  }

  async open(req: OpenRequest): Promise<OpenedBody> {
    const what = `GetObject ${this.identity}`;
    let out: GetObjectCommandOutput;
    try {
      out = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.key,
          ...(req.offset > 0 ? { Range: `bytes=${req.offset}-` } : {}),
          // S3 answers 412 when the ETag no longer matches: the object changed, restart from 0.
          ...(req.offset > 0 && req.validator?.etag ? { IfMatch: req.validator.etag } : {}),
        }),
        { abortSignal: req.signal },
      );
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (typeof status === 'number' && status > 0) throw statusError(status, what, false);
      throw err;
    }
    const body = out.Body as Readable | undefined;
    if (!body || typeof (body as Readable).pipe !== 'function') {
      throw new DownloadError('network', `${what}: no body stream`);
    }
    const etag = out.ETag;
    const lastModified = out.LastModified ? out.LastModified.toUTCString() : undefined;
    const cr = parseContentRange(out.ContentRange);
    if (cr) {
      return {
        status: 206,
        body,
        start: cr.start,
        ...opt('total', cr.total),
        ...opt('etag', etag),
        ...opt('lastModified', lastModified),
      };
    }
    return {
      status: 200,
      body,
      start: 0,
      ...opt('total', out.ContentLength),
      ...opt('etag', etag),
      ...opt('lastModified', lastModified),
    };
  }
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
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
  /** Write buffer of the file stream (default 1 MiB). */
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
 * Writes at explicit positions and only counts (and hashes) bytes once they are on disk, so after any
 * failure `written` is exactly the length of the valid prefix of the `.part` file: the resume offset.
 */
class PartWriter extends Writable {
  written: number;
  constructor(
    private readonly fd: number,
    start: number,
    private readonly hash: Hash,
    private readonly limit: number,
    private readonly onChunk: (written: number) => void,
    highWaterMark: number,
  ) {
    super({ highWaterMark });
    this.written = start;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.writeAll([chunk], cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    this.writeAll(
      chunks.map((c) => c.chunk),
      cb,
    );
  }

  private inflight: Promise<void> | undefined;

  /**
   * Resolves once no write is in flight. A failing source destroys this stream while an fs.writev may
   * still be running; its bytes land on disk and are counted when it completes, so the resume offset
   * (and the hash) must be read only after this.
   */
  settled(): Promise<void> {
    return this.inflight ?? Promise.resolve();
  }

  private writeAll(bufs: Buffer[], cb: (err?: Error | null) => void): void {
    let len = 0;
    for (const b of bufs) len += b.length;
    if (this.written + len > this.limit) {
      cb(new DownloadError('size', `received more than the expected ${this.limit} bytes`));
      return;
    }
    let release: () => void = () => {};
    this.inflight = new Promise<void>((r) => {
      release = r;
    });
    fs.writev(this.fd, bufs, this.written, (err, n) => {
      this.inflight = undefined;
      release();
      if (err) return cb(err);
      if (n !== len) {
        // Short write (disk full?): count nothing of this batch; the resume re-requests it.
        return cb(Object.assign(new Error(`short write: ${n} of ${len} bytes`), { code: 'ENOSPC' }));
      }
      for (const b of bufs) this.hash.update(b);
      this.written += len;
      this.onChunk(this.written);
      cb();
    });
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
  const hwm = opts.highWaterMark ?? 1 << 20;
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
      let writer: PartWriter | undefined;
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
              opened.body.destroy();
              await restart();
              continue;
            }
            await restart();
          } else if (opened.start !== offset) {
            opened.body.destroy();
            throw new DownloadError(
              'network',
              `Content-Range starts at ${opened.start}, asked for ${offset}`,
            );
          }
        }
        if (opened.total !== undefined && opened.total !== expectedSize) {
          opened.body.destroy();
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
        writer = new PartWriter(
          fh.fd,
          offset,
          hash,
          expectedSize,
          onProgress ? (w) => onProgress(w, expectedSize) : () => {},
          hwm,
        );
        try {
          await pipeline(opened.body, writer, { signal });
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
