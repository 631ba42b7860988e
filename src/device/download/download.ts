import { type FileHandle, open, rename, rm, stat } from 'node:fs/promises';
import { type Clock, systemClock } from '../../shared/clock.ts';
import { AbortedError } from '../../shared/errors.ts';
import { type Logger, silentLogger } from '../../shared/log.ts';
import { DownloadError } from '../errors.ts';
import { ensureDir, FsError, fsyncDir, onPath } from '../fs-safe.ts';
import { type DownloadSource, type OpenedBody, opt, type Validator } from '../source/sources.ts';
import { ByteRanges } from './byte-ranges.ts';
import { ConnectionController } from './connection-count.ts';
import { type Worker, WorkerPolicy } from './connection-policy.ts';
import { checkDiskSpace, DEFAULT_MIN_FREE } from './disk-space.ts';
import type { DownloadOptions, DownloadResult } from './options.ts';
import {
  partPaths,
  readSidecar,
  removePartial,
  type Sidecar,
  SidecarWriter,
  trustedRanges,
} from './part-file.ts';
import { PrefixHasher } from './prefix-hasher.ts';
import type { FetchEnv } from './range-fetch.ts';
import { RangeScheduler } from './range-scheduler.ts';

export {
  type DownloadSource,
  HttpSource,
  type OpenedBody,
  type OpenRequest,
  type S3Presigner,
  S3Source,
  sdkPresigner,
  type Validator,
} from '../source/sources.ts';
export type { DownloadOptions, DownloadResult } from './options.ts';
export { partPaths, removePartial, sweepPartials } from './part-file.ts';
export { ACTION_BY_KIND, classifyFailure, type FailureAction } from './retry-policy.ts';

/**
 * Downloads the object to `<dir>/<fileName>.part` with one or more ranged GETs, in constant memory,
 * resuming from the ranges a previous run recorded in the sidecar (validated by its ETag/Last-Modified),
 * checking the size against the document and the response headers and the sha256 when given, then fsyncs
 * and renames atomically to `<dir>/<fileName>`. Free space is checked first (nothing is written when it
 * is short). A failed download never leaves `<dir>/<fileName>`. The `.part` and its sidecar are kept only
 * when the download was aborted (a stop: the caller resumes later); every other failure removes them.
 */
export async function downloadFirmware(opts: DownloadOptions): Promise<DownloadResult> {
  const dl = new Download(opts);
  try {
    await dl.openPart();
    await dl.run();
    return await dl.commit();
  } catch (err) {
    await dl.close(err instanceof AbortedError);
    if (!(err instanceof AbortedError)) await removePartial(opts.dir, opts.fileName);
    throw err;
  }
}

/** One download across rounds (a restart at 0 begins a new round) and connections. */
class Download {
  readonly log: Logger;
  readonly signal: AbortSignal;
  readonly timers: Clock;
  readonly size: number;
  private readonly paths: ReturnType<typeof partPaths>;
  private readonly hwm: number;
  source: DownloadSource;
  private fh: FileHandle | undefined;
  private done = new ByteRanges();
  private validator: Validator | undefined;
  private hasher!: PrefixHasher;
  private sched!: RangeScheduler;
  private controller!: ConnectionController;
  private sidecar!: SidecarWriter;
  private readonly policy: WorkerPolicy;
  private readonly workers = new Set<Worker>();
  private received = 0;
  private nextSample = 0;
  private headSeen = false;
  private parallel = false;
  /** The server answered a ranged request with the whole object: one connection for good. */
  private rangesIgnored = false;
  readonly result: Omit<DownloadResult, 'path' | 'bytes' | 'sha256' | 'renamedAt'>;

  constructor(readonly opts: DownloadOptions) {
    this.log = opts.logger ?? silentLogger;
    this.signal = opts.signal ?? new AbortController().signal;
    this.timers = opts.timers ?? systemClock;
    this.size = opts.expectedSize;
    this.paths = partPaths(opts.dir, opts.fileName);
    this.source = opts.source;
    // Staging buffer size: 256 KiB writes (up to 5 buffers, 1.25 MiB: 1 MiB writes held 5 MiB of the
    // agent's ≤ 64 MiB and were no faster, docs/benchmarks.md), at most 1/16 of the image (≥ 64 KiB) so a
    // fleet of small downloads in one process (ota sim) holds little per device.
    this.hwm = opts.highWaterMark ?? Math.min(256 * 1024, Math.max(64 * 1024, Math.ceil(this.size / 16)));
    this.policy = new WorkerPolicy(this, opts);
    this.result = {
      resumedFrom: 0,
      requests: 0,
      restarts: 0,
      refreshes: 0,
      bytesReceived: 0,
      connections: 0,
      startedAt: this.timers.now(),
    };
  }

  /**
   * Opens the `.part`: resumed when the sidecar says it holds bytes of the same object, else fresh; the
   * free space is checked before anything is written; the resumed prefix is hashed.
   */
  async openPart(): Promise<void> {
    const { dir, minFree, statfs } = this.opts;
    const { part, sidecar } = this.paths;
    await this.disk(() => ensureDir(dir));
    const side = await readSidecar(sidecar);
    const partStat = await stat(part).catch(() => undefined);
    if (side && partStat?.isFile() && side.identity === this.source.identity && side.size === this.size) {
      this.done = trustedRanges(side, partStat.size);
      this.validator = { ...opt('etag', side.etag), ...opt('lastModified', side.lastModified) };
    }
    await checkDiskSpace({
      dir,
      toWrite: this.size - this.done.total,
      minFree: minFree ?? DEFAULT_MIN_FREE,
      ...opt('statfs', statfs),
    });
    const resume = this.done.total > 0;
    this.fh = await this.disk(() => onPath('cannot open', part, () => open(part, resume ? 'r+' : 'w+')));
    this.sidecar = new SidecarWriter(
      this.paths,
      () => this.fh?.fd,
      () => this.snapshot(),
      this.opts.persistEveryMs ?? 1000,
      this.timers,
    );
    this.reset();
    if (resume) {
      this.hasher.catchUp();
      await this.hasher.idle();
      this.result.resumedFrom = this.done.total;
      this.log.info(
        { bytes: this.done.total, ranges: this.done.ranges.length, file: this.opts.fileName },
        'resuming download from .part',
      );
    }
  }

  private snapshot(): Sidecar {
    return {
      identity: this.source.identity,
      size: this.size,
      ...opt('etag', this.validator?.etag),
      ...opt('lastModified', this.validator?.lastModified),
      done: this.done.toJSON(),
    };
  }

  /** Fresh scheduler, hasher and controller over the current done set (a new round). */
  private reset(): void {
    const fd = (this.fh as FileHandle).fd;
    this.hasher = new PrefixHasher(fd, this.done, this.signal);
    this.sched = new RangeScheduler(this.size, this.done);
    const c = this.opts.connections ?? 'auto';
    this.controller = new ConnectionController({ max: c === 'auto' ? (this.opts.maxConnections ?? 8) : 1 });
    this.headSeen = false;
    this.parallel = false;
  }

  /** Rounds until the whole object is on disk; a restart at 0 (the object changed) begins a new one. */
  async run(): Promise<void> {
    this.opts.onStart?.(this.done.total);
    for (;;) {
      if (this.done.covers(this.size)) return;
      this.spawn();
      while (this.workers.size > 0) await Promise.race([...this.workers].map((w) => w.running));
      if (this.signal.aborted) {
        await this.sidecar.flush().catch(() => {});
        throw new AbortedError('download aborted');
      }
      const end = this.policy.takeOutcome();
      if (end?.kind === 'fail') throw end.error;
      if (end?.kind === 'restart') await this.restart();
    }
  }

  /** Starts one more connection. */
  spawn(): void {
    const w = this.policy.newWorker();
    this.workers.add(w);
    this.result.connections = Math.max(this.result.connections ?? 0, this.workers.size);
    w.running = this.policy.work(w).finally(() => {
      this.workers.delete(w);
      this.opts.onConnections?.(this.workers.size);
    });
    this.opts.onConnections?.(this.workers.size);
  }

  get active(): ReadonlySet<Worker> {
    return this.workers;
  }

  get scheduler(): RangeScheduler {
    return this.sched;
  }

  get doneBytes(): number {
    return this.done.total;
  }

  /** What one request of a span needs; the first connection gets the big buffers, later ones small ones. */
  fetchEnv(): FetchEnv {
    const { bucket } = this.opts;
    const extra = this.workers.size > 1;
    const stall = this.opts.stallTimeoutMs ?? 60_000;
    const readBufferSize = bucket?.limited ? bucket.readSize() : extra ? 64 * 1024 : undefined;
    return {
      source: this.source,
      fd: (this.fh as FileHandle).fd,
      size: this.size,
      validator: this.validator,
      signal: this.signal,
      hasher: this.hasher,
      bucket,
      stallTimeoutMs: stall,
      // The response head may take up to the retry window (range-fetch.ts FetchEnv.headTimeoutMs).
      headTimeoutMs: stall > 0 ? Math.max(stall, this.opts.retryWindowMs ?? 5 * 60_000) : 0,
      timers: this.timers,
      stageSize: extra ? 64 * 1024 : this.hwm,
      maxInFlight: extra ? 2 : 4,
      ...opt('readBufferSize', readBufferSize),
      onWritten: (from, to) => this.onWritten(from, to),
      onBytes: (n) => this.onBytes(n),
      onFirstByte: (ms) => this.onFirstByte(ms),
      onHead: (o) => this.onHead(o),
    };
  }

  private onWritten(from: number, to: number): void {
    this.done.add(from, to);
    this.hasher.catchUp();
    this.sidecar.changed();
    this.opts.onProgress?.(this.done.total, this.size);
  }

  private onBytes(n: number): void {
    this.received += n;
    this.result.bytesReceived += n;
    if (!this.parallel || this.controller.settled) return;
    const now = this.timers.now();
    if (now < this.nextSample) return;
    this.nextSample = now + 50;
    const d = this.controller.sample(now, this.received, this.size - this.done.total);
    if (d && 'add' in d) {
      this.log.info(
        { connections: this.controller.target, rate: Math.round(this.controller.rate) },
        'adding connections',
      );
      for (let i = 0; i < d.add; i++) this.spawn();
    } else if (d && 'retire' in d) {
      this.log.info({ connections: this.controller.target }, 'more connections did not help; retiring some');
      this.policy.retire(d.retire);
    }
  }

  private onFirstByte(ms: number): void {
    this.controller.firstByte(ms);
    // A steal must leave each half worth a new request: ≥ 2 × (one connection's rate × time to first byte).
    const perConn = this.controller.rate / Math.max(1, this.workers.size);
    this.sched.minSplit = Math.max(256 * 1024, Math.round((2 * perConn * ms) / 1000));
  }

  /** The first response of a round gives the validator, and says whether parallel ranges are possible. */
  private async onHead(o: OpenedBody): Promise<void> {
    if (this.headSeen) return;
    this.headSeen = true;
    if (!this.validator?.etag && !this.validator?.lastModified) {
      this.validator = { ...opt('etag', o.etag), ...opt('lastModified', o.lastModified) };
    }
    await this.sidecar.flush();
    const etag = this.validator.etag;
    // Several ranges of one object need a strong validator on every request, and a server that does ranges.
    this.parallel =
      !this.rangesIgnored && o.acceptRanges === true && etag !== undefined && !etag.startsWith('W/');
    const c = this.opts.connections ?? 'auto';
    if (!this.parallel) {
      this.controller.settle();
      if (c !== 'auto' && c > 1)
        this.log.info(
          { file: this.opts.fileName },
          'the server does not offer ranges with an ETag: one connection',
        );
      return;
    }
    if (c !== 'auto') for (let i = 1; i < c; i++) this.spawn();
  }

  lostBeforeFirstByte(): void {
    const d = this.controller.lostProbe();
    if (!d || !('retire' in d)) return;
    this.log.info(
      { connections: this.controller.target },
      'a new connection got no byte; retiring the probe',
    );
    this.policy.retire(d.retire);
  }

  noRanges(): void {
    if (!this.rangesIgnored)
      this.log.warn({ file: this.opts.fileName }, 'the server ignores Range: one connection');
    this.rangesIgnored = true;
    this.parallel = false;
    this.controller.settle();
  }

  /** The object changed (or the server ignores Range): start over at 0 with one connection. */
  private async restart(): Promise<void> {
    this.validator = undefined;
    this.done = new ByteRanges();
    await onPath('cannot truncate', this.paths.part, async () => this.fh?.truncate(0));
    this.reset();
    await this.sidecar.flush();
    this.result.restarts++;
  }

  /** Checks the digest, fsyncs and renames the `.part` into place. */
  async commit(): Promise<DownloadResult> {
    const { sha256, dir } = this.opts;
    const { part, final, sidecar } = this.paths;
    const digest = await this.hasher.finish(this.size);
    if (sha256 && digest !== sha256.toLowerCase()) {
      throw new DownloadError(
        'checksum',
        `sha256 ${digest} does not match firmware.sha256 ${sha256.toLowerCase()}`,
      );
    }
    await this.sidecar.close();
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
    return { path: final, bytes: this.size, sha256: digest, ...this.result, renamedAt: this.timers.now() };
  }

  /** Closes the `.part`; after a stop, first records what is on disk. */
  async close(keep: boolean): Promise<void> {
    if (this.sidecar) {
      if (keep) await this.sidecar.flush().catch(() => {});
      await this.sidecar.close();
    }
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

export type { Download };
