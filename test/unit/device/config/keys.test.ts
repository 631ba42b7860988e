import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  type ConfigWarning,
  envName,
  resolveAgentConfig,
} from '../../../../src/device/config/agent-config.ts';
import { closestKey, DURATION_KEYS, unknownKeyWarnings } from '../../../../src/device/config/keys.ts';
import { ValidationError } from '../../../../src/shared/errors.ts';
import { base } from './config-fixture.ts';

async function withFile<T>(contents: unknown, fn: (path: string) => T): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'ota-cfg-keys-'));
  try {
    const path = join(dir, 'agent.json');
    await writeFile(path, JSON.stringify(contents));
    return fn(path);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('durations: seconds under the flag name, milliseconds under the Ms name', () => {
  test('the flag (seconds) and the Ms key (milliseconds) mean the same', () => {
    const s = resolveAgentConfig({ flags: { ...base, progressInterval: 1.5, connectTimeout: '2' } });
    assert.equal(s.progressIntervalMs, 1500);
    assert.equal(s.connectTimeoutMs, 2000);
    const ms = resolveAgentConfig({ flags: { ...base, progressIntervalMs: 1500 } });
    assert.equal(ms.progressIntervalMs, 1500);
    assert.equal(resolveAgentConfig({ flags: base }).connectTimeoutMs, 30_000);
  });

  test('in the config file and the environment too, each with its unit; precedence holds across both names', async () => {
    await withFile({ ...base, progressInterval: 0.25, hookTimeout: 60 }, (file) => {
      const c = resolveAgentConfig({ configFile: file });
      assert.equal(c.progressIntervalMs, 250);
      assert.equal(c.hookTimeoutMs, 60_000);
      // env (either name) beats the file; a flag beats env
      const e = resolveAgentConfig({ configFile: file, env: { OTA_PROGRESS_INTERVAL: '2' } });
      assert.equal(e.progressIntervalMs, 2000);
      const e2 = resolveAgentConfig({ configFile: file, env: { OTA_PROGRESS_INTERVAL_MS: '700' } });
      assert.equal(e2.progressIntervalMs, 700);
      const f = resolveAgentConfig({
        configFile: file,
        env: { OTA_PROGRESS_INTERVAL: '2' },
        flags: { progressInterval: 3 },
      });
      assert.equal(f.progressIntervalMs, 3000);
    });
    assert.equal(envName('connectTimeout'), 'OTA_CONNECT_TIMEOUT');
  });

  test('both names with different values in one place: refused, naming both', () => {
    assert.throws(
      () => resolveAgentConfig({ flags: { ...base, progressInterval: 1, progressIntervalMs: 500 } }),
      (e: unknown) =>
        e instanceof ValidationError &&
        e.field === 'progressInterval' &&
        /progressIntervalMs in milliseconds says otherwise \(500\)/.test(e.message),
    );
    // the same value twice is no conflict
    const same = resolveAgentConfig({ flags: { ...base, progressInterval: 1, progressIntervalMs: 1000 } });
    assert.equal(same.progressIntervalMs, 1000);
  });

  test('a bad number is named by the Ms key, with its range', () => {
    assert.throws(
      () => resolveAgentConfig({ flags: { ...base, connectTimeout: 'soon' } }),
      (e: unknown) => e instanceof ValidationError && e.field === 'connectTimeoutMs',
    );
  });

  test('every seconds key has an Ms key the schema knows', () => {
    const c = resolveAgentConfig({ flags: base }) as unknown as Record<string, unknown>;
    for (const ms of Object.values(DURATION_KEYS)) assert.equal(typeof c[ms], 'number', ms);
  });
});

describe('unknown config keys', () => {
  test('warned, naming the key, the file and the known key it resembles; the rest still works', async () => {
    const warnings: ConfigWarning[] = [];
    await withFile(
      {
        ...base,
        thingname: 'Cam_x',
        progresIntervalMs: 5,
        rootCA: '/ca.pem',
        frobnicate: true,
        $schema: 'x',
      },
      (file) => {
        const c = resolveAgentConfig({ configFile: file, onWarning: (w) => warnings.push(w) });
        assert.equal(c.thingName, 'RaspberryPi_2');
        assert.deepEqual(
          warnings.map((w) => [w.key, w.suggestion]),
          [
            ['thingname', 'thingName'],
            ['progresIntervalMs', 'progressIntervalMs'],
            ['rootCA', 'rootCa'],
            ['frobnicate', undefined],
          ],
        );
        assert.equal(
          warnings[0]?.message,
          `${file}: unknown key "thingname" (did you mean thingName?); it is ignored`,
        );
        assert.equal(warnings[3]?.message, `${file}: unknown key "frobnicate"; it is ignored`);
      },
    );
  });

  test('downloadRetries (replaced by downloadRetryWindowMs) gets its own word', () => {
    const [w] = unknownKeyWarnings({ downloadRetries: 5 }, ['downloadRetryWindowMs'], 'agent.json');
    assert.match(
      w?.message ?? '',
      /^agent\.json: downloadRetries is no longer used: the download now retries for a time, not a count; set downloadRetryWindowMs \(milliseconds\) or downloadRetryWindow \(seconds\)/,
    );
  });

  test('closestKey suggests typos, not unrelated keys', () => {
    const known = ['thingName', 'endpoint', 'key', 'cert', 'progressIntervalMs'];
    assert.equal(closestKey('thing_name', known), 'thingName');
    assert.equal(closestKey('endpiont', known), 'endpoint');
    assert.equal(closestKey('foo', known), undefined);
    assert.equal(closestKey('zzzzzzzzzz', known), undefined);
  });
});
