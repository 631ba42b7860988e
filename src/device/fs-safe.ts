import { mkdir, open, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { OtaError } from '../shared/errors.ts';

/**
 * File-system helpers that fail fast with a one-line message naming the path and the cause, instead of
 * a bare `ENOENT … mkdir` from deep inside a step.
 */

/** What the device's file system said, in words (the errno code stays in the message, for searching). */
const CAUSES: Readonly<Record<string, string>> = {
  ENOSPC: 'disk full, no space left on device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOTDIR: 'a part of the path is not a directory',
  EISDIR: 'is a directory',
  ENOENT: 'no such file or directory',
  EEXIST: 'already exists',
  ENAMETOOLONG: 'name too long',
  ELOOP: 'too many symbolic links',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in the system',
  EIO: 'I/O error',
  EFBIG: 'file too large for this file system',
  EINVAL: 'invalid argument for this file system',
  EBUSY: 'device or resource busy',
};

/** Whether `err` is an error of the local file system (as opposed to the network). */
export function isFsError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && Object.hasOwn(CAUSES, code);
}

/** `cannot write /x/fw.img.part: disk full, no space left on device (ENOSPC)`. */
export function fsErrorMessage(err: unknown, doing: string, path: string): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? 'error';
  const cause = CAUSES[code] ?? (err instanceof Error ? err.message : String(err));
  return `${doing} ${path}: ${cause} (${code})`;
}

/** A file-system operation on a named path failed. `fsCode` is the errno code (ENOSPC, EROFS, …). */
export class FsError extends OtaError {
  readonly path: string;
  readonly fsCode: string;
  constructor(err: unknown, doing: string, path: string) {
    super('OTA_FS', fsErrorMessage(err, doing, path), { cause: err });
    this.path = path;
    this.fsCode = (err as NodeJS.ErrnoException | undefined)?.code ?? 'error';
  }
  /** Disk full or over quota: nothing written here will fit until space is freed. */
  get diskFull(): boolean {
    return this.fsCode === 'ENOSPC' || this.fsCode === 'EDQUOT';
  }
}

/** Runs `fn`, turning a file-system error into an FsError naming `path`. */
export async function onPath<T>(doing: string, path: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof FsError || !isFsError(err)) throw err;
    throw new FsError(err, doing, path);
  }
}

/** More levels than any real path; a bound, so a strange file system cannot make this loop. */
const MAX_DEPTH = 256;

/**
 * `mkdir -p`, one level at a time. Node 20's `mkdir(…, { recursive: true })` never returns for a path
 * under /proc (it retries the ENOENT it gets from procfs forever, at 100 % CPU, and a stop waits on it).
 * Here each missing level is created once; any refusal is an FsError naming the level.
 */
export async function ensureDir(dir: string): Promise<void> {
  const missing: string[] = [];
  let p = resolve(dir);
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    let isDir: boolean;
    try {
      isDir = (await stat(p)).isDirectory();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new FsError(err, 'cannot use directory', p);
      missing.push(p);
      const parent = dirname(p);
      if (parent === p) break;
      p = parent;
      continue;
    }
    if (!isDir) {
      throw new FsError(Object.assign(new Error('not a directory'), { code: 'ENOTDIR' }), 'cannot use', p);
    }
    break;
  }
  for (const level of missing.reverse()) {
    try {
      await mkdir(level);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && (await isDirectory(level))) continue;
      throw new FsError(err, 'cannot create directory', level);
    }
  }
}

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** fsync of a directory, so a rename in it is durable. Some platforms cannot; the rename is atomic anyway. */
export async function fsyncDir(dir: string): Promise<void> {
  try {
    const h = await open(dir, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    // Windows and some file systems refuse to open or fsync a directory.
  }
}
