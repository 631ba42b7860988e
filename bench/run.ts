/**
 * `npm run bench [-- --quick]`: the issue-4 benchmarks. Writes bench/results/latest.json and prints a
 * markdown table (kept in docs/benchmarks.md with the machine it ran on).
 *
 * The local stack runs in its own process (`node bin/ota.js dev`, compiled), each agent in its own
 * process (bench/agent-child.mjs, the compiled agent library), and curl as curl; CPU and peak RSS of
 * agents and curl come from getrusage(RUSAGE_CHILDREN) of one small python3 wrapper per run, so both
 * sides are measured the same way. Comparisons are interleaved A/B/A/B in the same run.
 *
 * It never asserts times: it exits non-zero only when a benchmark breaks (an OTA not SUCCEEDED, a wrong
 * checksum, a figure missing).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateThingCommand } from '@aws-sdk/client-iot';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { createLocalThing } from '../src/cloud/stack.ts';
import { iotClientFor, s3ClientFor, type Target } from '../src/operator/clients.ts';
import { putFirmware } from '../src/operator/firmware.ts';
import { writeDeterministicImage } from '../src/operator/image.ts';
import { createJob } from '../src/operator/jobs.ts';
import { type Endpoints, readEndpoints } from '../src/shared/endpoints.ts';
import { readProcStats } from '../src/sim/proc.ts';
import { type FleetFigures, fleetRows, fleetSection } from './sections/fleet.ts';
import { type SoakFigures, soakRows, soakSection } from './sections/soak.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const QUICK = process.argv.includes('--quick');
/**
 * `--only throughput,memory,fleet`: a subset, for profiling one figure (written to
 * bench/results/partial.json; latest.json and the table are for complete runs only).
 */
const ONLY = (() => {
  const i = process.argv.findIndex((a) => a === '--only' || a.startsWith('--only='));
  if (i < 0) return undefined;
  const a = process.argv[i] as string;
  const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : (process.argv[i + 1] ?? '');
  return new Set(v.split(','));
})();
const want = (k: string) => !ONLY || ONLY.has(k);
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** The original's image size (seed, section 3-2-1). */
const ORIGINAL_SIZE = 87_232_512;

const P = QUICK
  ? {
      throughputSize: 8 * MiB,
      runs: 5,
      memSmall: 4 * MiB,
      memLarge: 32 * MiB,
      fleets: [10, 50],
      fleetImage: 64 * 1024,
      soakJobs: 300,
    }
  : {
      throughputSize: ORIGINAL_SIZE,
      runs: 7,
      memSmall: 64 * MiB,
      memLarge: GiB,
      fleets: [1000, 10_000],
      fleetImage: MiB,
      soakJobs: 10_000,
    };
/** `--baseline DIR`: a built earlier checkout; the fleet section also runs its stack (the "before"). */
const BASELINE = (() => {
  const i = process.argv.indexOf('--baseline');
  return i < 0 ? undefined : resolve(process.argv[i + 1] ?? '');
})();

const problems: string[] = [];
const log = (s: string) => process.stderr.write(`bench: ${s}\n`);

// ---------------------------------------------------------------------------------------------- helpers

interface Measured {
  wallSec: number;
  userSec: number;
  sysSec: number;
  maxRssKiB: number;
  stdout: string;
  code: number;
}

/**
 * Runs a command under a python3 wrapper that times it with perf_counter and reads
 * getrusage(RUSAGE_CHILDREN): user/sys CPU (µs) and ru_maxrss (KiB, = the child's VmHWM).
 */
const WRAPPER = `
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE)
wall = time.perf_counter() - t0
r = resource.getrusage(resource.RUSAGE_CHILDREN)
sys.stderr.write(json.dumps({"wall": wall, "user": r.ru_utime, "sys": r.ru_stime, "maxrss": r.ru_maxrss, "code": p.returncode}) + "\\n")
sys.stdout.buffer.write(p.stdout)
`;

function measure(cmd: string[]): Promise<Measured> {
  return new Promise((res, rej) => {
    const child = spawn('python3', ['-c', WRAPPER, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d;
    });
    child.on('error', rej);
    child.on('close', () => {
      const line = err.trim().split('\n').at(-1) ?? '';
      try {
        const m = JSON.parse(line) as {
          wall: number;
          user: number;
          sys: number;
          maxrss: number;
          code: number;
        };
        res({
          wallSec: m.wall,
          userSec: m.user,
          sysSec: m.sys,
          maxRssKiB: m.maxrss,
          stdout: out,
          code: m.code,
        });
      } catch {
        rej(new Error(`measure ${cmd.join(' ')}: ${err}`));
      }
    });
  });
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB })) h.update(chunk as Buffer);
  return h.digest('hex');
}

interface Dist {
  median: number;
  min: number;
  max: number;
  n: number;
}
function dist(xs: number[]): Dist {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  const median = s.length % 2 ? (s[m] ?? Number.NaN) : ((s[m - 1] ?? Number.NaN) + (s[m] ?? Number.NaN)) / 2;
  return { median, min: s[0] ?? Number.NaN, max: s.at(-1) ?? Number.NaN, n: s.length };
}
const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
const fd = (x: Dist, d = 2) => `${f(x.median, d)} (${f(x.min, d)}–${f(x.max, d)})`;

interface Stack {
  proc: ChildProcess;
  dataDir: string;
  endpoints: Endpoints;
  target: Target;
  close(): Promise<void>;
}

async function startStackProcess(): Promise<Stack> {
  const dataDir = await mkdtemp(join(tmpdir(), 'ota-bench-stack-'));
  const proc = spawn(
    process.execPath,
    [
      join(ROOT, 'bin/ota.js'),
      'dev',
      '--data-dir',
      dataDir,
      '--mqtt-port',
      '0',
      '--ws-port',
      '0',
      '--wss-port',
      '0',
      '--iot-port',
      '0',
      '--s3-port',
      '0',
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], cwd: ROOT },
  );
  await new Promise<void>((res, rej) => {
    let out = '';
    const timer = setTimeout(() => rej(new Error(`ota dev did not start: ${out}`)), 30_000);
    proc.stdout?.on('data', (d: Buffer) => {
      out += d;
      if (out.includes('is ready')) {
        clearTimeout(timer);
        res();
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`ota dev exited (${code}): ${out}`));
    });
  });
  proc.stdout?.resume();
  const endpoints = readEndpoints(dataDir);
  return {
    proc,
    dataDir,
    endpoints,
    target: { kind: 'local', endpoints },
    close: async () => {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

async function ensureThing(stack: Stack, thingName: string): Promise<void> {
  const iot = iotClientFor(stack.target);
  try {
    await createLocalThing(stack.dataDir, thingName, async (name) => {
      await iot.send(new CreateThingCommand({ thingName: name }));
    });
  } finally {
    iot.destroy();
  }
}

interface Image {
  size: number;
  key: string;
  sha256: string;
  document: string;
}

async function uploadImage(stack: Stack, scratch: string, size: number): Promise<Image> {
  const file = join(scratch, `image-${size}.bin`);
  const img = await writeDeterministicImage(file, size, `bench-${size}`);
  const s3 = s3ClientFor(stack.target);
  try {
    const put = await putFirmware({
      file,
      bucket: stack.endpoints.s3.bucket,
      key: `firmware/bench/image-${size}.img`,
      version: '2',
      region: stack.endpoints.region,
      s3,
    });
    if (put.document.firmware.sha256 !== img.sha256)
      problems.push(`upload of ${size} bytes: sha256 mismatch`);
    return { size, key: put.key, sha256: img.sha256, document: JSON.stringify(put.document) };
  } finally {
    s3.destroy();
    await rm(file, { force: true });
  }
}

interface AgentRun extends Measured {
  downloadSec: number;
  otaSec: number;
  progressMessages: number;
  jobUpdates: number;
  vmHWMKiB: number;
  steps: Record<string, number>;
}

let jobCounter = 0;
async function runAgentOta(stack: Stack, thing: string, image: Image, scratch: string): Promise<AgentRun> {
  const jobId = `bench-${Date.now()}-${++jobCounter}`;
  const iot = iotClientFor(stack.target);
  try {
    await createJob(iot, { jobId, things: [thing], document: image.document });
  } finally {
    iot.destroy();
  }
  const downloadDir = join(scratch, `agent-${jobCounter}`);
  const m = await measure([
    process.execPath,
    join(ROOT, 'bench/agent-child.mjs'),
    JSON.stringify({ local: stack.dataDir, thingName: thing, downloadDir, jobId }),
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

/** Median ms of each agent step over the runs (where the whole OTA's time goes; informational). */
function stepMedians(runs: AgentRun[]): Record<string, number> {
  const names = new Set(runs.flatMap((r) => Object.keys(r.steps)));
  const out: Record<string, number> = {};
  for (const n of names) {
    const v = runs.map((r) => r.steps[n]).filter((x): x is number => typeof x === 'number');
    if (v.length > 0) out[n] = Math.round(dist(v).median * 10) / 10;
  }
  return out;
}

async function presignedUrl(stack: Stack, key: string): Promise<string> {
  const s3 = s3ClientFor(stack.target);
  try {
    return await getSignedUrl(s3, new GetObjectCommand({ Bucket: stack.endpoints.s3.bucket, Key: key }), {
      expiresIn: 3600,
    });
  } finally {
    s3.destroy();
  }
}

async function runCurl(stack: Stack, image: Image, scratch: string): Promise<Measured> {
  const url = await presignedUrl(stack, image.key);
  const file = join(scratch, `curl-${Date.now()}.bin`);
  const m = await measure(['curl', '-s', '-f', '-o', file, url]);
  if (m.code !== 0) problems.push(`curl exited ${m.code}`);
  else if ((await sha256File(file)) !== image.sha256) problems.push(`curl download: sha256 mismatch`);
  await rm(file, { force: true });
  return m;
}

/**
 * Like for like: curl, then sha256sum and `sync FILE` (fsync), the two things the agent must do and curl
 * does not (verify firmware.sha256; make the file durable before the atomic rename).
 */
async function runCurlVerified(stack: Stack, image: Image, scratch: string): Promise<Measured> {
  const url = await presignedUrl(stack, image.key);
  const file = join(scratch, `curlv-${Date.now()}.bin`);
  const m = await measure([
    'sh',
    '-c',
    'curl -s -f -o "$1" "$2" && sha256sum "$1" && sync "$1"',
    'sh',
    file,
    url,
  ]);
  if (m.code !== 0 || !m.stdout.startsWith(image.sha256))
    problems.push(`curl+sha256sum+sync: exit ${m.code} or sha256 mismatch`);
  await rm(file, { force: true });
  return m;
}

/** Peak RSS of `node bin/ota.js agent` (the CLI as users run it), for comparison with the bare library. */
async function runCliAgent(stack: Stack, thing: string, image: Image, scratch: string): Promise<number> {
  const jobId = `bench-cli-${Date.now()}`;
  const iot = iotClientFor(stack.target);
  try {
    await createJob(iot, { jobId, things: [thing], document: image.document });
  } finally {
    iot.destroy();
  }
  const downloadDir = join(scratch, 'cli-agent');
  const m = await measure([
    process.execPath,
    join(ROOT, 'bin/ota.js'),
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
    'silent',
  ]);
  await rm(downloadDir, { recursive: true, force: true });
  if (m.code !== 0) problems.push(`ota agent CLI exited ${m.code}`);
  return m.maxRssKiB;
}

// ---------------------------------------------------------------------------------------------- benchmarks

function machine() {
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? 'unknown';
  const curl = execFileSync('curl', ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? '';
  let fdLimit = 'unknown';
  try {
    fdLimit = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
  } catch {}
  return {
    nproc: cpus().length,
    cpu: model,
    node: process.version,
    curl,
    fdLimit,
    kernel: readFileSync('/proc/version', 'utf8').split(' ')[2],
  };
}

async function main() {
  const started = Date.now();
  log(`mode ${QUICK ? 'quick' : 'full'}; building dist/ (the stack and the agent run compiled)`);
  try {
    // --no-build: profiling runs against a dist/ built (or instrumented) beforehand.
    if (!process.argv.includes('--no-build'))
      execFileSync('npm', ['run', '-s', 'build'], { cwd: ROOT, stdio: 'inherit' });
  } catch {
    if (!existsSync(join(ROOT, 'dist/device/index.js')))
      throw new Error('npm run build failed and dist/ is missing');
    log('npm run build reported errors; using the dist/ it emitted');
  }
  const scratch = await mkdtemp(join(tmpdir(), 'ota-bench-'));
  const stack = await startStackProcess();
  const results: Record<string, unknown> = { machine: machine(), quick: QUICK, params: P };
  try {
    const thing = 'bench-device';
    await ensureThing(stack, thing);

    // 1. Throughput: agent vs curl, interleaved, alternating which goes first.
    const agentRuns: AgentRun[] = [];
    if (want('throughput')) {
      log(`throughput: ${P.throughputSize} bytes, ${P.runs} runs each, interleaved`);
      const tImg = await uploadImage(stack, scratch, P.throughputSize);
      await runCurl(stack, tImg, scratch); // warm the page cache for both sides
      const curlRuns: Measured[] = [];
      const curlVerifiedRuns: Measured[] = [];
      for (let i = 0; i < P.runs; i++) {
        curlVerifiedRuns.push(await runCurlVerified(stack, tImg, scratch));
        if (i % 2 === 0) {
          agentRuns.push(await runAgentOta(stack, thing, tImg, scratch));
          curlRuns.push(await runCurl(stack, tImg, scratch));
        } else {
          curlRuns.push(await runCurl(stack, tImg, scratch));
          agentRuns.push(await runAgentOta(stack, thing, tImg, scratch));
        }
      }
      const curlSec = dist(curlRuns.map((r) => r.wallSec));
      const downloadSec = dist(agentRuns.map((r) => r.downloadSec));
      const otaSec = dist(agentRuns.map((r) => r.otaSec));
      // Ratios pair run i of the agent with run i of curl (adjacent in time).
      const ratioDownload = dist(
        agentRuns.map((r, i) => r.downloadSec / (curlRuns[i]?.wallSec ?? Number.NaN)),
      );
      const ratioOta = dist(agentRuns.map((r, i) => r.otaSec / (curlRuns[i]?.wallSec ?? Number.NaN)));
      const curlVerifiedSec = dist(curlVerifiedRuns.map((r) => r.wallSec));
      const ratioDownloadVerified = dist(
        agentRuns.map((r, i) => r.downloadSec / (curlVerifiedRuns[i]?.wallSec ?? Number.NaN)),
      );
      const gib = P.throughputSize / GiB;
      const agentCpuPerGiB = dist(agentRuns.map((r) => (r.userSec + r.sysSec) / gib));
      const curlCpuPerGiB = dist(curlRuns.map((r) => (r.userSec + r.sysSec) / gib));
      const ratioCpu = dist(
        agentRuns.map(
          (r, i) => (r.userSec + r.sysSec) / ((curlRuns[i]?.userSec ?? 0) + (curlRuns[i]?.sysSec ?? 0)),
        ),
      );
      results.throughput = {
        size: P.throughputSize,
        curlSec,
        agentDownloadSec: downloadSec,
        agentOtaSec: otaSec,
        curlMiBps: P.throughputSize / MiB / curlSec.median,
        agentDownloadMiBps: P.throughputSize / MiB / downloadSec.median,
        ratioDownload,
        ratioOta,
        curlVerifiedSec,
        ratioDownloadVerified,
      };
      results.cpu = { agentCpuPerGiB, curlCpuPerGiB, ratio: ratioCpu };
      results.agentSteps = stepMedians(agentRuns);
    }

    // 2 + 4. Memory and message cost: one OTA each of the small and the large image.
    if (want('memory')) {
      log(`memory: ${P.memSmall} and ${P.memLarge} bytes`);
      const smallImg = await uploadImage(stack, scratch, P.memSmall);
      const small = await runAgentOta(stack, thing, smallImg, scratch);
      const largeImg = await uploadImage(stack, scratch, P.memLarge);
      const large = await runAgentOta(stack, thing, largeImg, scratch);
      const largeCurl = await runCurl(stack, largeImg, scratch);
      const cliPeakKiB = await runCliAgent(stack, thing, smallImg, scratch);
      results.memory = {
        smallSize: P.memSmall,
        largeSize: P.memLarge,
        smallPeakMiB: small.maxRssKiB / 1024,
        largePeakMiB: large.maxRssKiB / 1024,
        smallVmHWMMiB: small.vmHWMKiB / 1024,
        largeVmHWMMiB: large.vmHWMKiB / 1024,
        ratio: large.maxRssKiB / small.maxRssKiB,
        cliAgentSmallPeakMiB: cliPeakKiB / 1024,
        curlLargePeakMiB: largeCurl.maxRssKiB / 1024,
        largeAgentCpuPerGiB: (large.userSec + large.sysSec) / (P.memLarge / GiB),
        largeCurlCpuPerGiB: (largeCurl.userSec + largeCurl.sysSec) / (P.memLarge / GiB),
        largeDownloadSec: large.downloadSec,
        largeCurlSec: largeCurl.wallSec,
      };
      const tMsgs = agentRuns[0];
      results.messages = {
        throughputImage: {
          size: P.throughputSize,
          progressMessages: tMsgs?.progressMessages,
          jobUpdates: tMsgs?.jobUpdates,
          downloadSec: tMsgs?.downloadSec,
        },
        largeImage: {
          size: P.memLarge,
          progressMessages: large.progressMessages,
          jobUpdates: large.jobUpdates,
          downloadSec: large.downloadSec,
        },
      };
    }

    // 5. Fleet: N agents in this process against a stack process of their own (bench/sections/fleet.ts).
    if (want('fleet'))
      results.fleet = await fleetSection({
        root: ROOT,
        fleets: P.fleets,
        image: P.fleetImage,
        ...(BASELINE ? { baseline: BASELINE, baselineMax: 2000 } : {}),
        timeoutSec: 900,
        log,
        problems,
      });
    // 6. Soak: 10,000 jobs through a stack process; its RSS after warm-up (bench/sections/soak.ts).
    if (want('soak'))
      results.soak = await soakSection({ root: ROOT, jobs: P.soakJobs, agents: 20, log, problems });
    const stackNow = stack.proc.pid ? readProcStats(stack.proc.pid) : undefined;
    results.stackProcess = stackNow ? { peakRssMiB: stackNow.peakRssBytes / MiB } : undefined;
  } finally {
    await stack.close();
    await rm(scratch, { recursive: true, force: true });
  }
  results.elapsedSec = (Date.now() - started) / 1000;
  results.problems = problems;

  // Every figure must be a number: a NaN or a missing one means a benchmark broke.
  const walk = (v: unknown, path: string) => {
    if (typeof v === 'number' && !Number.isFinite(v)) problems.push(`figure ${path} is missing`);
    else if (v === undefined || v === null) problems.push(`figure ${path} is missing`);
    else if (typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, `${path}.${k}`);
  };
  if (ONLY) {
    mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
    writeFileSync(join(ROOT, 'bench/results/partial.json'), `${JSON.stringify(results, null, 2)}\n`);
    process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    const mine = [
      ...fleetRows((results.fleet as FleetFigures[] | undefined) ?? [], QUICK),
      ...(results.soak ? soakRows(results.soak as SoakFigures, QUICK) : []),
    ];
    if (mine.length > 0) process.stdout.write(`${mine.map((row) => `| ${row.join(' | ')} |`).join('\n')}\n`);
    if (problems.length > 0) {
      process.stderr.write(`bench: BROKEN:\n  ${problems.join('\n  ')}\n`);
      process.exitCode = 1;
    }
    return;
  }
  for (const k of ['throughput', 'cpu', 'memory', 'messages', 'fleet', 'soak']) walk(results[k], k);

  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench/results/latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`${table(results)}\n`);
  if (problems.length > 0) {
    process.stderr.write(`bench: BROKEN:\n  ${problems.join('\n  ')}\n`);
    process.exitCode = 1;
  } else {
    log(`done in ${f(results.elapsedSec as number, 0)} s; bench/results/latest.json written`);
  }
}

// ---------------------------------------------------------------------------------------------- table

function table(r: Record<string, unknown>): string {
  const m = r.machine as ReturnType<typeof machine>;
  const t = r.throughput as {
    size: number;
    curlSec: Dist;
    agentDownloadSec: Dist;
    agentOtaSec: Dist;
    curlMiBps: number;
    agentDownloadMiBps: number;
    ratioDownload: Dist;
    ratioOta: Dist;
    curlVerifiedSec: Dist;
    ratioDownloadVerified: Dist;
  };
  const c = r.cpu as { agentCpuPerGiB: Dist; curlCpuPerGiB: Dist; ratio: Dist };
  const mem = r.memory as Record<string, number>;
  const msg = r.messages as Record<
    string,
    { size: number; progressMessages: number; jobUpdates: number; downloadSec: number }
  >;
  const fleets = r.fleet as FleetFigures[] | undefined;
  const mib = (n: number) =>
    n >= GiB ? `${f(n / GiB, 0)} GiB` : n >= MiB ? `${f(n / MiB, 1)} MiB` : `${n} B`;
  const ok = (b: boolean) => (r.quick ? '(quick)' : b ? 'met' : '**missed**');
  const rows: string[][] = [
    ['Benchmark', 'Figure (median, min–max)', 'Target', 'Result'],
    ['---', '---', '---', '---'],
    [`Download ${mib(t.size)}: curl -s -o`, `${fd(t.curlSec, 3)} s (${f(t.curlMiBps, 0)} MiB/s)`, '', ''],
    [
      `Download ${mib(t.size)}: agent download phase`,
      `${fd(t.agentDownloadSec, 3)} s (${f(t.agentDownloadMiBps, 0)} MiB/s)`,
      '',
      '',
    ],
    [`Download ${mib(t.size)}: agent whole OTA`, `${fd(t.agentOtaSec, 3)} s`, '', ''],
    ['agent_download / curl', fd(t.ratioDownload), '≤ 1.10', ok(t.ratioDownload.median <= 1.1)],
    ['agent_ota / curl', fd(t.ratioOta), '≤ 1.25', ok(t.ratioOta.median <= 1.25)],
    [
      `Download ${mib(t.size)}: curl + sha256sum + sync (like for like)`,
      `${fd(t.curlVerifiedSec, 3)} s`,
      '',
      '',
    ],
    ['agent_download / (curl + sha256sum + sync)', fd(t.ratioDownloadVerified), '(info)', ''],
    ['CPU s/GiB: agent (whole process)', fd(c.agentCpuPerGiB), '', ''],
    ['CPU s/GiB: curl', fd(c.curlCpuPerGiB), '', ''],
    ['CPU agent / curl', fd(c.ratio), '≤ 3', ok(c.ratio.median <= 3)],
    [
      `CPU s/GiB at ${mib(mem.largeSize ?? 0)}: agent / curl`,
      `${f(mem.largeAgentCpuPerGiB ?? Number.NaN)} / ${f(mem.largeCurlCpuPerGiB ?? Number.NaN)} = ${f((mem.largeAgentCpuPerGiB ?? 0) / (mem.largeCurlCpuPerGiB ?? 1))}`,
      '(1 run each)',
      '',
    ],
    [
      `Peak RSS agent, ${mib(mem.smallSize ?? 0)}`,
      `${f(mem.smallPeakMiB ?? Number.NaN, 1)} MiB`,
      '≤ 100 MiB',
      ok((mem.smallPeakMiB ?? 1e9) <= 100),
    ],
    [
      `Peak RSS agent, ${mib(mem.largeSize ?? 0)}`,
      `${f(mem.largePeakMiB ?? Number.NaN, 1)} MiB`,
      '≤ 100 MiB',
      ok((mem.largePeakMiB ?? 1e9) <= 100),
    ],
    ['Peak RSS large / small', f(mem.ratio ?? Number.NaN), '≤ 1.10', ok((mem.ratio ?? 9) <= 1.1)],
    [
      `Peak RSS \`ota agent\` CLI, ${mib(mem.smallSize ?? 0)}`,
      `${f(mem.cliAgentSmallPeakMiB ?? Number.NaN, 1)} MiB`,
      '(info)',
      '',
    ],
    [
      `Peak RSS curl, ${mib(mem.largeSize ?? 0)}`,
      `${f(mem.curlLargePeakMiB ?? Number.NaN, 1)} MiB`,
      '(info)',
      '',
    ],
  ];
  for (const v of Object.values(msg)) {
    const perSec = (v.progressMessages + v.jobUpdates) / v.downloadSec;
    // Bounded by time: one per 1 s interval plus the first and the final progress message; one status
    // update per 10 s interval plus the first.
    const bound = Math.ceil(v.downloadSec) + 2 + Math.ceil(v.downloadSec / 10) + 1;
    rows.push([
      `Messages per OTA, ${mib(v.size)}`,
      `${v.progressMessages} progress + ${v.jobUpdates} job updates in ${f(v.downloadSec)} s download (${f(perSec)}/s)`,
      `≤ ${bound} (1/s + first + final)`,
      ok(v.progressMessages + v.jobUpdates <= bound),
    ]);
  }
  rows.push(...fleetRows(fleets ?? [], Boolean(r.quick)));
  if (r.soak) rows.push(...soakRows(r.soak as SoakFigures, Boolean(r.quick)));
  const head = `Machine: ${m.nproc} × ${m.cpu}, Node ${m.node}, ${m.curl.split(' ').slice(0, 2).join(' ')}, Linux ${m.kernel}${r.quick ? ' — QUICK mode (small sizes; targets not meaningful)' : ''}`;
  return `${head}\n\n${rows.map((row) => `| ${row.join(' | ')} |`).join('\n')}`;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
