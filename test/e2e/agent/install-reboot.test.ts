import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { readState } from '../../../src/device/install/state.ts';
import { ota } from '../cli/helpers.ts';
import {
  agentFlags,
  createJob,
  debris,
  describeExecution,
  firmwareDoc,
  sha256,
  startWorld,
  type World,
} from './helpers.ts';

/**
 * On the local stack, `ota agent` (the CLI, a real process) with --install-cmd,
 * --reboot-cmd (which stops the agent, as a reboot would), --health-cmd and --rollback-cmd, started again
 * after the "reboot", ends SUCCEEDED on a healthy image and FAILED "rolled back" on an unhealthy one;
 * after the rollback the state still shows the old version. Then the boot-loop guard.
 */
describe('ota agent: install → reboot → self-test → commit, or roll back', () => {
  let w: World;
  let dev: string;
  const thing = 'Cam_ab';
  const image = (marker: string) => Buffer.concat([Buffer.from(marker), Buffer.alloc(200_000, 7)]);
  const put = async (key: string, body: Buffer) =>
    w.s3.send(new PutObjectCommand({ Bucket: w.bucket, Key: key, Body: body }));

  before(async () => {
    w = await startWorld();
    await w.stack.ensureThing(thing);
    dev = join(w.dir, 'device');
    mkdirSync(dev, { recursive: true });
  });
  after(async () => {
    await w.close();
  });

  /** The agent as a device runs it; `extra` flags after the common ones. */
  const agent = (extra: string[] = []) =>
    ota(
      [
        'agent',
        ...agentFlags(w, thing, {
          currentVersion: '41811019',
          downloadDir: join(w.dir, 'dl'),
          stateDir: join(w.dir, 'state'),
          logLevel: 'warn',
        }),
        // The "device": the install writes the image to one place, the rollback puts the old one back.
        '--install-cmd',
        `cp "$OTA_FILE" ${dev}/slot.new && echo "$OTA_PREVIOUS_VERSION>$OTA_VERSION $OTA_JOB_ID $OTA_SHA256" >> ${dev}/installs`,
        '--reboot-cmd',
        `echo "reboot $OTA_VERSION" >> ${dev}/reboots; kill -TERM $OTA_AGENT_PID`,
        '--health-cmd',
        `head -c 7 ${dev}/slot.new | grep -q HEALTHY || { echo "self-test: the new image does not boot" >&2; exit 3; }`,
        '--rollback-cmd',
        `rm -f ${dev}/slot.new && echo "rollback to $OTA_PREVIOUS_VERSION" >> ${dev}/rollbacks`,
        ...extra,
      ],
      { timeoutMs: 60_000 },
    );

  test('a healthy image: the agent reboots, resumes at the self-test, commits → SUCCEEDED', async () => {
    const body = image('HEALTHY');
    await put('firmware/good_1/fw.img', body);
    await createJob(
      w,
      thing,
      'ab-good',
      firmwareDoc(w, body.length, { sha256: sha256(body) }, 'firmware/good_1/fw.img'),
    );
    // 1: download, install, persist the pending commit, reboot (the reboot command stops the agent)
    const first = await agent();
    assert.match(first.stderr, /ab-good REBOOTING/);
    assert.match(first.stderr, /the reboot command ran; the job finishes when the agent starts again/);
    const during = await describeExecution(w, thing, 'ab-good');
    assert.equal(during?.status, 'IN_PROGRESS');
    assert.equal(during?.statusDetails?.detailsMap?.step, 'rebooting');
    const pending = (await readState(join(w.dir, 'state'))).pending;
    assert.equal(pending?.jobId, 'ab-good');
    assert.equal(pending?.toVersion, '41811020');
    assert.equal(pending?.bootAttempts, 0);
    assert.match(readFileSync(join(dev, 'installs'), 'utf8'), /^41811019>41811020 ab-good [0-9a-f]{64}\n$/);

    // 2: the device is back: the same agent, started again, runs the self-test and commits
    const second = await agent(['--once']);
    assert.equal(second.code, 0, second.stderr);
    const exec = await describeExecution(w, thing, 'ab-good');
    assert.equal(exec?.status, 'SUCCEEDED', exec?.statusDetails?.detailsMap?.reason);
    assert.equal(exec?.statusDetails?.detailsMap?.bootAttempts, '1');
    const state = await readState(join(w.dir, 'state'));
    assert.equal(state.currentVersion, '41811020');
    assert.equal(state.pending, undefined);
    assert.equal(existsSync(join(dev, 'rollbacks')), false);
    assert.deepEqual(debris(join(w.dir, 'dl')), []);
  });

  test('an unhealthy image: the self-test fails after the reboot → rolled back, FAILED, old version kept', async () => {
    const body = image('BROKEN!');
    await put('firmware/bad_1/fw.img', body);
    await createJob(
      w,
      thing,
      'ab-bad',
      firmwareDoc(w, body.length, { version: '41811021', sha256: sha256(body) }, 'firmware/bad_1/fw.img'),
    );
    const first = await agent();
    assert.match(first.stderr, /ab-bad REBOOTING/);
    const second = await agent(['--once']);
    assert.equal(second.code, 1, 'a FAILED job makes --once exit 1');
    const exec = await describeExecution(w, thing, 'ab-bad');
    assert.equal(exec?.status, 'FAILED');
    assert.equal(
      exec?.statusDetails?.detailsMap?.reason,
      'rolled back to 41811020: self-test failed: health command exited with code 3: self-test: the new image does not boot',
    );
    assert.equal(exec?.statusDetails?.detailsMap?.rolledBack, '41811020');
    assert.equal(readFileSync(join(dev, 'rollbacks'), 'utf8'), 'rollback to 41811020\n');
    const state = await readState(join(w.dir, 'state'));
    assert.equal(state.currentVersion, '41811020');
    assert.equal(state.pending, undefined);
    assert.equal(existsSync(join(dev, 'slot.new')), false);
    // the failed image is not kept: only committed images stay in the download dir
    assert.deepEqual(debris(join(w.dir, 'dl')), []);
  });

  test('an image that keeps crashing the device: after --max-boot-attempts restarts → rolled back', async () => {
    const body = image('HEALTHY');
    await put('firmware/crash_1/fw.img', body);
    await createJob(
      w,
      thing,
      'ab-crash',
      firmwareDoc(w, body.length, { version: '41811022', sha256: sha256(body) }, 'firmware/crash_1/fw.img'),
    );
    // The self-test takes the whole device down (the agent dies with it, as in a kernel panic).
    const crashing = ['--max-boot-attempts', '1', '--health-cmd', 'kill -KILL $OTA_AGENT_PID; sleep 10'];
    const first = await agent(crashing);
    assert.match(first.stderr, /ab-crash REBOOTING/);
    const crashed = await agent([...crashing, '--once']);
    assert.equal(crashed.code, null, 'killed by the self-test');
    assert.equal((await readState(join(w.dir, 'state'))).pending?.bootAttempts, 1);
    // the second start is one more than --max-boot-attempts 1 allows
    const last = await agent([...crashing, '--once']);
    assert.equal(last.code, 1);
    const exec = await describeExecution(w, thing, 'ab-crash');
    assert.equal(exec?.status, 'FAILED');
    assert.equal(
      exec?.statusDetails?.detailsMap?.reason,
      'rolled back to 41811020: no commit after 1 boot attempt (--max-boot-attempts 1)',
    );
    const state = await readState(join(w.dir, 'state'));
    assert.equal(state.currentVersion, '41811020');
    assert.equal(state.pending, undefined);
  });

  test('starts without network after the reboot are not boot attempts: the self-test runs once online', async () => {
    const body = image('HEALTHY');
    await put('firmware/offline_1/fw.img', body);
    await createJob(
      w,
      thing,
      'ab-offline',
      firmwareDoc(w, body.length, { version: '41811023', sha256: sha256(body) }, 'firmware/offline_1/fw.img'),
    );
    const guard = ['--max-boot-attempts', '1'];
    const first = await agent(guard);
    assert.match(first.stderr, /ab-offline REBOOTING/);
    // Three starts in a tunnel: nothing answers on the MQTT port (port 1 on loopback refuses at once).
    for (let i = 0; i < 3; i++) {
      const offline = await agent([...guard, '--once', '--port', '1', '--connect-timeout', '1']);
      assert.notEqual(offline.code, 0);
    }
    assert.equal((await readState(join(w.dir, 'state'))).pending?.bootAttempts, 0);
    const online = await agent([...guard, '--once']);
    assert.equal(online.code, 0, online.stderr);
    const exec = await describeExecution(w, thing, 'ab-offline');
    assert.equal(exec?.status, 'SUCCEEDED', exec?.statusDetails?.detailsMap?.reason);
    assert.equal(exec?.statusDetails?.detailsMap?.bootAttempts, '1');
    assert.equal((await readState(join(w.dir, 'state'))).currentVersion, '41811023');
  });
});
