/**
 * The state of one simulator run while it goes (agents, what they said, timings) and the figures made
 * from it at the end: duration, MQTT counters, download times, stack and process resources.
 *
 * Wall-clock timestamps: they measure the real run (see fleet.ts).
 */

import { errorMessage } from '../shared/errors.ts';
import { type Logger, silentLogger } from '../shared/log.ts';
import type { AgentHost, AgentTotals, HostEvent } from './agent-host.ts';
import type { SimDevice } from './device.ts';
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
  host: AgentHost;
  jobId: string;
}

export interface FleetRun {
  readonly log: Logger;
  emit(e: FleetEvent): void;
  readonly setupMs: FleetSummary['setupMs'];
  jobCreatedAt: number;
  /** Epoch ms of the last terminal status an agent had accepted. */
  lastResultAt: number;
  /** Devices whose agent has connected (or was lost while connecting): counted once each. */
  readonly connected: Set<string>;
  /** Devices whose agent never came up or died: thing → reason (`lost: …`). */
  readonly lost: Map<string, string>;
  /** What an agent said when its job did not succeed: thing → reason. */
  readonly reasons: Map<string, string>;
  readonly downloadSeconds: number[];
  /** Set when the run ended before the service said so (time limit, signal). */
  stoppedEarly?: string;
  onAgentEvent(d: SimDevice, e: HostEvent): void;
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
    connected: new Set(),
    lost: new Map(),
    reasons: new Map(),
    downloadSeconds: [],
    onAgentEvent(d, e) {
      if (e.type === 'lost') return run.lose(d, e.reason);
      if (e.type !== 'result' || e.jobId !== jobId) return;
      const { status, reason, seconds } = e;
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
  /** This process and the worker processes. */
  sim: ProcStats[];
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
  simBase: ProcStats[];
  simConnected: ProcStats[];
  prepared: Prepared;
  totals: AgentTotals;
}

const total = (xs: ProcStats[], f: (s: ProcStats) => number) => xs.reduce((a, s) => a + f(s), 0);
/** CPU seconds the processes of `after` used since `before` (matched by pid; a new one from zero). */
function cpuSince(before: ProcStats[], after: ProcStats[]): number {
  return total(after, (a) => {
    const b = before.find((x) => x.pid === a.pid);
    return a.userSec + a.sysSec - (b ? b.userSec + b.sysSec : 0);
  });
}

function stackFigures(f: FiguresInput, runSec: number): ResourceFigures | undefined {
  const b = f.before.stack;
  const a = f.after.stack;
  if (!b || !a) return undefined;
  const cpu = a.userSec + a.sysSec - b.userSec - b.sysSec;
  return {
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

export function figuresOf(f: FiguresInput): Pick<
  FleetSummary,
  'durationMs' | 'devicesPerMinute' | 'mqtt' | 'downloadSeconds' | 'simProcess'
> & {
  stack?: ResourceFigures;
} {
  const durationMs = Math.max(1, f.endAt - f.run.jobCreatedAt);
  const runSec = durationMs / 1000;
  const { devicePublishes, progressMessages, jobUpdates } = f.totals;
  const brokerPublishes = f.after.broker === undefined ? undefined : f.after.broker - (f.before.broker ?? 0);
  const stack = stackFigures(f, runSec);
  const rss = (xs: ProcStats[]) => round(total(xs, (x) => x.rssBytes) / MiB, 1);
  const fds = (xs: ProcStats[]) =>
    xs.every((x) => x.fds !== undefined) ? total(xs, (x) => x.fds ?? 0) : undefined;
  const baseFds = fds(f.simBase);
  const connectedFds = fds(f.simConnected);
  return {
    durationMs,
    devicesPerMinute: round((f.succeeded / durationMs) * 60_000, 0),
    mqtt: {
      devicePublishes,
      devicePublishesPerSec: round(devicePublishes / runSec, 0),
      progressMessages,
      jobUpdates,
      ...(brokerPublishes !== undefined
        ? { brokerPublishes, brokerPublishesPerSec: round(brokerPublishes / runSec, 0) }
        : {}),
    },
    downloadSeconds: {
      median: round(median(f.run.downloadSeconds), 3),
      max: round(
        f.run.downloadSeconds.reduce((m, x) => Math.max(m, x), 0),
        3,
      ),
    },
    ...(stack ? { stack } : {}),
    simProcess: {
      processes: f.after.sim.length,
      // A sum of peaks: an upper bound of the processes' peak together.
      peakRssMiB: round(total(f.after.sim, (x) => x.peakRssBytes) / MiB, 1),
      cpuSeconds: round(cpuSince(f.before.sim, f.after.sim), 2),
      baseRssMiB: rss(f.simBase),
      connectedRssMiB: rss(f.simConnected),
      ...(baseFds !== undefined ? { baseFds } : {}),
      ...(connectedFds !== undefined ? { connectedFds } : {}),
      ...(connectedFds !== undefined
        ? { maxProcessFds: f.simConnected.reduce((m, x) => Math.max(m, x.fds ?? 0), 0) }
        : {}),
    },
  };
}
