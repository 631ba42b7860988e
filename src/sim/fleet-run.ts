/**
 * The state of one simulator run while it goes (agents, what they said, timings) and the figures made
 * from it at the end: duration, MQTT counters, download times, stack and process resources.
 */

import { errorMessage } from '../shared/errors.ts';
import { type Logger, silentLogger } from '../shared/log.ts';
import type { AgentEvent, AgentHandle, AgentSummary, Hangs, SimDevice } from './device.ts';
import { isExpected } from './outcomes.ts';
import type { Prepared } from './prepare.ts';
import type { ProcStats } from './proc.ts';
import type { FleetEvent, FleetOptions, FleetSummary, ResourceFigures } from './types.ts';

const MiB = 1024 * 1024;

/** What a run works on: the prepared target, the devices with their roles, the job. */
export interface Fleet {
  prepared: Prepared;
  scratch: string;
  devices: SimDevice[];
  hangs: Hangs;
  jobId: string;
}

export interface FleetRun {
  readonly log: Logger;
  emit(e: FleetEvent): void;
  readonly setupMs: FleetSummary['setupMs'];
  jobCreatedAt: number;
  /** Epoch ms of the last terminal status an agent had accepted. */
  lastResultAt: number;
  readonly handles: Map<string, AgentHandle>;
  readonly summaries: Promise<AgentSummary | undefined>[];
  /** Devices whose agent never came up or died: thing → reason (`lost: …`). */
  readonly lost: Map<string, string>;
  /** What an agent said when its job did not succeed: thing → reason. */
  readonly reasons: Map<string, string>;
  readonly downloadSeconds: number[];
  /** Set when the run ended before the service said so (time limit, signal). */
  stoppedEarly?: string;
  onAgentEvent(d: SimDevice, e: AgentEvent): void;
  lose(d: SimDevice, reason: string): void;
}

export function newFleetRun(opts: FleetOptions, jobId: string): FleetRun {
  const log = opts.logger ?? silentLogger;
  const run: FleetRun = {
    log,
    emit(e) {
      try {
        opts.onEvent?.(e);
      } catch (err) {
        log.warn({ err: errorMessage(err) }, 'onEvent handler threw');
      }
    },
    setupMs: { stack: 0, things: 0, image: 0, connect: 0 },
    jobCreatedAt: 0,
    lastResultAt: 0,
    handles: new Map(),
    summaries: [],
    lost: new Map(),
    reasons: new Map(),
    downloadSeconds: [],
    onAgentEvent(d, e) {
      if (e.type !== 'job-result' || e.job.jobId !== jobId) return;
      const { status, reason, seconds } = e.job;
      if (seconds !== undefined) run.downloadSeconds.push(seconds);
      if (status === 'INTERRUPTED' || status === 'CANCELED') return;
      run.lastResultAt = Date.now();
      if (reason !== undefined) run.reasons.set(d.thingName, reason);
      if (!isExpected(d.role, status, false)) {
        run.emit({ type: 'device-failed', thingName: d.thingName, status, ...(reason ? { reason } : {}) });
      }
    },
    lose(d, reason) {
      if (run.lost.has(d.thingName)) return;
      run.lost.set(d.thingName, `lost: ${reason}`);
      run.emit({ type: 'device-failed', thingName: d.thingName, status: 'LOST', reason });
    },
  };
  return run;
}

/** Stops every agent (hung installs give up first) and returns their counters. */
export async function stopAgents(fleet: Fleet, run: FleetRun): Promise<AgentSummary[]> {
  fleet.hangs.releaseAll();
  await Promise.all([...run.handles.values()].map((h) => h.stop()));
  const done = await Promise.all(run.summaries);
  return done.filter((s): s is AgentSummary => s !== undefined);
}

function median(xs: number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

interface Snapshot {
  stack: ProcStats | undefined;
  own: ProcStats;
  broker: number | undefined;
}

export interface FiguresInput {
  run: FleetRun;
  jobId: string;
  succeeded: number;
  endAt: number;
  before: Snapshot;
  after: Snapshot;
  /** The stack before the agents connected, and with all of them connected and idle; this process then. */
  stackBase: ProcStats | undefined;
  stackConnected: ProcStats | undefined;
  ownBase: ProcStats;
  ownConnected: ProcStats;
  prepared: Prepared;
  agentSummaries: AgentSummary[];
}

export function figuresOf(f: FiguresInput): Pick<
  FleetSummary,
  'durationMs' | 'devicesPerMinute' | 'mqtt' | 'downloadSeconds' | 'simProcess'
> & {
  stack?: ResourceFigures;
} {
  const durationMs = Math.max(1, f.endAt - f.run.jobCreatedAt);
  const runSec = durationMs / 1000;
  const ourJob = (s: AgentSummary) => s.jobs.filter((j) => j.jobId === f.jobId);
  const sum = (g: (s: AgentSummary) => number) => f.agentSummaries.reduce((acc, s) => acc + g(s), 0);
  const devicePublishes = sum((s) => s.messagesPublished);
  const brokerPublishes = f.after.broker === undefined ? undefined : f.after.broker - (f.before.broker ?? 0);
  let stack: ResourceFigures | undefined;
  const { stack: b, own: ownBefore } = f.before;
  const { stack: a, own: ownAfter } = f.after;
  if (b && a) {
    const cpu = a.userSec + a.sysSec - b.userSec - b.sysSec;
    stack = {
      where: f.prepared.stackWhere,
      pid: a.pid,
      peakRssMiB: round(a.peakRssBytes / MiB, 1),
      ...(f.stackBase ? { baseRssMiB: round(f.stackBase.rssBytes / MiB, 1) } : {}),
      ...(f.stackConnected ? { connectedRssMiB: round(f.stackConnected.rssBytes / MiB, 1) } : {}),
      ...(f.stackBase?.fds !== undefined ? { baseFds: f.stackBase.fds } : {}),
      ...(f.stackConnected?.fds !== undefined ? { connectedFds: f.stackConnected.fds } : {}),
      cpuSeconds: round(cpu, 2),
      cpuPercent: round((cpu / runSec) * 100, 0),
    };
  }
  return {
    durationMs,
    devicesPerMinute: round((f.succeeded / durationMs) * 60_000, 0),
    mqtt: {
      devicePublishes,
      devicePublishesPerSec: round(devicePublishes / runSec, 0),
      progressMessages: sum((s) => ourJob(s).reduce((acc, j) => acc + j.progressMessages, 0)),
      jobUpdates: sum((s) => ourJob(s).reduce((acc, j) => acc + j.statusDetailsUpdates, 0)),
      ...(brokerPublishes !== undefined
        ? { brokerPublishes, brokerPublishesPerSec: round(brokerPublishes / runSec, 0) }
        : {}),
    },
    downloadSeconds: {
      median: round(median(f.run.downloadSeconds), 3),
      max: round(Math.max(0, ...f.run.downloadSeconds), 3),
    },
    ...(stack ? { stack } : {}),
    simProcess: {
      peakRssMiB: round(ownAfter.peakRssBytes / MiB, 1),
      cpuSeconds: round(ownAfter.userSec + ownAfter.sysSec - ownBefore.userSec - ownBefore.sysSec, 2),
      baseRssMiB: round(f.ownBase.rssBytes / MiB, 1),
      connectedRssMiB: round(f.ownConnected.rssBytes / MiB, 1),
      ...(f.ownBase.fds !== undefined ? { baseFds: f.ownBase.fds } : {}),
      ...(f.ownConnected.fds !== undefined ? { connectedFds: f.ownConnected.fds } : {}),
    },
  };
}
