import { fdatasync } from 'node:fs';
import { open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type Clock, systemClock } from '../../shared/clock.ts';
import { onPath } from '../fs-safe.ts';
import { ByteRanges, type Range } from './byte-ranges.ts';

const datasync = promisify(fdatasync);

/**
 * A download's files: `<file>.part` (the bytes, at their offsets) and `<file>.part.json`, the sidecar that
 * says what the `.part` holds: which object (identity, size, validators) and which byte ranges are on disk.
 * With several ranged GETs the `.part` has holes, so its length says nothing; the sidecar's `done` list is
 * what a resume trusts.
 *
 * Crash safety: a range is recorded only after its writes completed, and the sidecar is replaced
 * atomically after an fdatasync of the `.part` (write a temp file, fsync it, rename): after a `kill -9`
 * or a power cut the sidecar never claims bytes that are not on disk, and is never half written. It is
 * rewritten at most once per `persistEveryMs` while bytes arrive (a crash re-downloads at most that much),
 * and at once on a stop.
 */
export interface Sidecar {
  identity: string;
  size: number;
  etag?: string;
  lastModified?: string;
  /** `[start, end)` pairs on disk. Absent in sidecars of agents before parallel ranges: the prefix is the file's length. */
  done?: Range[];
}

export function partPaths(
  dir: string,
  fileName: string,
): { final: string; part: string; sidecar: string; sidecarTmp: string } {
  const final = join(dir, fileName);
  return {
    final,
    part: `${final}.part`,
    sidecar: `${final}.part.json`,
    sidecarTmp: `${final}.part.json.tmp`,
  };
}

const PARTIAL = /\.part(\.json(\.tmp)?)?$/;

/**
 * Removes every download's `.part`, sidecar and sidecar temp file in `dir` except `keep`'s: the debris of
 * jobs that ended (cancelled, failed, timed out while the agent was down). Only these suffixes are
 * touched: the download dir may hold other files.
 */
export async function sweepPartials(dir: string, keep?: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const kept = keep
    ? new Set([`${keep}.part`, `${keep}.part.json`, `${keep}.part.json.tmp`])
    : new Set<string>();
  const debris = names.filter((n) => PARTIAL.test(n) && !kept.has(n));
  await Promise.all(debris.map((n) => rm(join(dir, n), { force: true }).catch(() => {})));
  return debris;
}

/** Removes a download's `.part` and its sidecar (never the final file). */
export async function removePartial(dir: string, fileName: string): Promise<void> {
  const p = partPaths(dir, fileName);
  for (const f of [p.part, p.sidecar, p.sidecarTmp]) await rm(f, { force: true }).catch(() => {});
}

export async function readSidecar(path: string): Promise<Sidecar | undefined> {
  try {
    const v = JSON.parse(await readFile(path, 'utf8')) as Sidecar;
    return typeof v?.identity === 'string' && typeof v.size === 'number' ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The bytes of a `.part` a resume may trust: the sidecar's `done` ranges (clipped to the file's length:
 * a range beyond it cannot be on disk), or for an older sidecar the whole file as a prefix.
 */
export function trustedRanges(side: Sidecar, fileSize: number): ByteRanges {
  const limit = Math.min(side.size, fileSize);
  if (side.done === undefined) {
    const r = new ByteRanges();
    r.add(0, limit);
    return r;
  }
  return ByteRanges.parse(side.done, limit) ?? new ByteRanges();
}

/** Rewrites the sidecar crash-safely, throttled, one write at a time. */
export class SidecarWriter {
  private last = Number.NEGATIVE_INFINITY;
  private running: Promise<void> | undefined;
  private closed = false;
  /** A failed background write (ENOSPC…); the next flush() throws it. */
  private error: unknown;
  private readonly timers: Clock;

  constructor(
    private readonly paths: { part: string; sidecar: string; sidecarTmp: string },
    private readonly fd: () => number | undefined,
    private readonly snapshot: () => Sidecar,
    private readonly persistEveryMs = 1000,
    timers: Clock = systemClock,
  ) {
    this.timers = timers;
  }

  /** Something changed: write it if the last write is old enough (else on a later change or a flush). */
  changed(): void {
    if (this.closed || this.running || this.timers.now() - this.last < this.persistEveryMs) return;
    this.start();
  }

  /** Writes the current state now (after any write in progress). */
  async flush(): Promise<void> {
    while (this.running) await this.running;
    if (this.closed) return;
    this.start();
    await this.running;
    if (this.error) {
      const e = this.error;
      this.error = undefined;
      throw e;
    }
  }

  /** No more writes; resolves once the last one has landed (so a removal of the sidecar is final). */
  async close(): Promise<void> {
    this.closed = true;
    while (this.running) await this.running;
  }

  private start(): void {
    this.last = this.timers.now();
    const snap = this.snapshot();
    this.running = this.write(snap)
      .catch((err: unknown) => {
        this.error ??= err;
      })
      .finally(() => {
        this.running = undefined;
      });
  }

  private async write(snap: Sidecar): Promise<void> {
    const { part, sidecar, sidecarTmp } = this.paths;
    // The recorded ranges were written before the snapshot; make them durable before claiming them.
    const fd = this.fd();
    if (fd !== undefined && snap.done && snap.done.length > 0) {
      await onPath('cannot write', part, () => datasync(fd));
    }
    await onPath('cannot write', sidecarTmp, async () => {
      const fh = await open(sidecarTmp, 'w');
      try {
        await fh.writeFile(JSON.stringify(snap));
        // Before any range is done a lost sidecar only means a fresh start: no fsync needed.
        if (snap.done && snap.done.length > 0) await fh.sync();
      } finally {
        await fh.close();
      }
    });
    await onPath('cannot rename into', sidecar, () => rename(sidecarTmp, sidecar));
  }
}
