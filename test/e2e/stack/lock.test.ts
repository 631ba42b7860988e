import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startLocalStack } from '../../../src/cloud/stack.ts';
import { FREE_PORTS } from '../../helpers/stack.ts';

test('one local stack per data dir; a lock left by a dead process is taken over', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ota-lock-'));
  try {
    const first = await startLocalStack({ dataDir: dir, ...FREE_PORTS });
    await assert.rejects(
      startLocalStack({ dataDir: dir, ...FREE_PORTS }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'OTA_DATA_DIR_LOCKED');
        assert.match(err.message, new RegExp(`in use by another local stack \\(pid ${process.pid}\\)`));
        return true;
      },
    );
    await first.close();
    assert.equal(existsSync(join(dir, 'stack.lock')), false);

    // A process that died without cleaning up (kill -9) leaves its pid behind.
    const dead = spawnSync(process.execPath, [
      '-e',
      'process.stdout.write(String(process.pid))',
    ]).stdout.toString();
    writeFileSync(join(dir, 'stack.lock'), dead);
    const second = await startLocalStack({ dataDir: dir, ...FREE_PORTS });
    assert.ok(second.endpoints.things.RaspberryPi_2);
    await second.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
