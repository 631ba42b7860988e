import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { type HookCall, HookError, shellHook } from '../../../../src/device/install/hooks.ts';
import { readSlots, slotHooks } from '../../../../src/device/install/slots.ts';
import { ManualClock } from '../../../../src/shared/clock.ts';
import { silentLogger } from '../../../../src/shared/log.ts';

const call = (extra: Partial<HookCall> = {}): HookCall => ({
  file: '/tmp/fw image.img',
  version: '41811020',
  previousVersion: '41811019',
  jobId: 'job-1',
  sha256: 'ab'.repeat(32),
  logger: silentLogger,
  ...extra,
});

describe('shell hooks (/bin/sh -c with OTA_* variables)', () => {
  test('the OTA_* variables reach the command; its output is passed on line by line', async () => {
    const lines: string[] = [];
    const hook = shellHook(
      'install',
      'echo "$OTA_FILE|$OTA_VERSION|$OTA_PREVIOUS_VERSION|$OTA_JOB_ID|$OTA_SHA256|$OTA_AGENT_PID"; echo warn >&2',
      { timeoutMs: 10_000 },
    );
    await hook(call({ onOutput: (l, s) => lines.push(`${s}:${l}`) }));
    assert.deepEqual(lines.sort(), [
      'stderr:warn',
      `stdout:/tmp/fw image.img|41811020|41811019|job-1|${'ab'.repeat(32)}|${process.pid}`,
    ]);
  });

  test('a non-zero exit fails with the code and the tail of stderr', async () => {
    const hook = shellHook('health', 'echo starting; echo "boot check: /dev/mmcblk0p3 missing" >&2; exit 7', {
      timeoutMs: 10_000,
    });
    await assert.rejects(hook(call()), (e: unknown) => {
      assert.ok(e instanceof HookError);
      assert.equal(e.hook, 'health');
      assert.equal(e.exitCode, 7);
      assert.equal(e.message, 'health command exited with code 7: boot check: /dev/mmcblk0p3 missing');
      return true;
    });
  });

  test('a timeout (on the fake clock) kills the whole process group, children too', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ota-hook-'));
    try {
      const clock = new ManualClock();
      const pidFile = join(dir, 'child.pid');
      // the shell starts a grandchild that would outlive a kill of the shell alone
      const hook = shellHook('install', `sleep 60 & echo $! > ${pidFile}; wait`, {
        timeoutMs: 300_000,
        clock,
      });
      // The rejection can come while the clock is being advanced: take it at once, check it after.
      const outcome = hook(call()).then(
        () => undefined,
        (e: unknown) => e,
      );
      while (!existsSync(pidFile) || readFileSync(pidFile, 'utf8').trim() === '') await clock.advance(0);
      const grandchild = Number(readFileSync(pidFile, 'utf8'));
      await clock.advance(300_000);
      const e = await outcome;
      assert.ok(e instanceof HookError && e.timedOut && /timed out after 300 s/.test(e.message), String(e));
      // gone, or a zombie waiting for a reaper (a container's PID 1 may not reap)
      await new Promise((r) => setTimeout(r, 100));
      const stat = existsSync(`/proc/${grandchild}/stat`)
        ? readFileSync(`/proc/${grandchild}/stat`, 'utf8')
        : '';
      assert.ok(stat === '' || /^\d+ \([^)]*\) Z/.test(stat), `grandchild still running: ${stat}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('what the command leaves in its process group ends with it; the hook does not wait for it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ota-hook-'));
    try {
      const pidFile = join(dir, 'child.pid');
      // A backgrounded child that inherits the pipes: before, the hook waited the full 30 s for it.
      const hook = shellHook('health', `sleep 30 & echo $! > ${pidFile}; exit 0`, { timeoutMs: 60_000 });
      const started = Date.now();
      await hook(call());
      assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
      await waitGone(Number(readFileSync(pidFile, 'utf8')));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a descendant in its own session that holds the pipes does not hold the hook', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ota-hook-'));
    const pidFile = join(dir, 'daemon.pid');
    try {
      const hook = shellHook('install', `setsid sh -c 'echo $$ > ${pidFile}; exec sleep 45' & exit 0`, {
        timeoutMs: 60_000,
      });
      const started = Date.now();
      await hook(call());
      assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
    } finally {
      await killPidFile(pidFile);
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a hung command whose daemon holds the pipes still times out (on the fake clock)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ota-hook-'));
    const pidFile = join(dir, 'daemon.pid');
    try {
      const clock = new ManualClock();
      const hook = shellHook('health', `setsid sh -c 'echo $$ > ${pidFile}; exec sleep 45' & sleep 60`, {
        timeoutMs: 3_000,
        clock,
      });
      const outcome = hook(call()).then(
        () => undefined,
        (e: unknown) => e,
      );
      while (!existsSync(pidFile) || readFileSync(pidFile, 'utf8').trim() === '') await clock.advance(0);
      await clock.advance(3_000);
      // the shell is killed; its output stays held by the daemon, read for at most the drain window
      for (let i = 0; i < 200 && (await settledYet(outcome)) === false; i++) await clock.advance(100);
      const e = await outcome;
      assert.ok(e instanceof HookError && e.timedOut && /timed out after 3 s/.test(e.message), String(e));
    } finally {
      await killPidFile(pidFile);
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('an abort (the agent stops) kills the command', async () => {
    const ac = new AbortController();
    const hook = shellHook('health', 'sleep 60', { timeoutMs: 300_000 });
    const p = hook(call({ signal: ac.signal }));
    setTimeout(() => ac.abort(), 50);
    await assert.rejects(p, /health command was stopped/);
  });

  test('a stop that came before the hook: the command is not started at all', async () => {
    // An aborted signal fires no 'abort' event for a listener added later: the command would run its
    // whole course (the install of an agent that was told to stop), and the agent with it.
    const dir = await mkdtemp(join(tmpdir(), 'ota-hook-'));
    try {
      const ac = new AbortController();
      ac.abort();
      const mark = join(dir, 'ran');
      const hook = shellHook('install', `touch '${mark}'; sleep 30`, { timeoutMs: 300_000 });
      const t0 = Date.now();
      await assert.rejects(hook(call({ signal: ac.signal })), /install command was stopped/);
      assert.ok(Date.now() - t0 < 5000);
      assert.equal(existsSync(mark), false, 'the command did not run');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the built-in A/B installer (--slots)', () => {
  test('install writes the slot that is not committed and switches current; rollback switches back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ota-slots-'));
    try {
      const img = join(dir, 'new.img');
      writeFileSync(img, 'v2');
      const slots = slotHooks(join(dir, 'slots'));
      const s = join(dir, 'slots');
      await slots.install(call({ file: img }));
      assert.deepEqual(await readSlots(s), { current: 'b', committed: 'a' });
      assert.equal(readFileSync(join(s, 'b'), 'utf8'), 'v2');
      // a second install of the same job (a crash before the pending record) writes the same slot
      await slots.install(call({ file: img }));
      assert.deepEqual(await readSlots(s), { current: 'b', committed: 'a' });
      await slots.rollback(call());
      assert.deepEqual(await readSlots(s), { current: 'a', committed: 'a' });
      // install again, then commit: b becomes the good slot; the next install goes to a
      await slots.install(call({ file: img }));
      await slots.commit(call({ sha256: sha256Of('v2') }));
      assert.deepEqual(await readSlots(s), { current: 'b', committed: 'b' });
      writeFileSync(img, 'v3');
      await slots.install(call({ file: img }));
      assert.deepEqual(await readSlots(s), { current: 'a', committed: 'b' });
      assert.equal(readFileSync(join(s, 'a'), 'utf8'), 'v3');
      assert.equal(readlinkSync(join(s, 'current')), 'a');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('commit marks good only the image that runs: not after a rollback, not without `current`', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ota-slots-'));
    try {
      const img = join(dir, 'new.img');
      writeFileSync(img, 'v2');
      const s = join(dir, 'slots');
      const slots = slotHooks(s);
      await slots.install(call({ file: img }));
      await slots.rollback(call());
      // the rollback switched back to a: committing now would call the old image the new one
      await assert.rejects(slots.commit(call({ sha256: sha256Of('v2') })), (e: unknown) => {
        assert.ok(e instanceof HookError && e.hook === 'commit', String(e));
        assert.match(e.message, /^commit \(A\/B slots\): slot a does not hold the image being committed/);
        return true;
      });
      assert.deepEqual(await readSlots(s), { current: 'a', committed: 'a' });
      // installed and running: commit, and committing again (a crash before the report) still holds
      await slots.install(call({ file: img }));
      await slots.commit(call({ sha256: sha256Of('v2') }));
      await slots.commit(call({ sha256: sha256Of('v2') }));
      assert.deepEqual(await readSlots(s), { current: 'b', committed: 'b' });
      rmSync(join(s, 'current'));
      await assert.rejects(
        slots.commit(call({ sha256: sha256Of('v2') })),
        /current is missing: nothing to commit/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('an install that cannot write fails with the path and cause, and does not switch', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ota-slots-'));
    try {
      const slots = slotHooks(join(dir, 'slots'));
      await assert.rejects(
        slots.install(call({ file: join(dir, 'missing.img') })),
        (e: unknown) =>
          e instanceof HookError &&
          /^install \(A\/B slots\): cannot write .*b\.tmp: no such file/.test(e.message),
      );
      assert.deepEqual(await readSlots(join(dir, 'slots')), { current: 'a', committed: 'a' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** Waits (real time, bounded) until `pid` is gone or a zombie waiting for a reaper. */
async function waitGone(pid: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const stat = existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, 'utf8') : '';
    if (stat === '' || /^\d+ \([^)]*\) Z/.test(stat)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`process ${pid} still running`);
}

async function killPidFile(pidFile: string): Promise<void> {
  if (!existsSync(pidFile)) return;
  try {
    process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Whether a promise has settled, without waiting for it. */
async function settledYet(p: Promise<unknown>): Promise<boolean> {
  const pending = Symbol('pending');
  return (
    (await Promise.race([p.then(() => true), new Promise((r) => setImmediate(() => r(pending)))])) !== pending
  );
}

const sha256Of = (s: string): string => createHash('sha256').update(s).digest('hex');
