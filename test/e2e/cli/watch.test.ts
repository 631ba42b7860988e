import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { stripVTControlCharacters } from 'node:util';

/** Cursor moves and line clears (CSI … A/B/C/D/G/H/J/K) start a new piece of the screen: split there. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching terminal escape sequences
const CURSOR_MOVES = /\x1b\[[0-9;]*[ABCDGHJK]/g;

import { PutObjectCommand } from '@aws-sdk/client-s3';
import { type LocalStack, startLocalStack } from '../../../src/cloud/stack.ts';
import { resolveAgentConfig, startAgent } from '../../../src/device/index.ts';
import { iotClientFor, s3ClientFor } from '../../../src/operator/clients.ts';
import { createJob } from '../../../src/operator/jobs.ts';
import { collectOutput, OTA_BIN, quietEnv } from './helpers.ts';

/** `ota watch` as an operator runs it, against a device doing a real OTA on the local stack. */
let dir: string;
let stack: LocalStack;
const KEY = 'firmware/CV150-C3_0.6.6/cv150_ubifs.img';
const SIZE = 2 * 1024 * 1024;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ota-watch-'));
  stack = await startLocalStack({
    dataDir: join(dir, 'data'),
    mqttPort: 0,
    wsPort: 0,
    iotPort: 0,
    s3Port: 0,
  });
  const e = stack.endpoints;
  await s3ClientFor({ kind: 'local', endpoints: e }).send(
    new PutObjectCommand({ Bucket: e.s3.bucket, Key: KEY, Body: Buffer.alloc(SIZE, 7) }),
  );
});
after(async () => {
  await stack.close();
  await rm(dir, { recursive: true, force: true });
});

function startWatch(args: string[], opts: { terminalColumns?: number } = {}) {
  const argv = [OTA_BIN, 'watch', '--data-dir', stack.dataDir, '--count', '1', ...args];
  // On a terminal: util-linux `script` gives the command a pseudo-terminal, `stty` sets its width.
  const [cmd, cmdArgs] = opts.terminalColumns
    ? [
        'script',
        [
          '-qefc',
          `stty cols ${opts.terminalColumns} rows 24; exec ${[process.execPath, ...argv].map((a) => `'${a}'`).join(' ')}`,
          '/dev/null',
        ],
      ]
    : [process.execPath, argv];
  const child = spawn(cmd as string, cmdArgs as string[], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: quietEnv(),
  });
  const { stdout, stderr } = collectOutput(child);
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const ready = (async () => {
    const deadline = Date.now() + 20_000;
    while (!stderr().includes('watching') && !stdout().includes('watching')) {
      if (child.exitCode !== null || Date.now() > deadline)
        throw new Error(`watch did not start: ${stderr()}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  return { child, ready, exited, out: stdout };
}

async function runOta(jobId: string, downloadDir: string): Promise<void> {
  const e = stack.endpoints;
  await createJob(iotClientFor({ kind: 'local', endpoints: e }), {
    jobId,
    things: ['RaspberryPi_2'],
    document: JSON.stringify({
      firmware: {
        version: `4181102${jobId.length}`,
        size: SIZE,
        region: 'us-west-2',
        url: `https://s3.amazonaws.com/${e.s3.bucket}/${KEY}`,
      },
    }),
  });
  const config = resolveAgentConfig({
    flags: {
      local: stack.dataDir,
      thingName: 'RaspberryPi_2',
      currentVersion: '41811019',
      downloadDir,
      once: true,
      progressIntervalMs: 50,
    },
    env: {},
  });
  const summary = await startAgent({ config }).done;
  assert.equal(summary.jobs[0]?.status, 'SUCCEEDED');
}

test('ota watch --json prints the raw messages as NDJSON and exits after the device finished', async () => {
  const watch = startWatch(['--json']);
  try {
    await watch.ready;
    await runOta('watch-json', join(dir, 'dl1'));
    assert.equal(await watch.exited, 0);
    const lines = watch
      .out()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { topic: string; message: Record<string, unknown> });
    assert.ok(lines.length >= 3);
    assert.ok(lines.every((l) => l.topic === 'CarVi/test/firmware/RaspberryPi_2'));
    assert.equal(lines[0]?.message.Progress, '0.0 %');
    assert.ok(lines.some((l) => l.message.Progress === '100.0 %'));
    assert.equal(lines.at(-1)?.message.state, 'SUCCEEDED');
  } finally {
    watch.child.kill();
  }
});

test('ota watch draws one line per device with %, bytes, rate, ETA and the final state', async () => {
  const watch = startWatch([]);
  try {
    await watch.ready;
    await runOta('watch-bars', join(dir, 'dl2'));
    assert.equal(await watch.exited, 0);
    // Not a terminal here, so the view prints a line per 10 % step and per state change.
    assert.match(watch.out(), /RaspberryPi_2\s+0\.00% 0 B\/2\.0 MiB .* DOWNLOADING/);
    assert.match(watch.out(), /RaspberryPi_2\s+100\.00% 2\.0\/2\.0 MiB [\d.]+ \w+\/s ETA \d+s SUCCEEDED/);
  } finally {
    watch.child.kill();
  }
});

const hasScript = spawnSync('script', ['--version']).status === 0;

test('on an 80-column terminal the bar line fits and ends with the rate, the ETA and the final state', {
  skip: !hasScript && 'util-linux `script` is not installed',
}, async () => {
  const watch = startWatch([], { terminalColumns: 80 });
  try {
    await watch.ready;
    await runOta('watch-tty', join(dir, 'dl3'));
    assert.equal(await watch.exited, 0);
    const screen = stripVTControlCharacters(watch.out().replace(CURSOR_MOVES, '\n'))
      .split(/[\r\n]/)
      .filter((l) => l.trim() !== '');
    for (const l of screen) assert.ok(l.length <= 80, `${l.length} columns: ${l}`);
    const bars = screen.filter((l) => l.startsWith('RaspberryPi_2'));
    assert.ok(bars.length > 0, screen.join('\n'));
    assert.match(bars.at(-1) ?? '', /\|█+\| 100\.00% 2\.0\/2\.0 MiB [\d.]+ \w+\/s ETA \d+s SUCCEEDED$/);
    assert.ok(
      bars.every((l) => !/ETA (NULL|INF|\d+ )/.test(l)),
      bars.join('\n'),
    );
  } finally {
    watch.child.kill();
  }
});
