import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { StateError, StateStore, writeState } from '../../../../src/device/install/state.ts';

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
      await broken.load();
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
