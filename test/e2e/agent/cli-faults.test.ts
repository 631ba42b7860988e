import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { OTA_BIN, ota } from '../cli/helpers.ts';
import {
  agentFlags,
  createJob,
  describeExecution,
  firmwareDoc,
  putFirmware,
  startWorld,
  type World,
} from './helpers.ts';

/**
 * `ota agent --download-dir /proc/x` must neither spin at 100 % CPU nor ignore SIGTERM. The agent as a
 * user runs it: the job ends FAILED at once naming the path, and SIGTERM stops the process promptly.
 */
describe('ota agent --download-dir /proc/x', () => {
  let w: World;
  before(async () => {
    w = await startWorld();
    await putFirmware(w, 'firmware/proc_1/fw.img', 1000);
  });
  after(async () => {
    await w.close();
  });

  test('the job FAILs naming the path and cause; SIGTERM then stops the agent', async () => {
    const thing = 'Cam_proc_cli';
    await w.stack.ensureThing(thing);
    await createJob(w, thing, 'proc-cli', firmwareDoc(w, 1000, {}, 'firmware/proc_1/fw.img'));
    const child = spawn(
      process.execPath,
      [
        OTA_BIN,
        'agent',
        ...agentFlags(w, thing, {
          currentVersion: '1',
          downloadDir: '/proc/x',
          stateDir: join(w.dir, 'state-proc-cli'),
          logLevel: 'silent',
        }),
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
      },
    );
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    try {
      let status: string | undefined;
      for (let i = 0; i < 150 && status !== 'FAILED'; i++) {
        await new Promise((r) => setTimeout(r, 100));
        status = (await describeExecution(w, thing, 'proc-cli'))?.status;
      }
      assert.equal(status, 'FAILED', stderr);
      const exec = await describeExecution(w, thing, 'proc-cli');
      assert.match(
        exec?.statusDetails?.detailsMap?.reason ?? '',
        /^download dir: cannot create directory \/proc\/x: no such file or directory \(ENOENT\)$/,
      );
      child.kill('SIGTERM');
      const timeout = new Promise<'hung'>((r) => setTimeout(() => r('hung'), 5000).unref());
      const code = await Promise.race([exited, timeout]);
      assert.equal(code, 0, `exit ${code}; ${stderr}`);
      assert.match(stderr, /proc-cli FAILED/);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('ota agent with a corrupt state.json', () => {
  let w: World;
  before(async () => {
    w = await startWorld();
  });
  after(async () => {
    await w.close();
  });

  test('does not start: one line naming the file and the field, a non-zero exit, the file untouched', async () => {
    const thing = 'Cam_corrupt_state';
    await w.stack.ensureThing(thing);
    const stateDir = join(w.dir, 'state-corrupt');
    mkdirSync(stateDir, { recursive: true });
    const corrupt = JSON.stringify({ currentVersion: '41811020', pending: { bootAttempts: -3 } });
    writeFileSync(join(stateDir, 'state.json'), corrupt);
    const r = await ota([
      'agent',
      ...agentFlags(w, thing, { currentVersion: '1', stateDir, logLevel: 'silent' }),
      '--once',
    ]);
    assert.notEqual(r.code, 0);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0] ?? '',
      new RegExp(`${join(stateDir, 'state.json')}: pending\\.[a-zA-Z]+: .*fix or remove it`),
    );
    assert.equal(readFileSync(join(stateDir, 'state.json'), 'utf8'), corrupt);
  });
});
