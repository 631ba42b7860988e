import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  agentConfig,
  cancelJob,
  createJob,
  cuttingProxy,
  debris,
  describeExecution,
  firmwareDoc,
  ORIGINAL_KEY,
  putFirmware,
  runAgent,
  startWorld,
  type World,
} from './helpers.ts';

const SIZE = 4 * 1024 * 1024;

let w: World;
before(async () => {
  w = await startWorld();
  await putFirmware(w, ORIGINAL_KEY, SIZE);
});
after(async () => {
  await w.close();
});

/**
 * A job cancelled with force answers the device's describe with TerminalStateReached (the Jobs service's
 * ErrorResponse for a job in a terminal state). The agent asks when notify-next moves on; that answer
 * must stop the download at once, not at the next statusDetails update (here an hour away) or the end.
 */
test('a forced cancel stops the download at once (TerminalStateReached), removes the partial', async () => {
  const thing = 'Cam_force';
  // A slow link: the whole image would take seconds, the cancel reaches the agent in milliseconds.
  const proxy = await cuttingProxy(w.stack.endpoints.s3.endpoint, 0, 0, 40);
  try {
    const config = await agentConfig(w, thing, {
      once: true,
      s3Endpoint: proxy.url,
      progressIntervalMs: 0,
      statusDetailsIntervalMs: 3_600_000,
    });
    await createJob(w, thing, 'force-me', firmwareDoc(w, SIZE));
    let cancelled = false;
    const run = runAgent(config, (e) => {
      if (e.type === 'progress' && e.jobId === 'force-me' && e.bytes > 0 && !cancelled) {
        cancelled = true;
        void cancelJob(w, 'force-me');
      }
    });
    const summary = await run.done;
    const job = summary.jobs[0];
    assert.equal(job?.status, 'CANCELED', job?.reason);
    assert.match(job?.reason ?? '', /TerminalStateReached|CANCELED/);
    const bytes = run.events.flatMap((e) =>
      e.type === 'progress' && e.jobId === 'force-me' ? [e.bytes] : [],
    );
    assert.ok(Math.max(...bytes) < SIZE, `the download went on to ${Math.max(...bytes)} of ${SIZE} bytes`);
    assert.equal(existsSync(join(config.downloadDir, 'cv150_ubifs.img')), false);
    assert.deepEqual(debris(config.downloadDir), []);
    assert.equal((await describeExecution(w, thing, 'force-me'))?.status, 'CANCELED');
  } finally {
    await proxy.close();
  }
});
