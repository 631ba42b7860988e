import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { after, before, test } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { ORIGINAL_PROGRESS_KEYS } from '../../../src/device/progress/message.ts';
import { deterministicImageStream } from '../../../src/operator/image.ts';
import {
  agentConfig,
  createJob,
  describeExecution,
  operatorSubscriber,
  runAgent,
  startWorld,
  type World,
} from '../../e2e/agent/helpers.ts';

/**
 * A 1 GiB image: the number of progress messages is bounded by time (about one per --progress-interval),
 * not by size or chunk count. Peak RSS is measured by `npm run bench`, not asserted here.
 */
const GIB = 1024 ** 3;
const KEY = 'firmware/big_2.0.0/big.img';
let w: World;
let sha256 = '';

before(async () => {
  w = await startWorld();
  const hash = createHash('sha256');
  // Hash on the way through: a 'data' listener on the source would start it flowing before the SDK reads.
  const body = deterministicImageStream(GIB, 'one-gib').pipe(
    new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        cb(null, chunk);
      },
    }),
  );
  await w.s3.send(new PutObjectCommand({ Bucket: w.bucket, Key: KEY, Body: body, ContentLength: GIB }));
  sha256 = hash.digest('hex');
});
after(async () => {
  await w.close();
});

test('1 GiB image: SUCCEEDED, and progress messages are bounded by time, not by size', {
  timeout: 300_000,
}, async () => {
  const intervalMs = 250;
  const config = await agentConfig(w, 'Dashcam_1GiB', {
    once: true,
    progressIntervalMs: intervalMs,
    statusDetailsIntervalMs: 10_000,
  });
  const sub = await operatorSubscriber(w, config.topic);
  try {
    await createJob(w, 'Dashcam_1GiB', 'big-image', {
      firmware: {
        version: '41811020',
        size: GIB,
        region: 'us-west-2',
        url: `s3://${w.bucket}/${KEY}`,
        sha256,
      },
    });
    const { done } = runAgent(config);
    const summary = await done;
    const job = summary.jobs[0]!;
    assert.equal(job.status, 'SUCCEEDED', job.reason);
    const file = join(config.downloadDir, 'big.img');
    assert.equal(statSync(file).size, GIB);
    assert.equal(existsSync(`${file}.part`), false);
    assert.equal(job.sha256, sha256);
    assert.equal((await describeExecution(w, 'Dashcam_1GiB', 'big-image'))?.status, 'SUCCEEDED');

    // The original published once per boto3 chunk: 1 GiB / 8 MiB = 128 messages at best, 4096 at 256 KiB.
    // Ours: the first at 0 %, at most one per interval while downloading, the final 100.0 %, and the
    // outcome message.
    const seconds = job.seconds!;
    const bound = Math.ceil((seconds * 1000) / intervalMs) + 3;
    assert.ok(job.progressMessages >= 3, `only ${job.progressMessages} messages`);
    assert.ok(
      job.progressMessages <= bound,
      `${job.progressMessages} messages in ${seconds.toFixed(2)} s (bound ${bound})`,
    );
    assert.ok(
      job.statusDetailsUpdates <= Math.ceil(seconds / 10) + 1,
      `${job.statusDetailsUpdates} status updates`,
    );

    await new Promise((r) => setTimeout(r, 200));
    assert.equal(sub.messages.length, job.progressMessages);
    let last = -1;
    for (const raw of sub.messages) {
      const m = JSON.parse(raw) as Record<string, unknown>;
      assert.deepEqual(Object.keys(m).slice(0, 8), [...ORIGINAL_PROGRESS_KEYS]);
      assert.ok((m.Downloading as number) >= last);
      last = m.Downloading as number;
    }
    assert.equal(JSON.parse(sub.messages.at(-1)!).Progress, '100.0 %');
  } finally {
    await sub.close();
  }
});
