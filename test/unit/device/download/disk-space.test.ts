import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { checkDiskSpace, formatBytes } from '../../../../src/device/download/disk-space.ts';
import { downloadFirmware, HttpSource } from '../../../../src/device/download/download.ts';
import { DownloadError } from '../../../../src/device/errors.ts';
import { startFileServer } from './file-server.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('disk precheck (--min-free)', () => {
  test('short of space: FAILED-kind disk error naming need, have and dir; not a byte written, no request', async () => {
    const content = randomBytes(MiB);
    const srv = await startFileServer(content);
    const dir = await mkdtemp(join(tmpdir(), 'ota-disk-'));
    try {
      // A 100 MiB file system with 1.5 MiB free: 1 MiB image + 5 MiB reserve (5 %) does not fit.
      const statfs = async () => ({ bsize: 4096, blocks: (100 * MiB) / 4096, bavail: (1.5 * MiB) / 4096 });
      await assert.rejects(
        downloadFirmware({
          source: new HttpSource(new URL(srv.url)),
          dir,
          fileName: 'fw.img',
          expectedSize: MiB,
          statfs,
        }),
        (e: unknown) => {
          assert.ok(e instanceof DownloadError && e.kind === 'disk');
          assert.equal(
            e.message,
            `not enough disk space: need 6.0 MiB (1.0 MiB image + 5.0 MiB reserve), have 1.5 MiB at ${dir}`,
          );
          return true;
        },
      );
      assert.deepEqual(readdirSync(dir), []);
      assert.equal(srv.requests.length, 0);
      // The same with an absolute reserve that fits: downloads.
      const res = await downloadFirmware({
        source: new HttpSource(new URL(srv.url)),
        dir,
        fileName: 'fw.img',
        expectedSize: MiB,
        sha256: sha(content),
        statfs,
        minFree: { bytes: 256 * KiB },
      });
      assert.equal(res.sha256, sha(content));
    } finally {
      await srv.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a resume needs room only for the bytes still missing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ota-disk-'));
    try {
      const statfs = async () => ({ bsize: 1024, blocks: 1_000_000, bavail: 2048 });
      await checkDiskSpace({ dir, toWrite: 2 * MiB, minFree: { bytes: 0 }, statfs });
      await assert.rejects(
        checkDiskSpace({ dir, toWrite: 2 * MiB + 1, minFree: { bytes: 0 }, statfs }),
        /need 2\.0 MiB/,
      );
      await checkDiskSpace({
        dir,
        toWrite: 0,
        minFree: { percent: 0.2 },
        statfs: async () => ({ bsize: 1024, blocks: 1_000_000, bavail: 2000 }),
      });
      // An unsupported statfs is not a reason to refuse.
      await checkDiskSpace({
        dir,
        toWrite: MiB,
        minFree: { percent: 5 },
        statfs: async () => {
          throw Object.assign(new Error('nope'), { code: 'ENOSYS' });
        },
      });
      assert.equal(formatBytes(1023), '1023 B');
      assert.equal(formatBytes(1536), '1.5 KiB');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('on a real 4 MiB tmpfs: a 3.9 MiB image fails before a byte; a 3 MiB one fits', async (t) => {
    const mnt = await mkdtemp(join(tmpdir(), 'ota-tmpfs-'));
    try {
      try {
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt], { stdio: 'ignore' });
      } catch {
        t.skip('cannot mount a tmpfs here (not root); the injected statfs test above covers the logic');
        return;
      }
      const big = randomBytes(3.9 * MiB);
      const srv = await startFileServer(big);
      try {
        const dir = join(mnt, 'firmware');
        mkdirSync(dir);
        writeFileSync(join(mnt, 'other-file'), 'x'); // the rest of the device's files stay untouched
        await assert.rejects(
          downloadFirmware({
            source: new HttpSource(new URL(srv.url)),
            dir,
            fileName: 'fw.img',
            expectedSize: big.length,
          }),
          (e: unknown) =>
            e instanceof DownloadError &&
            e.kind === 'disk' &&
            /^not enough disk space: need 4\.\d MiB \(3\.9 MiB image \+ 204\.8 KiB reserve\), have [34]\.\d MiB at /.test(
              e.message,
            ),
        );
        assert.deepEqual(readdirSync(dir), []);
        assert.equal(srv.requests.length, 0);
        const fits = big.subarray(0, 3 * MiB);
        srv.content = fits;
        const res = await downloadFirmware({
          source: new HttpSource(new URL(srv.url)),
          dir,
          fileName: 'fw.img',
          expectedSize: fits.length,
          sha256: sha(fits),
          connections: 2,
        });
        assert.equal(res.sha256, sha(fits));
      } finally {
        await srv.close();
        execFileSync('umount', [mnt]);
      }
    } finally {
      await rm(mnt, { recursive: true, force: true });
    }
  });
});
