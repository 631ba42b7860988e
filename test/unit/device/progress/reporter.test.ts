import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { JobsRequestError } from '../../../../src/device/errors.ts';
import { JobProgress, type ProgressChannel } from '../../../../src/device/progress/reporter.ts';
import { ManualClock } from '../../../../src/shared/clock.ts';
import type { AbortedError } from '../../../../src/shared/errors.ts';

function channel(opts: { updateFails?: string; publishHangs?: boolean } = {}) {
  const published: Record<string, unknown>[] = [];
  const updates: Record<string, string>[] = [];
  const ch: ProgressChannel = {
    publish: (_topic, payload) => {
      published.push(JSON.parse(payload) as Record<string, unknown>);
      return opts.publishHangs ? new Promise(() => {}) : Promise.resolve(true);
    },
    update: async (_jobId, _status, details) => {
      if (opts.updateFails) throw new JobsRequestError(opts.updateFails, 'refused');
      updates.push(details ?? {});
      return undefined;
    },
  };
  return { ch, published, updates };
}

function reporter(ch: ProgressChannel, timers: ManualClock, onJobGone?: (r: AbortedError) => void) {
  return new JobProgress({
    channel: ch,
    thingName: 'Cam_1',
    topic: 'CarVi/test/firmware/Cam_1',
    timeZone: 'UTC',
    progressIntervalMs: 1000,
    statusDetailsIntervalMs: 10_000,
    finalTimeoutMs: 5000,
    timers,
    subject: () => ({ jobId: 'job-1', startedAt: timers.now(), version: '2', fileName: 'fw.img' }),
    ...(onJobGone ? { onJobGone } : {}),
  });
}

describe('JobProgress (progress messages and statusDetails, on a fake clock)', () => {
  test('first message at once, then at most one per interval, and a final 100 %', async () => {
    const timers = new ManualClock();
    const { ch, published, updates } = channel();
    const p = reporter(ch, timers);
    p.start(0, 1000);
    assert.equal(published.length, 1);
    assert.equal(published[0]?.Progress, '0.0 %');
    for (let i = 1; i < 50; i++) p.update(i * 10, 1000); // no time passes: no more messages
    assert.equal(published.length, 1);
    await timers.advance(1000);
    p.update(600, 1000);
    assert.equal(published.length, 2);
    assert.equal(published[1]?.Downloading, 600);
    assert.equal(published[1]?.bytesPerSecond, 600);
    p.finish(1000);
    assert.equal(published.at(-1)?.Progress, '100.0 %');
    assert.equal(published.at(-1)?.state, 'DOWNLOADED');
    // statusDetails: the first at start, the next only after 10 s
    await timers.advance(0);
    assert.equal(updates.length, 1);
    assert.equal(updates[0]?.step, 'download');
    p.update(700, 1000);
    await timers.advance(0);
    assert.equal(updates.length, 1);
    await timers.advance(10_000);
    p.update(800, 1000);
    await timers.advance(0);
    assert.equal(updates.length, 2);
    assert.equal(updates[1]?.progress, '800/1000');
    assert.equal(p.statusUpdates, 2);
  });

  test('an IN_PROGRESS update refused as terminal → onJobGone (the job was cancelled)', async () => {
    const timers = new ManualClock();
    const { ch } = channel({ updateFails: 'TerminalStateReached' });
    let gone: AbortedError | undefined;
    const p = reporter(ch, timers, (r) => {
      gone = r;
    });
    p.start(0, 10);
    await timers.advance(0);
    assert.match(gone?.message ?? '', /TerminalStateReached/);
  });

  test('the outcome message waits for the connection at most finalTimeoutMs of the (fake) clock', async () => {
    const timers = new ManualClock();
    const { ch, published } = channel({ publishHangs: true });
    const p = reporter(ch, timers);
    let done = false;
    const sent = p.outcome('FAILED', 10, 3).then(() => {
      done = true;
    });
    await timers.advance(4999);
    assert.equal(done, false);
    await timers.advance(1);
    await sent;
    assert.equal(published.at(-1)?.state, 'FAILED');
    assert.equal(published.at(-1)?.Downloading, 3);
  });
});
