/**
 * One measured run of each contender: the agent (as the `ota agent` CLI, or the library child that
 * reports the OTA's own timestamps), curl (plain, + sync, + sha256sum + sync) and boto3's download_file.
 */

import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { iotClientFor } from '../../src/operator/clients.ts';
import { createJob } from '../../src/operator/jobs.ts';
import { type Measured, measure, problems, ROOT, sha256File } from './measure.ts';
import { type Image, presignedUrl, type Stack } from './stack.ts';

let jobCounter = 0;
async function newJob(stack: Stack, thing: string, image: Image): Promise<string> {
  const jobId = `bench-${Date.now()}-${++jobCounter}`;
  const iot = iotClientFor(stack.target);
  try {
    await createJob(iot, { jobId, things: [thing], document: image.document });
  } finally {
    iot.destroy();
  }
  return jobId;
}

export interface AgentRun extends Measured {
  downloadSec: number;
  otaSec: number;
  progressMessages: number;
  jobUpdates: number;
  vmHWMKiB: number;
  steps: Record<string, number>;
}

/** The compiled agent library in a child (bench/agent-child.mjs), which reports the OTA's timestamps. */
export async function runAgentChild(
  stack: Stack,
  thing: string,
  image: Image,
  scratch: string,
  flags: Record<string, unknown> = {},
): Promise<AgentRun> {
  const jobId = await newJob(stack, thing, image);
  const downloadDir = join(scratch, `agent-${jobCounter}`);
  const m = await measure([
    process.execPath,
    join(ROOT, 'bench/agent-child.mjs'),
    JSON.stringify({ local: stack.dataDir, thingName: thing, downloadDir, jobId, flags }),
  ]);
  await rm(downloadDir, { recursive: true, force: true });
  const out = JSON.parse(m.stdout.trim().split('\n').at(-1) ?? '{}') as {
    summary?: {
      jobs: Array<{
        jobId: string;
        status: string;
        sha256?: string;
        seconds?: number;
        reason?: string;
        progressMessages: number;
        statusDetailsUpdates: number;
      }>;
    };
    otaSeconds: number | null;
    vmHWMKiB: number | null;
    steps?: Record<string, number>;
  };
  const job = out.summary?.jobs.find((j) => j.jobId === jobId);
  if (job?.status !== 'SUCCEEDED') {
    problems.push(`agent OTA ${jobId} (${image.size} B): ${job?.status ?? 'no result'} ${job?.reason ?? ''}`);
  } else if (job.sha256 !== image.sha256) {
    problems.push(`agent OTA ${jobId}: sha256 ${job.sha256} ≠ ${image.sha256}`);
  }
  return {
    ...m,
    downloadSec: job?.seconds ?? Number.NaN,
    otaSec: out.otaSeconds ?? Number.NaN,
    progressMessages: job?.progressMessages ?? Number.NaN,
    jobUpdates: job?.statusDetailsUpdates ?? Number.NaN,
    vmHWMKiB: out.vmHWMKiB ?? Number.NaN,
    steps: out.steps ?? {},
  };
}

export interface CliRun extends Measured {
  /** From the agent's own debug log (pino `time`), relative to the spawn: MQTT connected. */
  connectedMs?: number;
  /** Connection closed after the empty start-next reply (`--once`, empty queue): an upper bound. */
  startNextAnsweredMs?: number;
}

/**
 * `node bin/ota.js agent --local ... --once` exactly as a user runs it (the launcher, the CLI, the
 * agent), whole process. With an image it first creates a job for it and checks the file's sha256.
 * `debugLog` turns on `--log-level debug` to read when MQTT connected and when the connection closed.
 * `root`: another checkout's bin/ota.js (built), for the before/after runs of `--baseline`.
 */
export async function runCliAgent(
  stack: Stack,
  thing: string,
  scratch: string,
  opts: { image?: Image; debugLog?: boolean; env?: NodeJS.ProcessEnv; root?: string } = {},
): Promise<CliRun> {
  const jobId = opts.image ? await newJob(stack, thing, opts.image) : undefined;
  const downloadDir = join(scratch, `cli-agent-${++jobCounter}`);
  const m = await measure(
    [
      process.execPath,
      join(opts.root ?? ROOT, 'bin/ota.js'),
      'agent',
      '--local',
      stack.dataDir,
      '-n',
      thing,
      '--once',
      '--current-version',
      '1',
      '--download-dir',
      downloadDir,
      '--log-level',
      opts.debugLog ? 'debug' : 'silent',
    ],
    opts.env,
  );
  if (m.code !== 0) problems.push(`ota agent CLI exited ${m.code}: ${m.stderr.slice(-300)}`);
  if (opts.image && jobId) {
    const summary = m.stderr.split('\n').find((l) => l.startsWith('ota agent:')) ?? '';
    if (!summary.includes(`${jobId} SUCCEEDED`)) problems.push(`ota agent CLI ${jobId}: ${summary}`);
    else {
      const file = join(downloadDir, opts.image.key.split('/').at(-1) ?? '');
      const got = await sha256File(file).catch(() => 'missing');
      if (got !== opts.image.sha256) problems.push(`ota agent CLI ${jobId}: sha256 ${got}`);
    }
  }
  await rm(downloadDir, { recursive: true, force: true });
  const run: CliRun = { ...m };
  if (opts.debugLog) {
    for (const line of `${m.stdout}\n${m.stderr}`.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        const e = JSON.parse(line) as { time: number; msg: string; to?: string };
        if (e.msg !== 'connection state') continue;
        if (e.to === 'connected') run.connectedMs ??= e.time - m.spawnedAtMs;
        if (e.to === 'closed') run.startNextAnsweredMs ??= e.time - m.spawnedAtMs;
      } catch {}
    }
    if (run.connectedMs === undefined || run.startNextAnsweredMs === undefined)
      problems.push('ota agent CLI debug log: no connection-state lines');
  }
  return run;
}

/** curl of a presigned URL; `then` adds the agent's other duties: `sync` (fsync) and/or sha256sum. */
export async function runCurl(
  stack: Stack,
  image: Image,
  scratch: string,
  then: { sync?: boolean; sha256sum?: boolean } = {},
): Promise<Measured> {
  const url = await presignedUrl(stack, image.key);
  const file = join(scratch, `curl-${Date.now()}-${++jobCounter}.bin`);
  const tlsArgs = stack.tls ? `--cacert "${stack.endpoints.rootCA}"` : '';
  const script = [
    `curl -s -f ${tlsArgs} -o "$1" "$2"`,
    ...(then.sha256sum ? ['sha256sum "$1"'] : []),
    ...(then.sync ? ['sync "$1"'] : []),
  ].join(' && ');
  const m =
    then.sync || then.sha256sum
      ? await measure(['sh', '-c', script, 'sh', file, url])
      : await measure([
          'curl',
          '-s',
          '-f',
          ...(stack.tls ? ['--cacert', stack.endpoints.rootCA] : []),
          '-o',
          file,
          url,
        ]);
  if (m.code !== 0) problems.push(`curl (${JSON.stringify(then)}) exited ${m.code}`);
  else if (then.sha256sum ? !m.stdout.startsWith(image.sha256) : (await sha256File(file)) !== image.sha256)
    problems.push(`curl download: sha256 mismatch`);
  await rm(file, { force: true });
  return m;
}

/** boto3's `download_file` (Debian's python3-boto3), what the original agent used. */
export async function runBoto3(stack: Stack, image: Image, scratch: string): Promise<Measured> {
  const e = stack.endpoints;
  const file = join(scratch, `boto3-${Date.now()}-${++jobCounter}.bin`);
  const m = await measure([
    '/usr/bin/python3',
    join(ROOT, 'bench/boto3-download.py'),
    e.s3.endpoint,
    e.region,
    e.s3.bucket,
    image.key,
    file,
    e.s3.accessKeyId,
    e.s3.secretAccessKey,
    ...(stack.tls ? [e.rootCA] : []),
  ]);
  if (m.code !== 0) problems.push(`boto3 download_file exited ${m.code}: ${m.stderr.slice(-300)}`);
  else if ((await sha256File(file)) !== image.sha256) problems.push('boto3 download: sha256 mismatch');
  await rm(file, { force: true });
  return m;
}

/** Whether Debian's python3-boto3 is installed (the boto3 comparison is skipped, and said so, without). */
export async function haveBoto3(): Promise<boolean> {
  const m = await measure(['/usr/bin/python3', '-c', 'import boto3']).catch(() => undefined);
  return m?.code === 0;
}
