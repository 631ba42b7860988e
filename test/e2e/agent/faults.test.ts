import assert from 'node:assert/strict';
import { existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  agentConfig,
  createJob,
  cuttingProxy,
  debris,
  describeExecution,
  firmwareDoc,
  ORIGINAL_KEY,
  putFirmware,
  runAgent,
  sha256,
  startWorld,
  unwritableDir,
  type World,
  waitFor,
  worldPerSuite,
} from './helpers.ts';
import { startHostileJobs } from './hostile-jobs.ts';

const SIZE = 1024 * 1024 + 5;

/** Faults that could leave debris, crash, spin or say the wrong thing: each must end cleanly. */
describe('device agent: every fault ends cleanly, with a reason naming the path and cause', () => {
  let w: World;
  let firmware: Buffer;
  worldPerSuite(SIZE, (world, image) => {
    w = world;
    firmware = image;
  });

  test('a read-only state dir: FAILED saying the state could not be written; version unchanged', async () => {
    const thing = 'Cam_rostate';
    const stateDir = unwritableDir(join(w.dir, 'ro-state'));
    const config = await agentConfig(w, thing, { once: true, stateDir });
    await createJob(w, thing, 'ro-state', firmwareDoc(w, SIZE, { sha256: sha256(firmware) }));
    const summary = await runAgent(config).done;
    const job = summary.jobs[0];
    assert.equal(job?.status, 'FAILED', job?.reason);
    const exec = await describeExecution(w, thing, 'ro-state');
    assert.equal(exec?.status, 'FAILED');
    assert.match(exec?.statusDetails?.detailsMap?.reason ?? '', /state could not be written: .*state/);
    assert.equal(summary.currentVersion, '41811019');
    assert.deepEqual(debris(config.downloadDir), []);
  });

  test('--download-dir /proc/x: FAILED at once naming the path, no spinning; the agent stops on request', async () => {
    const thing = 'Cam_proc';
    const config = await agentConfig(w, thing, {
      once: false,
      downloadDir: '/proc/x',
      stateDir: join(w.dir, 'state-proc'),
    });
    await createJob(w, thing, 'proc-job', firmwareDoc(w, SIZE));
    const run = runAgent(config);
    try {
      await waitFor(run.events, (ev) => ev.some((e) => e.type === 'job-result'), 10_000);
    } finally {
      await run.handle.stop();
    }
    const summary = await run.done;
    assert.equal(summary.jobs[0]?.status, 'FAILED');
    assert.match(
      summary.jobs[0]?.reason ?? '',
      /download dir: cannot create directory \/proc\/x: .*\(ENOENT\)/,
    );
    assert.equal((await describeExecution(w, thing, 'proc-job'))?.status, 'FAILED');
  });

  test('a read-only download dir: FAILED naming the path and the cause (not "ENOENT … mkdir")', async () => {
    const thing = 'Cam_rodl';
    // A download dir still to be created, inside a directory that refuses new entries.
    const dir = join(unwritableDir(join(w.dir, 'ro-dl')), 'ota-firmware');
    const config = await agentConfig(w, thing, {
      once: true,
      downloadDir: dir,
      stateDir: join(w.dir, 'state-rodl'),
    });
    await createJob(w, thing, 'ro-dl', firmwareDoc(w, SIZE));
    const summary = await runAgent(config).done;
    assert.equal(summary.jobs[0]?.status, 'FAILED');
    const reason = (await describeExecution(w, thing, 'ro-dl'))?.statusDetails?.detailsMap?.reason ?? '';
    assert.ok(reason.startsWith(`download dir: cannot create directory ${dir}: `), reason);
    assert.match(reason, /\((EACCES|EROFS|EPERM|ENOTDIR)\)$/);
  });

  test('disk full (ENOSPC): FAILED saying "disk full" and naming the file; nothing left behind', async () => {
    const thing = 'Cam_full';
    const config = await agentConfig(w, thing, { once: true });
    mkdirSync(config.downloadDir, { recursive: true });
    // Every write to /dev/full fails with ENOSPC: a real full disk, as the kernel reports it.
    symlinkSync('/dev/full', join(config.downloadDir, 'cv150_ubifs.img.part'));
    await createJob(w, thing, 'full-job', firmwareDoc(w, SIZE));
    const summary = await runAgent(config).done;
    assert.equal(summary.jobs[0]?.status, 'FAILED');
    const reason = (await describeExecution(w, thing, 'full-job'))?.statusDetails?.detailsMap?.reason ?? '';
    assert.match(reason, /cv150_ubifs\.img\.part: disk full, no space left on device \(ENOSPC\)/);
    assert.deepEqual(debris(config.downloadDir), []);
  });

  test('bad URLs and a 2,000-level document → REJECTED naming the field, no request to S3', async () => {
    const thing = 'Cam_badurl';
    const config = await agentConfig(w, thing, { once: true });
    const key = (k: string) => `https://s3.amazonaws.com/${w.bucket}/${k}`;
    const cases: [string, unknown, RegExp][] = [
      ['colons', firmwareDoc(w, SIZE, { url: '::::' }), /^firmware\.url: not a valid URL$/],
      [
        'pct-ff',
        firmwareDoc(w, SIZE, { url: key('fw%ff.img') }),
        /^firmware\.url: malformed percent-encoding/,
      ],
      ['nul', firmwareDoc(w, SIZE, { url: key('fw%00.img') }), /^firmware\.url: .*control characters$/],
      [
        'backslash',
        firmwareDoc(w, SIZE, { url: key('a/..\\..\\firmware/x.img') }),
        /^firmware\.url: .*"\.\."/,
      ],
      ['enc-bslash', firmwareDoc(w, SIZE, { url: key('a/..%5c..%5cx.img') }), /^firmware\.url: .*"\.\."/],
    ];
    for (const [id, doc] of cases) await createJob(w, thing, id, doc);
    const summary = await runAgent(config).done;
    assert.equal(summary.jobs.length, cases.length);
    for (const [id, , re] of cases) {
      const exec = await describeExecution(w, thing, id);
      assert.equal(exec?.status, 'REJECTED', id);
      assert.match(exec?.statusDetails?.detailsMap?.reason ?? '', re, id);
    }
    assert.equal(existsSync(config.downloadDir) ? debris(config.downloadDir).length : 0, 0);
  });
});

describe('device agent: the download survives a restart of the whole local stack', () => {
  let w: World | undefined;
  after(async () => {
    await w?.close();
  });
  test('stack closed mid-download and started again on the same ports → SUCCEEDED', async () => {
    const world = await startWorld();
    w = world;
    assert.ok(world.restart, 'startWorld can restart its stack');
    const big = await putFirmware(world, ORIGINAL_KEY, 2 * SIZE);
    const thing = 'Cam_restart';
    // A slow link in front of S3 so that the download is in flight when the stack goes away.
    const proxy = await cuttingProxy(world.stack.endpoints.s3.endpoint, 0, 0, 20);
    try {
      const config = await agentConfig(world, thing, {
        once: true,
        s3Endpoint: proxy.url,
        progressIntervalMs: 0,
      });
      await createJob(world, thing, 'restart-job', firmwareDoc(world, big.length, { sha256: sha256(big) }));
      let restarting: Promise<void> | undefined;
      const run = runAgent(config, (e) => {
        if (e.type === 'progress' && e.bytes > 0 && !restarting) restarting = world.restart?.(2000);
      });
      const summary = await run.done;
      await restarting;
      const job = summary.jobs[0];
      assert.equal(job?.status, 'SUCCEEDED', job?.reason);
      assert.ok((job?.requests ?? 0) >= 2, `requests ${job?.requests}`);
      assert.equal((await describeExecution(world, thing, 'restart-job'))?.status, 'SUCCEEDED');
      assert.deepEqual(debris(config.downloadDir), []);
    } finally {
      await proxy.close();
    }
  });
});

describe('device agent against a hostile Jobs service', () => {
  test('jobIds AWS never issues (70,000 chars, "#", "+"): refused locally, nothing published, still serving', async () => {
    const jobs = await startHostileJobs();
    try {
      const thing = 'Cam_hostile';
      const config = await jobs.config(thing, { once: false });
      const doc = {
        firmware: { version: '41811019', size: 10, region: 'us-west-2', url: 's3://b/k/fw.img' },
      };
      const exec = (jobId: string) => ({ jobId, status: 'IN_PROGRESS', jobDocument: doc, versionNumber: 1 });
      jobs.queue.push(exec('x'.repeat(70_000)), exec('bad#id'), exec('bad+id'), exec('good-job'));
      const run = runAgent(config);
      try {
        await waitFor(run.events, (ev) => ev.filter((e) => e.type === 'job-result').length >= 4, 15_000);
        assert.equal(run.handle.connectionState, 'connected');
        // The same bad job handed back again: nothing to do (no busy loop, no report).
        jobs.queue.push(exec('bad#id'));
        await jobs.notifyNext(thing, exec('bad#id'));
        await waitFor(run.events, (ev) => ev.filter((e) => e.type === 'idle').length >= 2, 10_000);
      } finally {
        await run.handle.stop();
      }
      const summary = await run.done;
      assert.deepEqual(
        summary.jobs.map((j) => j.status),
        ['REJECTED', 'REJECTED', 'REJECTED', 'REJECTED'],
      );
      assert.match(
        summary.jobs[0]?.reason ?? '',
        /^jobId: must match .*\(70000 characters\).*refused locally/,
      );
      const updates = jobs.requests.filter((r) => r.topic.endsWith('/update'));
      // Only the valid job was reported (REJECTED: not newer); nothing went to an invalid topic.
      assert.deepEqual(
        updates.map((r) => [r.topic, r.body.status]),
        [['good-job/update', 'REJECTED']],
      );
    } finally {
      await jobs.close();
    }
  });

  test('a document nested 2,000 levels deep (CreateJob would refuse it) → REJECTED, no crash', async () => {
    const jobs = await startHostileJobs();
    try {
      const thing = 'Cam_deep';
      const config = await jobs.config(thing, { once: true });
      let deep: Record<string, unknown> = { leaf: 1 };
      for (let i = 0; i < 2000; i++) deep = { x: deep };
      const jobDocument = {
        firmware: { version: '41811020', size: 10, region: 'us-west-2', url: 's3://b/k/fw.img' },
        meta: deep,
      };
      jobs.queue.push({ jobId: 'deep-job', status: 'IN_PROGRESS', jobDocument, versionNumber: 1 });
      const summary = await runAgent(config).done;
      assert.equal(summary.jobs[0]?.status, 'REJECTED');
      assert.match(summary.jobs[0]?.reason ?? '', /^meta\.x\.x: nested deeper than 32 levels$/);
      const update = jobs.requests.find((r) => r.topic === 'deep-job/update');
      assert.equal(update?.body.status, 'REJECTED');
    } finally {
      await jobs.close();
    }
  });
});
