import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  readState,
  StateCorruptError,
  StateError,
  StateStore,
  writeState,
} from '../../../../src/device/install/state.ts';

describe('agent state: no temp files pile up; the state is written before it is believed', () => {
  test('a write that fails removes its temp file and names the path and cause', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ota-state-'));
    try {
      // state.json is a directory: the rename over it fails, after the temp file was written.
      mkdirSync(join(dir, 'state.json'));
      for (let i = 0; i < 3; i++) {
        await assert.rejects(
          writeState(dir, { currentVersion: '2' }),
          (e: unknown) =>
            e instanceof StateError &&
            e.message.startsWith(
              `the agent state could not be written: cannot write ${join(dir, 'state.json')}: `,
            ),
        );
      }
      assert.deepEqual(readdirSync(dir), ['state.json']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('temp files of a crashed write are swept at load', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ota-state-'));
    try {
      writeFileSync(join(dir, 'state.json'), JSON.stringify({ currentVersion: '7' }));
      writeFileSync(join(dir, 'state.json.123.456.tmp'), '{');
      writeFileSync(join(dir, 'other.tmp'), 'not ours');
      const store = new StateStore(dir, '1');
      await store.load();
      assert.equal(store.currentVersion, '7');
      assert.deepEqual(readdirSync(dir).sort(), ['other.tmp', 'state.json']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a failed update leaves the state in memory unchanged', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ota-state-'));
    try {
      const store = new StateStore(dir, '1');
      await store.load();
      await store.update((s) => ({ ...s, currentVersion: '2' }));
      // a state dir under a file: every write fails
      writeFileSync(join(dir, 'file'), 'x');
      const broken = new StateStore(join(dir, 'file', 'state'), '2');
      await assert.rejects(
        broken.update((s) => ({ ...s, currentVersion: '3' })),
        StateError,
      );
      assert.equal(broken.currentVersion, '2');
      assert.equal(store.currentVersion, '2');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('agent state: a corrupt state.json is a clear error, never a silent reset', () => {
  const pending = {
    jobId: 'j1',
    fromVersion: '1',
    toVersion: '2',
    file: '/fw/a.img',
    fileName: 'a.img',
    sha256: 'ab'.repeat(32),
    bytes: 10,
    downloadSeconds: 1,
    bootAttempts: 1,
    installedAt: '2026-01-01T00:00:00.000Z',
  };
  const cases: Array<[string, string, RegExp]> = [
    ['not JSON', '{"currentVersion": "7"', /state\.json is not JSON .*; fix or remove it$/],
    ['an array', '[]', /state\.json: \(the whole file\): /],
    [
      'a negative bootAttempts',
      JSON.stringify({ pending: { ...pending, bootAttempts: -5 } }),
      /: pending\.bootAttempts: /,
    ],
    ['a version that is not a string', JSON.stringify({ currentVersion: 41811019 }), /: currentVersion: /],
    ['an empty version', JSON.stringify({ currentVersion: '' }), /: currentVersion: /],
    [
      'a pending record without its image',
      JSON.stringify({ pending: { ...pending, file: undefined } }),
      /: pending\.file: /,
    ],
    [
      'a bad sha256',
      JSON.stringify({ pending: { ...pending, sha256: 'xyz' } }),
      /: pending\.sha256: must be 64 lowercase hex digits/,
    ],
  ];
  for (const [what, content, message] of cases) {
    test(`${what}: load() throws StateCorruptError naming the file and field`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'ota-state-'));
      try {
        writeFileSync(join(dir, 'state.json'), content);
        const store = new StateStore(dir, '1');
        await assert.rejects(store.load(), (e: unknown) => {
          assert.ok(e instanceof StateCorruptError, String(e));
          assert.equal(e.code, 'OTA_STATE_CORRUPT');
          assert.ok(e.message.startsWith(join(dir, 'state.json')), e.message);
          assert.match(e.message, message);
          return true;
        });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }

  test('an unreadable state.json (a directory) throws, naming the path', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ota-state-'));
    try {
      mkdirSync(join(dir, 'state.json'));
      await assert.rejects(
        readState(dir),
        (e: unknown) => e instanceof StateCorruptError && e.message.includes('cannot read'),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a missing state.json is a fresh device; unknown keys are kept', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ota-state-'));
    try {
      assert.deepEqual(await readState(dir), {});
      writeFileSync(
        join(dir, 'state.json'),
        JSON.stringify({ currentVersion: '7', futureKey: { a: 1 }, pending }),
      );
      const s = await readState(dir);
      assert.equal(s.currentVersion, '7');
      assert.deepEqual((s as Record<string, unknown>).futureKey, { a: 1 });
      assert.deepEqual(s.pending, pending);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
