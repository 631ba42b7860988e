import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { resolveAgentConfig } from '../../../../src/device/config/agent-config.ts';
import { parseByteSize, statusDetailsInterval } from '../../../../src/device/config/download.ts';
import { watchMaxRate } from '../../../../src/device/download/rate-watch.ts';
import { TokenBucket } from '../../../../src/device/download/token-bucket.ts';
import { silentLogger } from '../../../../src/shared/log.ts';
import { base, fails } from './config-fixture.ts';

describe('download options of the agent config', () => {
  test('defaults: auto connections, no cap, 5 % free, 60 s stall, 10 min step timer', () => {
    const c = resolveAgentConfig({ flags: base, cwd: '/work' });
    assert.equal(c.connections, 'auto');
    assert.equal(c.maxRate, 0);
    assert.deepEqual(c.minFree, { percent: 5 });
    assert.equal(c.stallTimeoutMs, 60_000);
    assert.equal(c.stepTimeoutMinutes, 10);
    assert.equal(c.maxRateFile, undefined);
  });

  test('sizes and rates with units; env OTA_* names', () => {
    assert.equal(parseByteSize('500kB'), 500_000);
    assert.equal(parseByteSize('2MiB'), 2 * 1024 * 1024);
    assert.equal(parseByteSize(' 1.5 MB/s '), 1_500_000);
    assert.equal(parseByteSize('12'), 12);
    assert.equal(parseByteSize('12 parsecs'), undefined);
    assert.equal(parseByteSize(-1), undefined);
    const c = resolveAgentConfig({
      flags: base,
      env: {
        OTA_CONNECTIONS: '4',
        OTA_MAX_RATE: '256KiB',
        OTA_MIN_FREE: '64MiB',
        OTA_STALL_TIMEOUT_MS: '30000',
        OTA_STEP_TIMEOUT_MINUTES: '0',
      },
    });
    assert.equal(c.connections, 4);
    assert.equal(c.maxRate, 256 * 1024);
    assert.deepEqual(c.minFree, { bytes: 64 * 1024 * 1024 });
    assert.equal(c.stallTimeoutMs, 30_000);
    assert.equal(c.stepTimeoutMinutes, 0);
    assert.deepEqual(resolveAgentConfig({ flags: { ...base, minFree: '2.5%' } }).minFree, { percent: 2.5 });
  });

  test('bad values are refused with the field named', () => {
    fails(
      () => resolveAgentConfig({ flags: { ...base, connections: 0 } }),
      'connections',
      /auto or an integer 1-16/,
    );
    fails(() => resolveAgentConfig({ flags: { ...base, connections: 'many' } }), 'connections', /auto or/);
    fails(() => resolveAgentConfig({ flags: { ...base, maxRate: 'fast' } }), 'maxRate', /bytes per second/);
    fails(() => resolveAgentConfig({ flags: { ...base, minFree: '90%' } }), 'minFree', /percentage/);
    fails(
      () => resolveAgentConfig({ flags: { ...base, stepTimeoutMinutes: 20_000 } }),
      'stepTimeoutMinutes',
      /0-10080/,
    );
    fails(
      () => resolveAgentConfig({ flags: { ...base, stepTimeoutMinutes: 1, stallTimeoutMs: 60_000 } }),
      'stallTimeoutMs',
      /shorter than stepTimeoutMinutes/,
    );
  });

  test('the statusDetails updates that renew the step timer come at least twice per timer', () => {
    assert.equal(statusDetailsInterval({ statusDetailsIntervalMs: 10_000, stepTimeoutMinutes: 10 }), 10_000);
    assert.equal(
      statusDetailsInterval({ statusDetailsIntervalMs: 3_600_000, stepTimeoutMinutes: 1 }),
      30_000,
    );
    assert.equal(
      statusDetailsInterval({ statusDetailsIntervalMs: 3_600_000, stepTimeoutMinutes: 0 }),
      3_600_000,
    );
  });

  test('maxRate is re-read from the config file only when neither a flag nor the environment sets it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ota-cfg-'));
    try {
      const file = join(dir, 'agent.json');
      await writeFile(file, JSON.stringify({ ...base, maxRate: '1MB' }));
      const fromFile = resolveAgentConfig({ configFile: file, cwd: dir });
      assert.equal(fromFile.maxRate, 1_000_000);
      assert.equal(fromFile.maxRateFile, file);
      assert.equal(resolveAgentConfig({ configFile: file, flags: { maxRate: 5 } }).maxRateFile, undefined);
      assert.equal(
        resolveAgentConfig({ configFile: file, env: { OTA_MAX_RATE: '5' } }).maxRateFile,
        undefined,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('watchMaxRate applies a changed file, ignores a bad one, and stops watching', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ota-cfg-'));
    try {
      const file = join(dir, 'agent.json');
      await writeFile(file, JSON.stringify({ maxRate: '100kB' }));
      const bucket = new TokenBucket(1);
      const stop = watchMaxRate(file, bucket, silentLogger, 20);
      assert.equal(bucket.bytesPerSecond, 100_000, 'read at once');
      const until = async (pred: () => boolean) => {
        for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
      };
      await writeFile(file, JSON.stringify({ maxRate: '2MB', other: 1 }));
      await until(() => bucket.bytesPerSecond === 2_000_000);
      assert.equal(bucket.bytesPerSecond, 2_000_000);
      await writeFile(file, '{ not json');
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(bucket.bytesPerSecond, 2_000_000, 'kept');
      await writeFile(file, JSON.stringify({ maxRate: 'fast' }));
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(bucket.bytesPerSecond, 2_000_000, 'kept');
      await writeFile(file, JSON.stringify({}));
      await until(() => bucket.bytesPerSecond === 0);
      assert.equal(bucket.bytesPerSecond, 0, 'removed = unlimited');
      stop();
      await writeFile(file, JSON.stringify({ maxRate: 7 }));
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(bucket.bytesPerSecond, 0, 'no longer watched');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
