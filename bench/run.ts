/**
 * `npm run bench [-- --quick] [-- --only a,b] [-- --no-build]`: every benchmark in one command. Writes
 * bench/results/latest.json (complete runs) or partial.json (`--only`) and prints a markdown table (kept in
 * docs/benchmarks.md with the machine it ran on).
 *
 * Sections (`--only` names): throughput (agent vs curl, 83 MiB, plain HTTP), memory (library child,
 * message cost), tls (the same over `ota dev --s3-tls`), clients (hand-written reader vs undici vs
 * node:http, both transports), startup (`ota agent --once`, empty queue), gib (1 GiB whole OTA of the
 * `ota agent` CLI vs curl + sync, curl and boto3; the CLI's peak RSS), ranges (parallel ranged GETs on a
 * 100 ms, per-connection-capped link; --max-rate accuracy), fleet.
 *
 * `--baseline DIR` (a built checkout of an earlier commit) adds its `ota agent` to the startup and gib
 * sections, side by side: the before/after figures.
 *
 * The local stack runs in its own process (`node bin/ota.js dev`, compiled), each agent, curl, boto3 and
 * HTTP client in its own process, measured the same way (bench/lib/measure.ts). Comparisons are
 * interleaved, rotating which goes first, and ratios pair adjacent runs. It never asserts a time: it
 * exits non-zero only when a benchmark breaks (an OTA not SUCCEEDED, a wrong checksum, a figure missing).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readProcStats } from '../src/sim/proc.ts';
import { f, loadAverage, log, MiB, problems, ROOT } from './lib/measure.ts';
import type { AgentRun } from './lib/runners.ts';
import { ensureThing, type Stack, startStackProcess } from './lib/stack.ts';
import { clients } from './sections/clients.ts';
import { gib, memory, throughput } from './sections/download.ts';
import { fleetSection } from './sections/fleet.ts';
import { FULL_PARAMS, QUICK_PARAMS } from './sections/params.ts';
import { ranges } from './sections/ranges.ts';
import { soakSection } from './sections/soak.ts';
import { startup } from './sections/startup.ts';
import { table } from './table.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const QUICK = process.argv.includes('--quick');
const SECTIONS = [
  'throughput',
  'memory',
  'tls',
  'clients',
  'startup',
  'gib',
  'ranges',
  'fleet',
  'soak',
] as const;
const ONLY = (() => {
  const i = process.argv.findIndex((a) => a === '--only' || a.startsWith('--only='));
  if (i < 0) return undefined;
  const a = process.argv[i] as string;
  const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : (process.argv[i + 1] ?? '');
  const set = new Set(v.split(',').filter(Boolean));
  for (const k of set)
    if (!(SECTIONS as readonly string[]).includes(k))
      throw new Error(`--only: unknown section "${k}" (known: ${SECTIONS.join(', ')})`);
  return set;
})();
const want = (k: (typeof SECTIONS)[number]) => !ONLY || ONLY.has(k);
const BASELINE = (() => {
  const i = process.argv.indexOf('--baseline');
  if (i < 0) return undefined;
  const dir = process.argv[i + 1] ?? '';
  if (!existsSync(join(dir, 'bin/ota.js')) || !existsSync(join(dir, 'dist/cli/main.js')))
    throw new Error(`--baseline ${dir}: not a built checkout (bin/ota.js and dist/cli/main.js)`);
  return dir;
})();
const P = { ...(QUICK ? QUICK_PARAMS : FULL_PARAMS), ...(BASELINE ? { baseline: BASELINE } : {}) };

function machine() {
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? 'unknown';
  const curl = execFileSync('curl', ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? '';
  return {
    nproc: cpus().length,
    cpu: model,
    node: process.version,
    curl,
    kernel: readFileSync('/proc/version', 'utf8').split(' ')[2],
    /** 1/5/15-minute load average at the start: > nproc means the figures were taken on a busy machine. */
    loadAvgAtStart: loadAverage(),
  };
}

async function main() {
  const started = Date.now();
  log(`mode ${QUICK ? 'quick' : 'full'}; building dist/ (the stack and the agent run compiled)`);
  try {
    if (!process.argv.includes('--no-build'))
      execFileSync('npm', ['run', '-s', 'build'], { cwd: ROOT, stdio: 'inherit' });
  } catch {
    if (!existsSync(join(ROOT, 'dist/device/index.js')))
      throw new Error('npm run build failed and dist/ is missing');
    log('npm run build reported errors; using the dist/ it emitted');
  }
  const scratch = await mkdtemp(join(tmpdir(), 'ota-bench-'));
  const stack = await startStackProcess();
  let tlsStack: Stack | undefined;
  const results: Record<string, unknown> = { machine: machine(), quick: QUICK, params: P };
  try {
    const thing = 'bench-device';
    await ensureThing(stack, thing);
    let first: AgentRun | undefined;
    if (want('throughput')) {
      const t = await throughput(stack, thing, scratch, P);
      first = t.runs[0];
      results.throughput = t.result;
    }
    if (want('memory')) Object.assign(results, await memory(stack, thing, scratch, P, first));
    if (want('tls') || want('clients')) {
      tlsStack = await startStackProcess({ s3Tls: true });
      await ensureThing(tlsStack, thing);
    }
    if (want('tls') && tlsStack) results.tls = (await throughput(tlsStack, thing, scratch, P)).result;
    if (want('clients') && tlsStack) results.clients = await clients([stack, tlsStack], scratch, P);
    await tlsStack?.close();
    tlsStack = undefined;
    if (want('startup')) results.startup = await startup(stack, thing, scratch, P);
    if (want('gib')) results.gib = await gib(stack, thing, scratch, P);
    if (want('ranges')) results.ranges = await ranges(stack, thing, scratch, P);
    // Fleet and soak: N agents in this process against a stack process of their own, a fresh one per run.
    if (want('fleet'))
      results.fleet = await fleetSection({
        root: ROOT,
        fleets: P.fleets,
        image: P.fleetImage,
        ...(BASELINE ? { baseline: resolve(BASELINE), baselineMax: 2000 } : {}),
        timeoutSec: 900,
        log,
        problems,
      });
    if (want('soak'))
      results.soak = await soakSection({ root: ROOT, jobs: P.soakJobs, agents: 20, log, problems });
    const stackNow = stack.proc.pid ? readProcStats(stack.proc.pid) : undefined;
    results.stackProcess = stackNow ? { peakRssMiB: stackNow.peakRssBytes / MiB } : undefined;
  } finally {
    await tlsStack?.close();
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
  // The sections' figures, and the memory section's `messages`.
  for (const k of [...SECTIONS, 'messages']) if (k in results) walk(results[k], k);

  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  const out = ONLY ? 'partial.json' : 'latest.json';
  writeFileSync(join(ROOT, 'bench/results', out), `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`${table(results)}\n`);
  if (problems.length > 0) {
    process.stderr.write(`bench: BROKEN:\n  ${problems.join('\n  ')}\n`);
    process.exitCode = 1;
  } else {
    log(`done in ${f(results.elapsedSec as number, 0)} s; bench/results/${out} written`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
