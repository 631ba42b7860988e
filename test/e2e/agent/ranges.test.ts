import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { DescribeJobExecutionCommand } from '@aws-sdk/client-iot';
import { startAgent } from '../../../src/device/agent.ts';
import { resolveAgentConfig } from '../../../src/device/config/agent-config.ts';
import { type Link, startLink } from '../../../src/operator/paced-link.ts';
import { ManualClock } from '../../../src/shared/clock.ts';
import { createLogger } from '../../../src/shared/log.ts';
import { OTA_BIN } from '../cli/helpers.ts';
import {
  agentConfig,
  agentFlags,
  createJob,
  debris,
  describeExecution,
  firmwareDoc,
  putFirmware,
  runAgent,
  sha256,
  startWorld,
  type World,
  waitFor,
} from './helpers.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

function spawnAgent(w: World, thing: string, dir: string, extra: string[]): ChildProcess {
  return spawn(
    process.execPath,
    [
      OTA_BIN,
      'agent',
      ...agentFlags(w, thing, { currentVersion: '1', downloadDir: dir, logLevel: 'info' }),
      ...extra,
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        OTA_LOG_FORMAT: 'json',
      },
    },
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The sidecar's done ranges, or undefined while there is none (or it is being replaced). */
function sidecarDone(dir: string, file: string): [number, number][] | undefined {
  try {
    return (JSON.parse(readFileSync(join(dir, `${file}.part.json`), 'utf8')) as { done?: [number, number][] })
      .done;
  } catch {
    return undefined;
  }
}

describe('ota agent: parallel ranges survive kill -9', () => {
  let w: World;
  let link: Link;
  before(async () => {
    w = await startWorld();
    link = await startLink({
      upstream: w.stack.endpoints.s3.endpoint,
      rttMs: 20,
      perConnectionBytesPerSec: 256 * KiB,
    });
  });
  after(async () => {
    await link.close();
    await w.close();
  });

  test('killed with 4 ranges in flight: the sidecar holds only bytes on disk; a new agent finishes exactly', async () => {
    const key = 'firmware/kill9_1.0/fw.img';
    const body = await putFirmware(w, key, 6 * MiB);
    const thing = 'Cam_kill9';
    await w.stack.ensureThing(thing);
    await createJob(w, thing, 'kill9-job', firmwareDoc(w, body.length, { sha256: sha256(body) }, key));
    const dir = join(w.dir, 'dl-kill9');
    const first = spawnAgent(w, thing, dir, ['--s3-endpoint', link.endpoint, '--connections', '4']);
    let killedWith: [number, number][] | undefined;
    try {
      for (let i = 0; i < 400 && !killedWith; i++) {
        await sleep(25);
        const done = sidecarDone(dir, 'fw.img');
        const total = done?.reduce((a, [s, e]) => a + e - s, 0) ?? 0;
        if (done && done.length >= 2 && total >= 1.5 * MiB) {
          first.kill('SIGKILL');
          killedWith = done;
        }
      }
    } finally {
      first.kill('SIGKILL');
    }
    assert.ok(killedWith, 'the agent had several ranges on disk');
    await new Promise((r) =>
      first.exitCode !== null || first.signalCode !== null ? r(null) : first.once('exit', r),
    );
    // What the sidecar says is on disk is on disk, byte for byte (the last sidecar may say less: never more).
    const part = readFileSync(join(dir, 'fw.img.part'));
    const last = sidecarDone(dir, 'fw.img') ?? [];
    let onDisk = 0;
    for (const [a, b] of last) {
      assert.ok(part.subarray(a, b).equals(body.subarray(a, b)), `range ${a}-${b}`);
      onDisk += b - a;
    }
    assert.equal((await describeExecution(w, thing, 'kill9-job'))?.status, 'IN_PROGRESS');

    const second = spawnAgent(w, thing, dir, ['--once']);
    let out = '';
    second.stdout?.on('data', (d) => {
      out += d;
    });
    second.stderr?.on('data', (d) => {
      out += d;
    });
    const code = await new Promise<number | null>((r) => second.on('close', (c) => r(c)));
    assert.equal(code, 0, out);
    assert.equal((await describeExecution(w, thing, 'kill9-job'))?.status, 'SUCCEEDED');
    assert.equal(sha256(readFileSync(join(dir, 'fw.img'))), sha256(body));
    const resumed = out.split('\n').find((l) => l.includes('resuming download from .part'));
    assert.ok(resumed, out);
    assert.equal((JSON.parse(resumed) as { bytes: number }).bytes, onDisk);
    assert.deepEqual(debris(dir), []);
  });
});

describe('device agent: step timer renewed while bytes flow', () => {
  let w: World;
  let link: Link;
  before(async () => {
    // One Jobs "minute" is 1 s: a step timer of 1 minute expires after a second without renewal. The
    // renewals race the real transfer here, so this world keeps the real clock.
    w = await startWorld({ minuteMs: 1000 });
  });
  after(async () => {
    await link?.close();
    await w.close();
  });

  test('a download slower than the step timer, renewed by its statusDetails updates: SUCCEEDED', async () => {
    link = await startLink({ upstream: w.stack.endpoints.s3.endpoint, perConnectionBytesPerSec: 400 * KiB });
    const key = 'firmware/slow_1.0/fw.img';
    const body = await putFirmware(w, key, 1536 * KiB); // ~4 s at 400 KiB/s: four step timers long
    const thing = 'Cam_slow';
    const config = await agentConfig(w, thing, {
      once: true,
      s3Endpoint: link.endpoint,
      connections: 1,
      stepTimeoutMinutes: 1,
      statusDetailsIntervalMs: 100,
      stallTimeoutMs: 10_000,
    });
    await createJob(w, thing, 'slow-job', firmwareDoc(w, body.length, { sha256: sha256(body) }, key));
    let seenTimer: number | undefined;
    const run = runAgent(config, (e) => {
      if (e.type === 'progress' && e.bytes > 256 * KiB && seenTimer === undefined) {
        seenTimer = -1;
        void w.iot
          .send(new DescribeJobExecutionCommand({ jobId: 'slow-job', thingName: thing }))
          .then((r) => {
            seenTimer = r.execution?.approximateSecondsBeforeTimedOut ?? -2;
          });
      }
    });
    const summary = await run.done;
    assert.equal(summary.jobs[0]?.status, 'SUCCEEDED', summary.jobs[0]?.reason);
    assert.equal((await describeExecution(w, thing, 'slow-job'))?.status, 'SUCCEEDED');
    assert.ok(
      seenTimer !== undefined && seenTimer >= 0,
      `a step timer was set during the download (${seenTimer})`,
    );
    await link.close();
  });
});

describe('device agent: a hung download times out', () => {
  let w: World;
  let link: Link;
  // The stack's clock: once the link is dead, the test moves it past the step timer instead of waiting.
  const clock = new ManualClock({ start: Date.now() });
  before(async () => {
    w = await startWorld({ clock });
  });
  after(async () => {
    await link?.close();
    await w.close();
  });

  test('the link goes dead mid-download: no more renewals, the service times the execution out', async () => {
    link = await startLink({ upstream: w.stack.endpoints.s3.endpoint, perConnectionBytesPerSec: 400 * KiB });
    const key = 'firmware/hang_1.0/fw.img';
    const body = await putFirmware(w, key, 1536 * KiB);
    const thing = 'Cam_hang';
    const config = await agentConfig(w, thing, {
      once: true,
      s3Endpoint: link.endpoint,
      connections: 1,
      stepTimeoutMinutes: 1,
      statusDetailsIntervalMs: 100,
      stallTimeoutMs: 20_000,
    });
    await createJob(w, thing, 'hang-job', firmwareDoc(w, body.length, { sha256: sha256(body) }, key));
    let stalled = false;
    const run = runAgent(config, (e) => {
      if (e.type === 'progress' && e.bytes > 200 * KiB && !stalled) {
        stalled = true;
        link.stall(true);
      }
    });
    await waitFor(run.events, () => stalled);
    assert.equal((await describeExecution(w, thing, 'hang-job'))?.status, 'IN_PROGRESS');
    await clock.advance(60_000); // the step timer of 1 minute, not renewed
    const summary = await run.done;
    assert.equal((await describeExecution(w, thing, 'hang-job'))?.status, 'TIMED_OUT');
    // The agent learns it from notify-next (its describe is refused: TerminalStateReached) and stops the
    // download, instead of waiting for its own stall watchdog and retry budget.
    assert.equal(summary.jobs[0]?.status, 'CANCELED', summary.jobs[0]?.reason);
    assert.match(summary.jobs[0]?.reason ?? '', /TIMED_OUT/);
    assert.deepEqual(debris(config.downloadDir), []);
    await link.close();
  });
});

describe('device agent: --max-rate from the config file, changed mid-download; the disk precheck', () => {
  let w: World;
  before(async () => {
    w = await startWorld();
  });
  after(async () => {
    await w.close();
  });

  test('maxRate raised in the config file during a download: applied at once, the download goes on', async () => {
    const key = 'firmware/rate_1.0/fw.img';
    const body = await putFirmware(w, key, 2 * MiB);
    const thing = 'Cam_rate';
    await w.stack.ensureThing(thing);
    const cfgFile = join(w.dir, 'rate-agent.json');
    writeFileSync(cfgFile, JSON.stringify({ maxRate: '128KiB', connections: 1 }));
    const config = resolveAgentConfig({
      flags: {
        local: w.stack.dataDir,
        thingName: thing,
        downloadDir: join(w.dir, 'dl-rate'),
        currentVersion: '1',
        once: true,
      },
      configFile: cfgFile,
      env: {},
    });
    assert.equal(config.maxRate, 128 * KiB);
    assert.equal(config.maxRateFile, cfgFile);
    const lines: string[] = [];
    const logger = createLogger({
      level: 'info',
      format: 'json',
      destination: new Writable({
        write(c, _e, cb) {
          lines.push(String(c));
          cb();
        },
      }),
    });
    await createJob(w, thing, 'rate-job', firmwareDoc(w, body.length, { sha256: sha256(body) }, key));
    let raised = false;
    const handle = startAgent({
      config,
      logger,
      onEvent: (e) => {
        if (e.type === 'progress' && e.bytes > 128 * KiB && !raised) {
          raised = true;
          writeFileSync(cfgFile, JSON.stringify({ maxRate: 0, connections: 1 }));
        }
      },
    });
    const summary = await handle.done;
    const job = summary.jobs[0];
    assert.equal(job?.status, 'SUCCEEDED', job?.reason);
    assert.equal(job?.requests, 1, 'one request: the download was never restarted or resumed');
    const changed = lines
      .map((l) => JSON.parse(l) as { msg: string; from?: number; to?: number })
      .find((l) => l.msg === 'max rate changed (config file)');
    assert.deepEqual([changed?.from, changed?.to], [128 * KiB, 0]);
    assert.equal(sha256(readFileSync(join(w.dir, 'dl-rate', 'fw.img'))), sha256(body));
  });

  test('not enough room for the image plus --min-free: FAILED naming need, have and dir, no file', async () => {
    const key = 'firmware/full_1.0/fw.img';
    const body = await putFirmware(w, key, 100 * KiB);
    const thing = 'Cam_full';
    const config = await agentConfig(w, thing, { once: true, minFree: '1000000GiB' });
    await createJob(w, thing, 'full-job', firmwareDoc(w, body.length, {}, key));
    const summary = await runAgent(config).done;
    assert.equal(summary.jobs[0]?.status, 'FAILED');
    const reason = (await describeExecution(w, thing, 'full-job'))?.statusDetails?.detailsMap?.reason ?? '';
    assert.match(
      reason,
      new RegExp(
        `^not enough disk space: need .+ \\(100\\.0 KiB image \\+ .+ reserve\\), have .+ at ${config.downloadDir}$`,
      ),
    );
    assert.deepEqual(
      existsSync(config.downloadDir) ? readdirSync(config.downloadDir).filter((n) => n !== '.ota-state') : [],
      [],
    );
  });
});
