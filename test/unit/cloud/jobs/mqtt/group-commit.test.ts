import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createGroupCommit } from '../../../../../src/cloud/jobs/mqtt/group-commit.ts';
import type { Outbound } from '../../../../../src/cloud/jobs/mqtt/outbound.ts';
import { JobsStore } from '../../../../../src/cloud/jobs/store/store.ts';
import { silentLogger } from '../../../../../src/shared/log.ts';

const msg = (thingName: string, n: number): Outbound => ({
  thingName,
  topic: `t/${thingName}`,
  render: () => String(n),
});

/** A sync that completes only when the test says so. */
function manualSync() {
  const pending: ((err?: Error) => void)[] = [];
  return {
    calls: () => pending.length,
    sync: (done: (err?: Error) => void) => {
      pending.push(done);
    },
    complete(i: number, err?: Error) {
      pending[i]?.(err);
    },
  };
}

describe('jobs group commit', () => {
  test('messages leave only after the sync that covers their commit; later ones form the next batch', () => {
    const s = manualSync();
    const delivered: string[][] = [];
    const gc = createGroupCommit({
      sync: s.sync,
      deliver: (m) => delivered.push(m.map((x) => `${x.thingName}:${x.render()}`)),
      log: silentLogger,
    });
    gc.send([msg('a', 1)]);
    assert.equal(s.calls(), 1, 'the first message starts a sync at once');
    assert.deepEqual(delivered, [], 'nothing leaves before the sync completes');
    gc.send([msg('b', 2)]);
    gc.send([msg('a', 3), msg('c', 4)]);
    assert.equal(s.calls(), 1, 'one sync in flight at a time');
    s.complete(0);
    assert.deepEqual(delivered, [['a:1']]);
    assert.equal(s.calls(), 2, 'the messages that waited get one sync together');
    s.complete(1);
    assert.deepEqual(delivered, [['a:1'], ['b:2', 'a:3', 'c:4']]);
  });

  test('idle waits for delivery; a failed sync still delivers; close drops what waits', async () => {
    const s = manualSync();
    const delivered: Outbound[] = [];
    const gc = createGroupCommit({ sync: s.sync, deliver: (m) => delivered.push(...m), log: silentLogger });
    let idle = false;
    gc.send([msg('a', 1)]);
    const p = gc.idle().then(() => {
      idle = true;
    });
    await Promise.resolve();
    assert.equal(idle, false);
    s.complete(0, new Error('EIO'));
    await p;
    assert.equal(delivered.length, 1);
    gc.send([msg('a', 2)]);
    gc.close();
    s.complete(1);
    await gc.idle();
    assert.equal(delivered.length, 1, 'nothing is delivered after close');
  });

  test('store: commits use synchronous=NORMAL and syncWal syncs only what was committed since', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ota-jobs-gc-'));
    const store = new JobsStore(join(dir, 'jobs.db'));
    try {
      assert.equal(store.db.pragma('synchronous', { simple: true }), 1, 'NORMAL');
      const sync = () =>
        new Promise<'at once' | 'later'>((resolve, reject) => {
          let returned = false;
          store.syncWal((err) => (err ? reject(err) : resolve(returned ? 'later' : 'at once')));
          returned = true;
        });
      store.transaction(() => store.db.exec("UPDATE counters SET value = value WHERE name = 'x'"));
      assert.equal(await sync(), 'later', 'a commit: an fdatasync on the thread pool');
      assert.equal(await sync(), 'at once', 'nothing committed since: nothing to sync');
      store.transaction(() => store.transaction(() => undefined));
      assert.equal(await sync(), 'later');
      store.syncWalNow();
      assert.equal(await sync(), 'at once', 'syncWalNow covered it');
      // Each SQL text is compiled once.
      const sql = 'SELECT 1 AS one';
      assert.equal(store.db.prepare(sql), store.db.prepare(sql));
    } finally {
      store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
