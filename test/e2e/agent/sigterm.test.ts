import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readState } from '../../../src/device/install/state.ts';
import { type OtaProcess, ota, spawnOta } from '../cli/helpers.ts';
import {
  agentFlags,
  createJob,
  cuttingProxy,
  describeExecution,
  firmwareDoc,
  putFirmware,
  sha256,
  startWorld,
  type World,
} from './helpers.ts';

/**
 * `ota agent` as a service is stopped with SIGTERM (systemd's KillSignal). It stops
 * at a safe point: the job stays IN_PROGRESS and resumable, and the agent that starts next finishes it.
 * Real processes, the real CLI.
 */

type AgentProcess = OtaProcess;
const spawnAgent = (args: string[]) => spawnOta(['agent', ...args]);

async function until(what: string, pred: () => boolean, p: AgentProcess, timeoutMs = 30_000) {
  const t0 = Date.now();
  while (!pred()) {
    if (p.child.exitCode !== null) throw new Error(`agent exited before ${what}:\n${p.stderr()}`);
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}:\n${p.stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Sends SIGTERM and waits for the exit (a hang is a failure, not a timing assertion). */
async function terminate(p: AgentProcess): Promise<number | null> {
  p.child.kill('SIGTERM');
  const hung = new Promise<'hung'>((r) => setTimeout(() => r('hung'), 20_000).unref());
  const code = await Promise.race([p.exited, hung]);
  if (code === 'hung') {
    p.child.kill('SIGKILL');
    throw new Error(`the agent did not stop after SIGTERM:\n${p.stderr()}`);
  }
  return code;
}

describe('ota agent and SIGTERM', () => {
  let w: World;
  before(async () => {
    w = await startWorld();
  });
  after(async () => {
    await w.close();
  });

  test('mid-download: exits 0, the job stays IN_PROGRESS with its .part; a restarted agent resumes it → SUCCEEDED', async () => {
    const thing = 'Cam_term';
    const key = 'firmware/term_1/term.img';
    const body = await putFirmware(w, key, 8 * 1024 * 1024);
    await w.stack.ensureThing(thing);
    await createJob(w, thing, 'term-job', firmwareDoc(w, body.length, { sha256: sha256(body) }, key));
    const dl = join(w.dir, 'dl-term');
    const common = agentFlags(w, thing, { currentVersion: '41811019' });
    const slow = await cuttingProxy(w.stack.endpoints.s3.endpoint, 0, 0, 40);
    const ranged = await cuttingProxy(w.stack.endpoints.s3.endpoint, 0, 0, 0);
    try {
      // Long-running (no --once), as under systemd; --mode publish prints each progress message.
      const first = spawnAgent([
        ...common,
        '--download-dir',
        dl,
        '--s3-endpoint',
        slow.url,
        '--progress-interval',
        '0',
        '--mode',
        'publish',
      ]);
      try {
        await until('download progress', () => /"Downloading": [1-9]/.test(first.stdout()), first);
        assert.equal(await terminate(first), 0, first.stderr());
      } finally {
        first.child.kill('SIGKILL');
      }
      assert.match(first.stderr(), /ota agent: stopped; term-job stays IN_PROGRESS and resumes/);
      assert.equal((await describeExecution(w, thing, 'term-job'))?.status, 'IN_PROGRESS');
      assert.ok(existsSync(join(dl, 'term.img.part')), 'the .part is kept');
      assert.ok(existsSync(join(dl, 'term.img.part.json')), 'and its sidecar');
      assert.equal(existsSync(join(dl, 'term.img')), false);
      assert.equal((await readState(join(dl, '.ota-state'))).inFlight?.jobId, 'term-job');

      const second = await ota(
        ['agent', ...common, '--download-dir', dl, '--s3-endpoint', ranged.url, '--once'],
        {
          timeoutMs: 60_000,
        },
      );
      assert.equal(second.code, 0, second.stderr);
      assert.match(second.stderr, /term-job SUCCEEDED; current version 41811020/);
      assert.equal(sha256(readFileSync(join(dl, 'term.img'))), sha256(body));
      assert.equal((await describeExecution(w, thing, 'term-job'))?.status, 'SUCCEEDED');
      assert.ok(
        ranged.heads.some((h) => /^range: bytes=[1-9]\d*-$/im.test(h)),
        `resumed with a Range request: ${ranged.heads.join('\n---\n')}`,
      );
    } finally {
      await slow.close();
      await ranged.close();
    }
  });

  /**
   * The choice (docs/agent.md): a stop during the install stops the install command too (SIGTERM to its
   * process group, as systemd's KillMode=control-group would anyway). The job stays IN_PROGRESS with no
   * pending-commit record, so the next start installs again from the top: installs must be repeatable.
   */
  test('during the install command: the command is stopped, the job stays IN_PROGRESS; the next start installs again → SUCCEEDED', async () => {
    const thing = 'Cam_term_install';
    const key = 'firmware/term_2/fw.img';
    const body = await putFirmware(w, key, 100_000);
    await w.stack.ensureThing(thing);
    await createJob(w, thing, 'install-term', firmwareDoc(w, body.length, { sha256: sha256(body) }, key));
    const dl = join(w.dir, 'dl-term-install');
    const marks = join(w.dir, 'install-marks');
    const common = agentFlags(w, thing, { currentVersion: '41811019', downloadDir: dl });
    const first = spawnAgent([
      ...common,
      '--install-cmd',
      `echo "started $OTA_JOB_ID" >> ${marks}; sleep 30; echo finished >> ${marks}`,
    ]);
    try {
      // The line, not the file: `>>` creates the file before echo writes to it.
      await until(
        'the install command',
        () => existsSync(marks) && readFileSync(marks, 'utf8').endsWith('\n'),
        first,
      );
      assert.equal(await terminate(first), 0, first.stderr());
    } finally {
      first.child.kill('SIGKILL');
    }
    assert.equal(readFileSync(marks, 'utf8'), 'started install-term\n', 'the install command was stopped');
    assert.match(first.stderr(), /ota agent: stopped; install-term stays IN_PROGRESS/);
    assert.equal((await describeExecution(w, thing, 'install-term'))?.status, 'IN_PROGRESS');
    const state = await readState(join(dl, '.ota-state'));
    assert.equal(state.pending, undefined, 'no pending-commit record: the install did not complete');
    assert.equal(state.currentVersion ?? '41811019', '41811019');

    const install = `echo "again $OTA_VERSION" >> ${marks}`;
    const second = await ota(['agent', ...common, '--once', '--install-cmd', install], { timeoutMs: 60_000 });
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /install-term SUCCEEDED; current version 41811020/);
    assert.equal(readFileSync(marks, 'utf8'), 'started install-term\nagain 41811020\n');
    assert.equal((await describeExecution(w, thing, 'install-term'))?.status, 'SUCCEEDED');
  });
});
