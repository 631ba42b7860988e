import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { copyFile, open, readlink, rename, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ensureDir, FsError, fsyncDir, onPath } from '../fs-safe.ts';
import type { DeviceHooks, HookCall } from './hooks.ts';
import { HookError } from './hooks.ts';

/**
 * The built-in A/B installer (`--slots <dir>`), for machines without a real one, and for the demo, the
 * fleet simulator and tests. It keeps two image slots and two pointers, the way U-Boot's A/B setups and
 * RAUC keep a boot slot and a "good" mark:
 *
 *   <dir>/a, <dir>/b     the images (files standing in for two partitions)
 *   <dir>/current        symlink → a | b: the slot that boots next
 *   <dir>/committed      symlink → a | b: the last slot whose self-test passed
 *
 * install:  copy the image into the slot that is not `committed`, fsync, then switch `current` to it;
 * rollback: switch `current` back to `committed` (switching again);
 * commit:   `committed` := `current`, once `current` is checked to hold the image being committed.
 *
 * Writing into "not committed" (rather than "not current") keeps install idempotent: a second install of
 * the same job after a crash overwrites the same slot, never the good one. Every switch is a symlink
 * created aside and renamed over the old one: atomic, so a power cut leaves one pointer or the other.
 */
export type Slot = 'a' | 'b';

export interface SlotState {
  current: Slot;
  committed: Slot;
}

const other = (s: Slot): Slot => (s === 'a' ? 'b' : 'a');

async function pointer(dir: string, name: 'current' | 'committed'): Promise<Slot | undefined> {
  try {
    const target = await readlink(join(dir, name));
    return target === 'a' || target === 'b' ? target : undefined;
  } catch {
    return undefined;
  }
}

/** The slots' pointers; a fresh directory runs slot `a`, committed. */
export async function readSlots(dir: string): Promise<SlotState> {
  const committed = (await pointer(dir, 'committed')) ?? (await pointer(dir, 'current')) ?? 'a';
  const current = (await pointer(dir, 'current')) ?? committed;
  return { current, committed };
}

async function point(dir: string, name: 'current' | 'committed', slot: Slot): Promise<void> {
  const link = join(dir, name);
  const tmp = `${link}.tmp`;
  await onPath('cannot switch', link, async () => {
    await rm(tmp, { force: true });
    await symlink(slot, tmp);
    await rename(tmp, link);
  });
  await fsyncDir(dir);
}

async function writeSlot(dir: string, slot: Slot, file: string): Promise<void> {
  const dest = join(dir, slot);
  const tmp = `${dest}.tmp`;
  try {
    await onPath('cannot write', tmp, () => copyFile(file, tmp, constants.COPYFILE_FICLONE));
    const fh = await onPath('cannot write', tmp, () => open(tmp, 'r+'));
    try {
      await onPath('cannot write', tmp, () => fh.sync());
    } finally {
      await fh.close();
    }
    await onPath('cannot write', dest, () => rename(tmp, dest));
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
}

/** The SHA-256 (hex) of a slot's image; undefined for a slot never written. */
async function sha256File(file: string): Promise<string | undefined> {
  const hash = createHash('sha256');
  try {
    await pipeline(createReadStream(file), hash);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new FsError(err, 'cannot read', file);
  }
  return hash.digest('hex');
}

/** Runs one slot operation; any failure becomes a HookError of that hook, naming the path and cause. */
async function guarded(hook: 'install' | 'rollback' | 'commit', fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new HookError(hook, `${hook} (A/B slots): ${msg}`, { cause: err });
  }
}

export function slotHooks(dir: string): Required<Pick<DeviceHooks, 'install' | 'rollback' | 'commit'>> {
  return {
    install: (call: HookCall) =>
      guarded('install', async () => {
        await ensureDir(dir);
        const { committed } = await readSlots(dir);
        if ((await pointer(dir, 'committed')) === undefined) await point(dir, 'committed', committed);
        const target = other(committed);
        await writeSlot(dir, target, call.file);
        await point(dir, 'current', target);
        call.logger.info({ slot: target, dir }, 'image written to the inactive slot; it boots next');
      }),
    rollback: (call: HookCall) =>
      guarded('rollback', async () => {
        const { committed } = await readSlots(dir);
        await point(dir, 'current', committed);
        call.logger.warn({ slot: committed, dir }, 'rolled back: the committed slot boots next');
      }),
    commit: (call: HookCall) =>
      guarded('commit', async () => {
        const current = await pointer(dir, 'current');
        if (current === undefined) throw new Error(`${join(dir, 'current')} is missing: nothing to commit`);
        // Only the image that runs may be marked good: after a rollback (even one cut short by a power
        // cut), `current` is the old slot again, and committing it would report the new version.
        const running = await sha256File(join(dir, current));
        if (running !== call.sha256) {
          const holds = running === undefined ? 'no image' : `sha256 ${running.slice(0, 12)}…`;
          throw new Error(
            `slot ${current} does not hold the image being committed (${holds}, expected ${call.sha256.slice(0, 12)}…): the new image is not the one running`,
          );
        }
        await point(dir, 'committed', current);
        call.logger.info({ slot: current, dir }, 'slot committed');
      }),
  };
}
