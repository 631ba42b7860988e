import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { readState } from '../../../src/device/install/state.ts';
import { ORIGINAL_PROGRESS_KEYS } from '../../../src/device/progress/message.ts';
import {
  agentConfig,
  cancelJob,
  createJob,
  cuttingProxy,
  debris,
  describeExecution,
  firmwareDoc,
  ORIGINAL_KEY,
  operatorSubscriber,
  putFirmware,
  runAgent,
  sha256,
  startWorld,
  type World,
  waitFor,
  worldPerSuite,
} from './helpers.ts';

const SIZE = 2 * 1024 * 1024 + 17;

describe('device agent against the local AWS IoT stack', () => {
  let w: World;
  let firmware: Buffer;
  worldPerSuite(SIZE, (world, image) => {
    w = world;
    firmware = image;
  });

  test('happy path: SUCCEEDED, identical file, progress messages in the original format', async () => {
    const thing = 'RaspberryPi_2';
    const config = await agentConfig(w, thing, { once: true, mode: 'publish' });
    const sub = await operatorSubscriber(w, config.topic);
    try {
      await createJob(w, thing, 'rasp-ota-test', firmwareDoc(w, SIZE, { sha256: sha256(firmware) }));
      const { done, out } = runAgent(config);
      const summary = await done;
      assert.equal(summary.jobs.length, 1);
      const job = summary.jobs[0]!;
      assert.equal(job.status, 'SUCCEEDED', job.reason);
      assert.equal(job.sourceKind, 's3');
      const file = join(config.downloadDir, 'cv150_ubifs.img');
      assert.equal(sha256(readFileSync(file)), sha256(firmware));
      assert.equal(existsSync(`${file}.part`), false);
      assert.ok(job.downloadStartedAt! <= job.renamedAt!);

      const exec = await describeExecution(w, thing, 'rasp-ota-test');
      assert.equal(exec?.status, 'SUCCEEDED');
      assert.equal(exec?.statusDetails?.detailsMap?.version, '41811020');
      assert.equal(exec?.statusDetails?.detailsMap?.bytes, String(SIZE));
      assert.equal(exec?.statusDetails?.detailsMap?.sha256, sha256(firmware));
      assert.match(exec?.statusDetails?.detailsMap?.seconds ?? '', /^\d+\.\d{3}$/);

      // the operator's subscriber sees every progress message
      await new Promise((r) => setTimeout(r, 200));
      assert.ok(sub.messages.length >= 2, `got ${sub.messages.length} messages`);
      let last = -1;
      for (const raw of sub.messages) {
        const m = JSON.parse(raw) as Record<string, unknown>;
        assert.deepEqual(Object.keys(m).slice(0, 8), [...ORIGINAL_PROGRESS_KEYS]);
        assert.match(
          raw,
          /^\{"camera_id": "RaspberryPi_2", "OTA_start_time": "\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "Download time": "\d+ hour \d+ min \d+ second", "Firmware version": "CV150-C3_0.6.6", "Firmware filename": "cv150_ubifs.img", "Progress": "\d+\.\d+ %", "Total size": 2097169, "Downloading": \d+/,
        );
        assert.ok((m.Downloading as number) >= last, 'Downloading is monotonic');
        last = m.Downloading as number;
      }
      const final = JSON.parse(sub.messages.at(-1)!) as Record<string, unknown>;
      assert.equal(final.Progress, '100.0 %');
      assert.equal(final.Downloading, SIZE);
      assert.equal(JSON.parse(sub.messages[0]!).Progress, '0.0 %');

      const text = out.text();
      assert.match(
        text,
        /===== \[Job Info\] =====\nJob name: rasp-ota-test\nStatus: IN_PROGRESS\nSize: 2097169\nDocument:\n\{'firmware': \{'version': '41811020'/,
      );
      assert.match(
        text,
        /===== \[Required Info for OTA\] =====\nFROM----->>\nBucket: dev-korea-job\nKey: firmware\/CV150-C3_0.6.6\/cv150_ubifs.img\nFile: cv150_ubifs.img\n\nTO----->>\nLocal Directory: .*\/\n=====/,
      );
      assert.match(
        text,
        /===== \[Version Information\] =====\nNew Version: 41811020\nCurrent Version: 41811019\n=====/,
      );
      assert.match(text, /Published topic CarVi\/test\/firmware\/RaspberryPi_2: \{"camera_id"/);
      assert.equal((await readState(config.stateDir)).currentVersion, '41811020');
    } finally {
      await sub.close();
    }
  });

  test('version not newer → REJECTED with both versions, no file', async () => {
    const thing = 'Cam_old';
    const config = await agentConfig(w, thing, { once: true, currentVersion: '41811020' });
    await createJob(w, thing, 'same-version', firmwareDoc(w, SIZE));
    const summary = await runAgent(config).done;
    assert.equal(summary.jobs[0]?.status, 'REJECTED');
    const exec = await describeExecution(w, thing, 'same-version');
    assert.equal(exec?.status, 'REJECTED');
    assert.match(
      exec?.statusDetails?.detailsMap?.reason ?? '',
      /41811020 is not newer than the current version 41811020/,
    );
    assert.equal(existsSync(join(config.downloadDir, 'cv150_ubifs.img')), false);
  });

  test('bad documents → each REJECTED with a reason naming the field; the agent keeps running', async () => {
    const thing = 'Cam_bad';
    const config = await agentConfig(w, thing, { once: false });
    const bad: [string, unknown, RegExp][] = [
      ['bad-size', firmwareDoc(w, -1), /firmware\.size/],
      ['bad-version', firmwareDoc(w, SIZE, { version: 'banana' }), /firmware\.version/],
      [
        'no-url',
        { firmware: { version: '41811021', size: 5, region: 'us-west-2' } },
        /firmware\.url: required/,
      ],
      ['bad-scheme', firmwareDoc(w, SIZE, { url: 'ftp://example.com/fw.img' }), /firmware\.url/],
      [
        'dotdot',
        firmwareDoc(w, SIZE, { url: `https://s3.amazonaws.com/${w.bucket}/a/../../etc/passwd` }),
        /firmware\.url/,
      ],
      [
        'absolute-key',
        firmwareDoc(w, SIZE, { url: `https://s3.amazonaws.com/${w.bucket}//etc/passwd` }),
        /firmware\.url/,
      ],
      ['no-firmware', { hello: 1 }, /firmware: required/],
    ];
    const run = runAgent(config);
    try {
      await waitFor(run.events, (ev) => ev.some((e) => e.type === 'idle'));
      for (const [id, doc] of bad) await createJob(w, thing, id, doc);
      await waitFor(run.events, (ev) => ev.filter((e) => e.type === 'job-result').length >= bad.length);
      for (const [id, , re] of bad) {
        const exec = await describeExecution(w, thing, id);
        assert.equal(exec?.status, 'REJECTED', id);
        assert.match(exec?.statusDetails?.detailsMap?.reason ?? '', re, id);
      }
      assert.equal(run.handle.connectionState, 'connected');
    } finally {
      await run.handle.stop();
    }
    const summary = await run.done;
    assert.equal(summary.jobsProcessed, bad.length);
  });

  test('size mismatch and sha256 mismatch → FAILED, no file left', async () => {
    const thing = 'Cam_mismatch';
    const config = await agentConfig(w, thing, { once: true });
    await createJob(w, thing, 'wrong-size', firmwareDoc(w, SIZE + 1));
    await createJob(
      w,
      thing,
      'wrong-sha',
      firmwareDoc(w, SIZE, { version: '41811021', sha256: 'ab'.repeat(32) }),
    );
    const summary = await runAgent(config).done;
    assert.deepEqual(
      summary.jobs.map((j) => [j.jobId, j.status]),
      [
        ['wrong-size', 'FAILED'],
        ['wrong-sha', 'FAILED'],
      ],
    );
    const e1 = await describeExecution(w, thing, 'wrong-size');
    assert.match(e1?.statusDetails?.detailsMap?.reason ?? '', /size/);
    const e2 = await describeExecution(w, thing, 'wrong-sha');
    assert.match(e2?.statusDetails?.detailsMap?.reason ?? '', /sha256/);
    assert.equal(existsSync(join(config.downloadDir, 'cv150_ubifs.img')), false);
    assert.equal(existsSync(join(config.downloadDir, 'cv150_ubifs.img.part')), false);
  });

  test('a proxy that cuts the S3 stream → resumed with Range, SUCCEEDED', async () => {
    const thing = 'Cam_cut';
    const proxy = await cuttingProxy(w.stack.endpoints.s3.endpoint, 600_000, 2);
    try {
      const config = await agentConfig(w, thing, { once: true, s3Endpoint: proxy.url });
      await createJob(w, thing, 'cut-job', firmwareDoc(w, SIZE, { sha256: sha256(firmware) }));
      const summary = await runAgent(config).done;
      const job = summary.jobs[0]!;
      assert.equal(job.status, 'SUCCEEDED', job.reason);
      assert.ok((job.requests ?? 0) >= 3, `requests ${job.requests}`);
      const ranged = proxy.heads.filter((h) => /^range: bytes=\d+-$/im.test(h));
      assert.ok(ranged.length >= 2, proxy.heads.join('\n---\n'));
      assert.equal(sha256(readFileSync(join(config.downloadDir, 'cv150_ubifs.img'))), sha256(firmware));
      assert.equal((await describeExecution(w, thing, 'cut-job'))?.status, 'SUCCEEDED');
    } finally {
      await proxy.close();
    }
  });

  test('presigned URL placeholder → plain HTTP GET of the presigned URL, SUCCEEDED', async () => {
    const thing = 'Cam_presigned';
    const config = await agentConfig(w, thing, { once: true });
    const placeholder = `\${aws:iot:s3-presigned-url:https://s3.us-west-2.amazonaws.com/${w.bucket}/${ORIGINAL_KEY}}`;
    await createJob(w, thing, 'presigned-job', firmwareDoc(w, SIZE, { url: placeholder }), {
      presignedUrlConfig: { expiresInSec: 600 },
    });
    const summary = await runAgent(config).done;
    const job = summary.jobs[0]!;
    assert.equal(job.status, 'SUCCEEDED', job.reason);
    assert.equal(job.sourceKind, 'http');
    assert.equal(sha256(readFileSync(join(config.downloadDir, 'cv150_ubifs.img'))), sha256(firmware));
  });

  /**
   * A job cancelled with force answers the device's describe with TerminalStateReached. The agent asks
   * when notify-next moves on, and that answer must stop the download at once: not at the next
   * statusDetails update (an hour away here), nor at the end of the image.
   */
  test('a job cancelled (force) mid-download → the download stops at once, no .part or sidecar left, the next job runs', async () => {
    const thing = 'Cam_cancel';
    // A slow link: the image takes seconds, the cancel reaches the agent in milliseconds.
    const proxy = await cuttingProxy(w.stack.endpoints.s3.endpoint, 0, 0, 40);
    try {
      const config = await agentConfig(w, thing, {
        once: true,
        s3Endpoint: proxy.url,
        progressIntervalMs: 0,
        statusDetailsIntervalMs: 3_600_000,
      });
      await createJob(w, thing, 'cancel-me', firmwareDoc(w, SIZE));
      await createJob(w, thing, 'after-cancel', firmwareDoc(w, SIZE, { version: '41811021' }));
      let cancelled = false;
      const run = runAgent(config, (e) => {
        if (e.type === 'progress' && e.jobId === 'cancel-me' && e.bytes > 0 && !cancelled) {
          cancelled = true;
          void cancelJob(w, 'cancel-me');
        }
      });
      const summary = await run.done;
      assert.deepEqual(
        summary.jobs.map((j) => [j.jobId, j.status]),
        [
          ['cancel-me', 'CANCELED'],
          ['after-cancel', 'SUCCEEDED'],
        ],
      );
      assert.match(summary.jobs[0]?.reason ?? '', /TerminalStateReached/);
      const bytes = run.events.flatMap((e) =>
        e.type === 'progress' && e.jobId === 'cancel-me' ? [e.bytes] : [],
      );
      assert.ok(Math.max(...bytes) < SIZE, `the download went on to ${Math.max(...bytes)} of ${SIZE} bytes`);
      assert.equal((await describeExecution(w, thing, 'cancel-me'))?.status, 'CANCELED');
      // a forced cancel leaves neither cv150_ubifs.img.part nor its sidecar behind
      assert.deepEqual(debris(config.downloadDir), []);
    } finally {
      await proxy.close();
    }
  });

  test('roleAlias: S3 credentials from the IoT credentials provider on the mTLS port', async () => {
    const thing = 'Cam_role';
    const config = await agentConfig(w, thing, { once: true, roleAlias: 'ota-firmware-download' });
    assert.equal(
      config.credentialsEndpoint,
      `https://${w.stack.endpoints.mqtt.host}:${w.stack.endpoints.mqtt.port}`,
    );
    await createJob(w, thing, 'role-job', firmwareDoc(w, SIZE, { sha256: sha256(firmware) }));
    const summary = await runAgent(config).done;
    assert.equal(summary.jobs[0]?.status, 'SUCCEEDED', summary.jobs[0]?.reason);
    assert.equal(summary.jobs[0]?.sourceKind, 's3');
  });

  test('two jobs queued while idle → processed in order through notify-next', async () => {
    const thing = 'Cam_queue';
    const key2 = 'firmware/CV150-C3_0.6.7/cv150_ubifs.img';
    await putFirmware(w, key2, 1000);
    const config = await agentConfig(w, thing, { once: false, mode: 'both' });
    const run = runAgent(config);
    try {
      await waitFor(run.events, (ev) => ev.some((e) => e.type === 'idle'));
      await createJob(w, thing, 'job-a', firmwareDoc(w, SIZE));
      await createJob(w, thing, 'job-b', firmwareDoc(w, 1000, { version: '41811021' }, key2));
      await waitFor(run.events, (ev) => ev.filter((e) => e.type === 'job-result').length >= 2);
    } finally {
      await run.handle.stop();
    }
    const summary = await run.done;
    assert.deepEqual(
      summary.jobs.map((j) => [j.jobId, j.status, j.version]),
      [
        ['job-a', 'SUCCEEDED', '41811020'],
        ['job-b', 'SUCCEEDED', '41811021'],
      ],
    );
    assert.equal(summary.currentVersion, '41811021');
    // mode both: the agent also prints what it receives on its progress topic, as the original did
    assert.match(run.out.text(), /Received a new message:\nb'\{"camera_id": "Cam_queue"/);
    assert.match(run.out.text(), /from topic:\nCarVi\/test\/firmware\/Cam_queue\n=====/);
  });
});

describe('device agent: resume across a restart', () => {
  let w: World | undefined;
  after(async () => {
    await w?.close();
  });
  test('stopped mid-download → execution stays IN_PROGRESS, .part kept; a new agent resumes with Range', async () => {
    const world = await startWorld();
    w = world;
    const big = await putFirmware(world, 'firmware/big_1.0/big.img', 24 * 1024 * 1024);
    const thing = 'Cam_reboot';
    const config = await agentConfig(world, thing, { once: true, progressIntervalMs: 0 });
    await createJob(
      w,
      thing,
      'big-job',
      firmwareDoc(world, big.length, { sha256: sha256(big) }, 'firmware/big_1.0/big.img'),
    );
    let stopRequested = false;
    const first = runAgent(config, (e) => {
      if (e.type === 'progress' && e.bytes > 0 && !stopRequested) {
        stopRequested = true;
        void first.handle.stop();
      }
    });
    const s1 = await first.done;
    assert.equal(s1.jobs[0]?.status, 'INTERRUPTED');
    assert.equal((await describeExecution(world, thing, 'big-job'))?.status, 'IN_PROGRESS');
    const part = join(config.downloadDir, 'big.img.part');
    assert.ok(existsSync(part));
    assert.equal(existsSync(join(config.downloadDir, 'big.img')), false);
    assert.equal((await readState(config.stateDir)).inFlight?.jobId, 'big-job');

    const s2 = await runAgent(config).done;
    const job = s2.jobs[0]!;
    assert.equal(job.status, 'SUCCEEDED', job.reason);
    assert.ok((job.resumedFrom ?? 0) > 0, 'resumed from the .part');
    assert.equal(sha256(readFileSync(join(config.downloadDir, 'big.img'))), sha256(big));
    assert.equal((await describeExecution(world, thing, 'big-job'))?.status, 'SUCCEEDED');
  });
});
