import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import { type FileHandle, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { addAbortSignal } from 'node:stream';
import { AbortedError } from '../shared/errors.ts';
import { type Logger, silentLogger } from '../shared/log.ts';
import { sleep, systemTimers, type Timers } from '../shared/timers.ts';
import { ACTION_BY_KIND, classifyFailure, RetryBudget } from './download-policy.ts';
import { DownloadError } from './errors.ts';
import { ensureDir, FsError, fsyncDir, onPath } from './fs-safe.ts';
import { type DownloadSource, type OpenedBody, opt, type Validator } from './sources.ts';
import { StagedWriter } from './staged-writer.ts';

export { ACTION_BY_KIND, classifyFailure, type FailureAction } from './download-policy.ts';
export {
  type DownloadSource,
  HttpSource,
  type OpenedBody,
  type OpenRequest,
  type S3Presigner,
  S3Source,
  sdkPresigner,
  type Validator,
} from './sources.ts';

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
  /**
   * The retry budget, in time: transient failures (network, 5xx) are retried with backoff for as long as
   * the last progress is at most this old (default 5 min), so a broker or stack restart, or a car in a
   * tunnel, does not fail a download that would have resumed.
   */
  retryWindowMs?: number;
  /** An extra cap on consecutive failed attempts without progress (default: none; the window decides). */
  retries?: number;
  /** Restarts at 0 (the object changed, 416) and presigned-URL refreshes allowed, each (default 5). */
  maxRestarts?: number;
  /** Hard cap on requests, whatever the progress (default 100). */
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  random?: () => number;
  /** Size of each staging (write) buffer; up to 5 are in use (default 256 KiB, less for small images). */
  highWaterMark?: number;
  logger?: Logger;
  timers?: Timers;
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

/** `<dir>/<file>.part.json`: what the `.part` is a prefix of, so a resume is checked against it. */
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

/**
 * Removes every download's `.part` and sidecar in `dir` except `keep`'s: the debris of jobs that ended
 * (cancelled, failed, timed out while the agent was down). Only these two suffixes are touched: the
 * download dir may hold other files.
 */
export async function sweepPartials(dir: string, keep?: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const kept = keep ? new Set([`${keep}.part`, `${keep}.part.json`]) : new Set<string>();
  const debris = names.filter((n) => (n.endsWith('.part') || n.endsWith('.part.json')) && !kept.has(n));
  await Promise.all(debris.map((n) => rm(join(dir, n), { force: true }).catch(() => {})));
  return debris;
}

/** Removes a download's `.part` and its sidecar (never the final file). */
export async function removePartial(dir: string, fileName: string): Promise<void> {
  const p = partPaths(dir, fileName);
  await rm(p.part, { force: true }).catch(() => {});
  await rm(p.sidecar, { force: true }).catch(() => {});
}

async function hashPrefix(path: string, length: number, hash: Hash, signal: AbortSignal): Promise<void> {
  if (length === 0) return;
  const rs = fs.createReadStream(path, { start: 0, end: length - 1, highWaterMark: 1 << 20 });
  for await (const chunk of rs) {
    if (signal.aborted) {
      rs.destroy();
      throw new AbortedError('download aborted');
    }
    hash.update(chunk as Buffer);
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
 * A failed download never leaves `<dir>/<fileName>`. The `.part` and its sidecar are kept only when the
 * download was aborted (a stop: the caller resumes later); every other failure removes them.
 */
export async function downloadFirmware(opts: DownloadOptions): Promise<DownloadResult> {
  const dl = new Download(opts);
  try {
    await dl.openPart();
    await dl.run();
    return await dl.commit();
  } catch (err) {
    await dl.close();
    if (!(err instanceof AbortedError)) await removePartial(opts.dir, opts.fileName);
    throw err;
  }
}

/** One download's state across attempts: the offset on disk, the running hash, the budget used. */
class Download {
  private readonly log: Logger;
  private readonly signal: AbortSignal;
  private readonly timers: Timers;
  private readonly paths: ReturnType<typeof partPaths>;
  private readonly hwm: number;
  private source: DownloadSource;
  private fh: FileHandle | undefined;
  private offset = 0;
  private validator: Validator | undefined;
  private hash = createHash('sha256');
  private readonly budget: RetryBudget;
  private readonly result: Omit<DownloadResult, 'path' | 'bytes' | 'sha256' | 'renamedAt'>;

  constructor(private readonly opts: DownloadOptions) {
    this.log = opts.logger ?? silentLogger;
    this.signal = opts.signal ?? new AbortController().signal;
    this.timers = opts.timers ?? systemTimers;
    this.paths = partPaths(opts.dir, opts.fileName);
    this.source = opts.source;
    // Staging buffer size: 256 KiB writes (up to 5 buffers, 1.25 MiB: 1 MiB writes held 5 MiB of the
    // agent's ≤ 64 MiB and were no faster, docs/benchmarks.md), at most 1/16 of the image (≥ 64 KiB) so a
    // fleet of small downloads in one process (ota sim) holds little per device.
    this.hwm =
      opts.highWaterMark ?? Math.min(256 * 1024, Math.max(64 * 1024, Math.ceil(opts.expectedSize / 16)));
    this.budget = new RetryBudget({
      timers: this.timers,
      ...opt('windowMs', opts.retryWindowMs),
      ...opt('retries', opts.retries),
      ...opt('baseDelayMs', opts.baseDelayMs),
      ...opt('maxDelayMs', opts.maxDelayMs),
      ...opt('random', opts.random),
    });
    this.result = {
      resumedFrom: 0,
      requests: 0,
      restarts: 0,
      refreshes: 0,
      bytesReceived: 0,
      startedAt: Date.now(),
    };
  }

  /** Opens the `.part`: resumed when the sidecar says it is a prefix of the same object, else fresh. */
  async openPart(): Promise<void> {
    const { dir, expectedSize } = this.opts;
    const { part, sidecar } = this.paths;
    await this.disk(() => ensureDir(dir));
    const side = await readSidecar(sidecar);
    const partStat = await stat(part).catch(() => undefined);
    if (
      side &&
      partStat?.isFile() &&
      side.identity === this.source.identity &&
      side.size === expectedSize &&
      partStat.size <= expectedSize
    ) {
      this.offset = partStat.size;
      this.validator = { ...opt('etag', side.etag), ...opt('lastModified', side.lastModified) };
    }
    const resume = this.offset > 0;
    this.fh = await this.disk(() => onPath('cannot open', part, () => open(part, resume ? 'r+' : 'w')));
    if (resume) {
      await this.disk(() => onPath('cannot truncate', part, async () => this.fh?.truncate(this.offset)));
      await hashPrefix(part, this.offset, this.hash, this.signal);
      this.result.resumedFrom = this.offset;
      this.log.info({ offset: this.offset, file: this.opts.fileName }, 'resuming download from .part');
    }
  }

  /** Requests until the whole object is on disk, or a failure the table says is final. */
  async run(): Promise<void> {
    for (;;) {
      if (this.signal.aborted) throw new AbortedError('download aborted');
      const before = this.offset;
      try {
        await this.attempt();
        return;
      } catch (err) {
        await this.onFailure(err, before);
      }
    }
  }

  /** One request: open at the offset, check what came back, write the body. */
  private async attempt(): Promise<void> {
    const { expectedSize } = this.opts;
    const maxAttempts = this.opts.maxAttempts ?? 100;
    if (this.result.requests >= maxAttempts) {
      throw new DownloadError('exhausted', `gave up after ${this.result.requests} requests`);
    }
    this.result.requests++;
    this.opts.onRequest?.(this.offset);
    const opened = await this.source.open({
      offset: this.offset,
      ...(this.offset > 0 && this.validator ? { validator: this.validator } : {}),
      signal: this.signal,
    });
    if (this.offset > 0) await this.checkResumed(opened);
    if (opened.total !== undefined && opened.total !== expectedSize) {
      discard(opened);
      throw new DownloadError(
        'size',
        `object is ${opened.total} bytes but the job document says firmware.size ${expectedSize}`,
      );
    }
    if (this.offset === 0) {
      this.validator = { ...opt('etag', opened.etag), ...opt('lastModified', opened.lastModified) };
      const sc: Sidecar = { identity: this.source.identity, size: expectedSize, ...this.validator };
      const { sidecar } = this.paths;
      await onPath('cannot write', sidecar, () => writeFile(sidecar, JSON.stringify(sc)));
    }
    await this.write(opened);
    if (this.offset < expectedSize) {
      throw new DownloadError('network', `connection ended after ${this.offset} of ${expectedSize} bytes`);
    }
  }

  /** A ranged answer: a 200 (If-Range failed) or another ETag means the object changed; restart at 0. */
  private async checkResumed(opened: OpenedBody): Promise<void> {
    const v = this.validator;
    const changed =
      opened.status === 200 || (v?.etag !== undefined && opened.etag !== undefined && opened.etag !== v.etag);
    if (changed) {
      this.log.warn(
        { file: this.opts.fileName, status: opened.status },
        'object changed since the .part was written; restarting at 0',
      );
      if (opened.status !== 200) {
        discard(opened);
        throw new DownloadError('changed', 'the object changed since the .part was written');
      }
      // The 200 carries the whole new object: take it from byte 0.
      await this.restart();
      return;
    }
    if (opened.start !== this.offset) {
      discard(opened);
      throw new DownloadError('network', `Content-Range starts at ${opened.start}, asked for ${this.offset}`);
    }
  }

  /** Writes one response body at the offset; `offset` is the on-disk prefix afterwards, even on failure. */
  private async write(opened: OpenedBody): Promise<void> {
    const { expectedSize, onProgress } = this.opts;
    const start = this.offset;
    const writer = new StagedWriter({
      fd: (this.fh as FileHandle).fd,
      start,
      hash: this.hash,
      limit: expectedSize,
      onChunk: onProgress ? (w) => onProgress(w, expectedSize) : () => {},
      stageSize: this.hwm,
      timers: this.timers,
    });
    try {
      await consume(opened, writer, this.signal);
      await writer.flush();
    } catch (err) {
      // The bytes received before a cut are a valid prefix: put them on disk so the resume starts
      // after them (not after the last full staging buffer).
      writer.submitPartial();
      throw writer.error ?? err;
    } finally {
      await writer.settled();
      this.offset = writer.written;
      this.result.bytesReceived += this.offset - start;
    }
  }

  private async restart(): Promise<void> {
    this.offset = 0;
    this.validator = undefined;
    this.hash = createHash('sha256');
    const { part } = this.paths;
    await onPath('cannot truncate', part, async () => this.fh?.truncate(0));
    this.result.restarts++;
  }

  /** The table in action: returns to try again, or throws the final error. */
  private async onFailure(err: unknown, before: number): Promise<void> {
    const c = classifyFailure(err, this.paths.part);
    if (c === 'abort' || this.signal.aborted) throw new AbortedError('download aborted', { cause: err });
    const maxRestarts = this.opts.maxRestarts ?? 5;
    const file = this.opts.fileName;
    switch (ACTION_BY_KIND[c.kind]) {
      case 'fail':
        throw c;
      case 'restart':
        if (this.result.restarts >= maxRestarts) {
          throw new DownloadError('exhausted', `the object kept changing (${c.message})`, { cause: c });
        }
        this.log.warn({ file, kind: c.kind }, 'restarting download at 0');
        await this.restart();
        return;
      case 'refresh':
        if (!this.opts.refreshSource || this.result.refreshes >= maxRestarts) {
          throw new DownloadError('http', c.message, { status: 403, cause: c });
        }
        this.result.refreshes++;
        this.log.info({ file }, 'presigned URL refused (403); fetching a fresh one');
        this.source = await this.opts.refreshSource();
        return;
      case 'resume':
        await this.backOff(c, before);
        return;
    }
  }

  /** Waits before a resume, or gives up when the retry budget is spent. */
  private async backOff(c: DownloadError, before: number): Promise<void> {
    const delay = this.budget.next(c, this.offset > before);
    this.log.warn(
      { file: this.opts.fileName, offset: this.offset, delay, err: c.message },
      'download interrupted; resuming with Range',
    );
    await sleep(delay, { signal: this.signal, timers: this.timers });
  }

  /** Checks the digest, fsyncs and renames the `.part` into place. */
  async commit(): Promise<DownloadResult> {
    const { sha256, dir } = this.opts;
    const { part, final, sidecar } = this.paths;
    const digest = this.hash.digest('hex');
    if (sha256 && digest !== sha256.toLowerCase()) {
      throw new DownloadError(
        'checksum',
        `sha256 ${digest} does not match firmware.sha256 ${sha256.toLowerCase()}`,
      );
    }
    await this.disk(() =>
      onPath('cannot write', part, async () => {
        await this.fh?.sync();
        await this.fh?.close();
        this.fh = undefined;
      }),
    );
    await this.disk(() => onPath('cannot rename into', final, () => rename(part, final)));
    await fsyncDir(dir);
    await rm(sidecar, { force: true });
    return { path: final, bytes: this.offset, sha256: digest, ...this.result, renamedAt: Date.now() };
  }

  async close(): Promise<void> {
    await this.fh?.close().catch(() => {});
    this.fh = undefined;
  }

  /** File-system failures of the download's own files are `disk` errors (fail fast, path named). */
  private async disk<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof FsError) throw new DownloadError('disk', err.message, { cause: err });
      throw err;
    }
  }
}
