/**
 * The soak behind `npm run bench -- --only soak`: many jobs, one after another, through a running stack,
 * to show that the stack's memory stays flat once warmed up. A few agents (device.ts) each take their
 * own jobs: job i targets thing i mod agents and offers version 2.0.i, so every job is newer than what
 * its device runs and every one runs the whole OTA (start-next, download, SUCCEEDED). At most
 * 2 × agents jobs are outstanding. The stack's RSS is sampled every `sampleEvery` finished jobs.
 *
 * The figures: the least-squares slope of RSS over jobs after the warm-up (the first `warmupFraction` of
 * the jobs), in MiB per 1,000 jobs, and the mean RSS of the first and the last few samples after it.
 *
 * Round timings and run ids are wall-clock measurements of the real run (see fleet.ts).
 */
import { rm } from 'node:fs/promises';
import { createJob } from '../operator/jobs.ts';
import { AbortedError, errorMessage, ValidationError } from '../shared/errors.ts';
import { type Logger, silentLogger } from '../shared/log.ts';
import { type AgentHost, localHost } from './agent-host.ts';
import { deviceScratch } from './device.ts';
import { type Prepared, prepare, thingNames, uploadImage } from './prepare.ts';
import { readProcStats } from './proc.ts';
import type { FleetTarget } from './types.ts';

export interface SoakOptions {
  /** A running stack (its RSS is what is sampled); `stackPid` as for `ota sim --data-dir`. */
  target: Extract<FleetTarget, { kind: 'local' }>;
  jobs: number;
  /** Things (and agents); default 20. */
  agents?: number;
  /** Default 4 KiB: the soak is about the stack's bookkeeping, not bandwidth. */
  imageSize?: number;
  /** Default jobs / 100 (at least 1). */
  sampleEvery?: number;
  /** Default 0.2. */
  warmupFraction?: number;
  logger?: Logger;
  signal?: AbortSignal;
  onSample?: (s: SoakSample) => void;
}

export interface SoakSample {
  jobsDone: number;
  /** Milliseconds since the first job was created. */
  atMs: number;
  rssMiB: number;
}

export interface SoakSummary {
  jobs: number;
  agents: number;
  durationMs: number;
  jobsPerSec: number;
  failures: number;
  firstFailure?: string;
  samples: SoakSample[];
  warmupJobs: number;
  /** Least-squares slope of RSS over jobs after the warm-up. */
  slopeMiBPer1000Jobs: number;
  /** Mean RSS of the first and the last 5 samples after the warm-up. */
  afterWarmupFirstMiB: number;
  lastMiB: number;
  peakRssMiB: number;
}

export function slopePer1000(points: ReadonlyArray<{ x: number; y: number }>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((a, p) => a + p.x, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 1000;
}

const mean = (xs: number[]) => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length);

/** The figures of a sample series (exported for the unit test). */
export function soakFigures(samples: readonly SoakSample[], warmupJobs: number) {
  const after = samples.filter((s) => s.jobsDone >= warmupJobs);
  const round = (x: number) => Math.round(x * 100) / 100;
  return {
    slopeMiBPer1000Jobs: round(slopePer1000(after.map((s) => ({ x: s.jobsDone, y: s.rssMiB })))),
    afterWarmupFirstMiB: round(mean(after.slice(0, 5).map((s) => s.rssMiB))),
    lastMiB: round(mean(after.slice(-5).map((s) => s.rssMiB))),
    peakRssMiB: round(Math.max(0, ...samples.map((s) => s.rssMiB))),
  };
}

interface SoakState {
  created: number;
  done: number;
  failures: number;
  firstFailure?: string;
  /** Wakes the job loop (a job ended). */
  wake: () => void;
}

/** One agent per thing, in this process, each connected and idle. */
async function startAgents(
  prepared: Prepared,
  scratch: string,
  runId: string,
  state: SoakState,
  log: Logger,
): Promise<AgentHost> {
  const host = localHost({ base: prepared.agentBase, scratch, concurrency: 16, logger: log });
  const lost: string[] = [];
  await host.start(
    prepared.devices.map((d) => ({ ...d, role: 'ok' as const })),
    (thingName, e) => {
      if (e.type === 'lost') lost.push(`${thingName}: ${e.reason}`);
      if (e.type !== 'result' || !e.jobId.startsWith(runId)) return;
      state.done++;
      if (e.status !== 'SUCCEEDED') {
        state.failures++;
        state.firstFailure ??= `${thingName} ${e.jobId} ${e.status}: ${e.reason ?? ''}`;
      }
      state.wake();
    },
  );
  if (lost.length > 0) {
    await host.stop('');
    throw new ValidationError('agents', `${lost.length} agents did not come up (${lost[0]})`);
  }
  return host;
}

export async function runSoak(opts: SoakOptions): Promise<SoakSummary> {
  const { jobs } = opts;
  if (!Number.isInteger(jobs) || jobs < 1) throw new ValidationError('jobs', 'must be an integer ≥ 1');
  const agents = opts.agents ?? 20;
  const sampleEvery = opts.sampleEvery ?? Math.max(1, Math.floor(jobs / 100));
  const warmupJobs = Math.floor(jobs * (opts.warmupFraction ?? 0.2));
  const log = opts.logger ?? silentLogger;
  const scratch = await deviceScratch('ota-soak-');
  const names = thingNames('soak-', agents);
  const setup = { stack: 0, things: 0, image: 0, connect: 0 };
  const target = { devices: agents, target: opts.target, logger: log };
  const prepared = await prepare(target, names, 'soak', 16, () => {}, setup).catch(async (err: unknown) => {
    await rm(scratch, { recursive: true, force: true });
    throw err;
  });
  const state: SoakState = { created: 0, done: 0, failures: 0, wake: () => {} };
  let host: AgentHost | undefined;
  try {
    const runId = `soak-${Date.now()}`;
    const image = await uploadImage(prepared, scratch, runId, opts.imageSize ?? 4096, '2.0.0');
    host = await startAgents(prepared, scratch, runId, state, log);
    const samples: SoakSample[] = [];
    const t0 = Date.now();
    const sample = () => {
      const s = opts.target.stackPid === undefined ? undefined : readProcStats(opts.target.stackPid);
      if (s === undefined) return;
      const point = {
        jobsDone: state.done,
        atMs: Date.now() - t0,
        rssMiB: Math.round(s.rssBytes / 104857.6) / 10,
      };
      samples.push(point);
      opts.onSample?.(point);
    };
    sample();
    let nextSample = sampleEvery;
    while (state.done < jobs) {
      if (opts.signal?.aborted) throw new AbortedError('soak stopped');
      while (state.created < jobs && state.created - state.done < 2 * agents) {
        const i = state.created++;
        const document = { firmware: { ...image.document.firmware, version: `2.0.${i + 1}` } };
        await createJob(prepared.iot, {
          jobId: `${runId}-${i}`,
          things: [names[i % agents] as string],
          document: JSON.stringify(document),
        }).catch((err: unknown) => {
          state.failures++;
          state.done++;
          state.firstFailure ??= `CreateJob ${runId}-${i}: ${errorMessage(err)}`;
        });
      }
      if (state.done >= nextSample) {
        nextSample = state.done + sampleEvery;
        sample();
        continue;
      }
      // No await between the checks above and this: a job that ends wakes the loop.
      await new Promise<void>((r) => {
        state.wake = r;
        setTimeout(r, 1000).unref();
      });
    }
    sample();
    const durationMs = Date.now() - t0;
    return {
      jobs,
      agents,
      durationMs,
      jobsPerSec: Math.round((jobs / (durationMs / 1000)) * 10) / 10,
      failures: state.failures,
      ...(state.firstFailure !== undefined ? { firstFailure: state.firstFailure } : {}),
      samples,
      warmupJobs,
      ...soakFigures(samples, warmupJobs),
    };
  } finally {
    await host?.stop('');
    await prepared.close();
    await rm(scratch, { recursive: true, force: true });
  }
}
