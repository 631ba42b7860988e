import { statfs as fsStatfs } from 'node:fs/promises';
import { DownloadError } from '../errors.ts';
import { FsError, onPath } from '../fs-safe.ts';

/**
 * The disk precheck: before a byte of the image is written, the download dir's file system must have room
 * for the rest of the image plus a reserve (`--min-free`), or the job FAILS at once with "not enough disk
 * space: need X, have Y at <dir>". Without it a dashcam finds out at 95 %, after minutes of LTE, and a
 * full disk also starves whatever else the device writes (recordings, logs, the agent's state file).
 *
 * The reserve is what must stay free AFTER the download: an absolute size, or a percentage of the file
 * system's size (default 5 %: the share ext4 keeps back for root, kept back here for everything else on
 * the device). "have" is what an unprivileged process may use (`bavail`), so root's reserved blocks are
 * never counted as free.
 */
export type MinFree = { bytes: number } | { percent: number };

export interface StatFs {
  /** Block size. */
  bsize: number;
  /** Blocks in the file system. */
  blocks: number;
  /** Blocks free for unprivileged users. */
  bavail: number;
}

export type StatFsFn = (path: string) => Promise<StatFs>;

export const DEFAULT_MIN_FREE: MinFree = { percent: 5 };

export function reserveBytes(minFree: MinFree, fs: StatFs): number {
  if ('bytes' in minFree) return minFree.bytes;
  return Math.ceil((fs.blocks * fs.bsize * minFree.percent) / 100);
}

/** `1234567` → `1.2 MiB` (and exact bytes under 1 KiB). */
export function formatBytes(n: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  if (n < 1024) return `${n} B`;
  let v = n;
  let u = -1;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

/**
 * Throws DownloadError('disk') when `<dir>` cannot take `toWrite` more bytes and keep the reserve free.
 * A file system that cannot be asked (statfs unsupported) is not a reason to refuse: the writes will say.
 */
export async function checkDiskSpace(o: {
  dir: string;
  toWrite: number;
  minFree: MinFree;
  statfs?: StatFsFn;
}): Promise<void> {
  let st: StatFs;
  try {
    st = await onPath('cannot check the free space of', o.dir, () => (o.statfs ?? fsStatfs)(o.dir));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOSYS' || code === 'ENOTSUP' || code === 'EOPNOTSUPP') return;
    if (err instanceof FsError) throw new DownloadError('disk', err.message, { cause: err });
    throw err;
  }
  const have = st.bavail * st.bsize;
  const reserve = reserveBytes(o.minFree, st);
  const need = o.toWrite + reserve;
  if (have >= need) return;
  throw new DownloadError(
    'disk',
    `not enough disk space: need ${formatBytes(need)} (${formatBytes(o.toWrite)} image + ${formatBytes(reserve)} reserve), have ${formatBytes(have)} at ${o.dir}`,
  );
}
