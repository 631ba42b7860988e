/**
 * `fleet`: `ota sim` at scale (runFleet) — N real agents in this process against a local stack in its
 * own process, a fresh one per run, so the stack's figures are its own: memory per connected device
 * ((RSS with every agent connected and idle − RSS before) / N), CPU per job execution (its CPU from
 * CreateJob to the last SUCCEEDED / N), file descriptors per device. The wall time is CreateJob → the
 * last device's SUCCEEDED. With `--baseline DIR` the same sizes (up to `baselineMax`) also run against
 * the baseline checkout's stack, alternating with this one: the before/after.
 */
import { runFleet } from '../../src/sim/fleet.ts';
import { loadAverage } from '../lib/measure.ts';
import { startStackProcess } from '../lib/stack.ts';

export interface FleetBenchParams {
  root: string;
  fleets: number[];
  image: number;
  /** A built earlier checkout whose `ota dev` is the "before". */
  baseline?: string;
  /** Largest fleet also run against the baseline (a slow baseline would take very long at 10,000). */
  baselineMax?: number;
  timeoutSec: number;
  log: (s: string) => void;
  problems: string[];
}

export interface FleetFigures {
  stack: 'current' | 'baseline';
  devices: number;
  imageSize: number;
  wallSec: number;
  devicesPerMinute: number;
  succeeded: number;
  failed: number;
  unexpected: number;
  firstProblem?: string;
  setupSec: { things: number; connect: number };
  stackBaseRssMiB: number;
  stackConnectedRssMiB: number;
  stackPeakRssMiB: number;
  stackRssPerDeviceKiB: number;
  stackCpuSec: number;
  stackCpuPercent: number;
  stackCpuPerExecutionMs: number;
  stackFdsPerDevice: number;
  simFdsPerDevice: number;
  simRssPerDeviceKiB: number;
  simPeakRssMiB: number;
  simCpuPerDeviceMs: number;
  devicePublishesPerSec: number;
  loadAvgStart: string;
  loadAvgEnd: string;
}

const r1 = (x: number) => Math.round(x * 10) / 10;

async function oneRun(p: FleetBenchParams, n: number, which: 'current' | 'baseline'): Promise<FleetFigures> {
  const root = which === 'baseline' ? (p.baseline as string) : p.root;
  const stack = await startStackProcess({ root: root });
  const loadAvgStart = loadAverage();
  try {
    p.log(`fleet: ${n} devices × ${p.image} bytes, ${which} stack (load ${loadAvgStart})`);
    const s = await runFleet({
      devices: n,
      imageSize: p.image,
      target: { kind: 'local', dataDir: stack.dataDir, stackPid: stack.proc.pid },
      jobId: `bench-fleet-${which}-${n}-${Date.now()}`,
      timeoutMs: p.timeoutSec * 1000,
      concurrency: 64,
    });
    const st = s.stack;
    if (!st || st.baseRssMiB === undefined || st.connectedRssMiB === undefined)
      throw new Error(`fleet ${n}: no stack process figures`);
    const first = s.failures[0];
    return {
      stack: which,
      devices: n,
      imageSize: p.image,
      wallSec: s.durationMs / 1000,
      devicesPerMinute: s.devicesPerMinute,
      succeeded: s.succeeded,
      failed: s.failed,
      unexpected: s.unexpected,
      ...(first ? { firstProblem: `${first.thingName} ${first.status} ${first.reason ?? ''}`.trim() } : {}),
      setupSec: { things: s.setupMs.things / 1000, connect: s.setupMs.connect / 1000 },
      stackBaseRssMiB: st.baseRssMiB,
      stackConnectedRssMiB: st.connectedRssMiB,
      stackPeakRssMiB: st.peakRssMiB,
      stackRssPerDeviceKiB: r1(((st.connectedRssMiB - st.baseRssMiB) * 1024) / n),
      stackCpuSec: st.cpuSeconds,
      stackCpuPercent: st.cpuPercent,
      stackCpuPerExecutionMs: r1((st.cpuSeconds * 1000) / n),
      stackFdsPerDevice: r1(((st.connectedFds ?? 0) - (st.baseFds ?? 0)) / n),
      simFdsPerDevice: r1(((s.simProcess.connectedFds ?? 0) - (s.simProcess.baseFds ?? 0)) / n),
      simRssPerDeviceKiB: r1(
        (((s.simProcess.connectedRssMiB ?? 0) - (s.simProcess.baseRssMiB ?? 0)) * 1024) / n,
      ),
      simPeakRssMiB: s.simProcess.peakRssMiB,
      simCpuPerDeviceMs: r1((s.simProcess.cpuSeconds * 1000) / n),
      devicePublishesPerSec: s.mqtt.devicePublishesPerSec,
      loadAvgStart,
      loadAvgEnd: loadAverage(),
    };
  } finally {
    await stack.close();
  }
}

export async function fleetSection(p: FleetBenchParams): Promise<FleetFigures[]> {
  const out: FleetFigures[] = [];
  for (const n of p.fleets) {
    const order: Array<'current' | 'baseline'> =
      p.baseline !== undefined && n <= (p.baselineMax ?? Number.POSITIVE_INFINITY)
        ? out.length % 2 === 0
          ? ['baseline', 'current']
          : ['current', 'baseline']
        : ['current'];
    for (const which of order) {
      const f = await oneRun(p, n, which);
      if (which === 'current' && (f.failed > 0 || f.unexpected > 0 || f.succeeded !== n))
        p.problems.push(`fleet ${n}: ${f.succeeded}/${n} SUCCEEDED (${f.firstProblem ?? ''})`);
      out.push(f);
    }
  }
  return out;
}

type Row = [string, string, string, string];

export function fleetRows(runs: readonly FleetFigures[], quick: boolean): Row[] {
  return runs.map((f) => {
    const target = f.devices >= 10_000 ? '≤ 120 s, 0 failures' : '0 failures';
    const met = f.failed === 0 && f.succeeded === f.devices && (f.devices < 10_000 || f.wallSec <= 120);
    return [
      `Fleet ${f.devices} × ${Math.round(f.imageSize / 1024)} KiB (${f.stack} stack)`,
      `${f.wallSec.toFixed(1)} s job→all SUCCEEDED, ${f.succeeded}/${f.devices} SUCCEEDED, ${f.failed} failed; ` +
        `stack: ${f.stackRssPerDeviceKiB} KiB RSS/connected device, ${f.stackCpuPerExecutionMs} ms CPU/execution ` +
        `(${f.stackCpuPercent}% of a core), ${f.stackFdsPerDevice} fds/device, peak RSS ${f.stackPeakRssMiB} MiB; ` +
        `agents: ${f.simRssPerDeviceKiB} KiB RSS/device, ${f.simCpuPerDeviceMs} ms CPU/device, ${f.simFdsPerDevice} fds/device; ` +
        `load ${f.loadAvgStart} → ${f.loadAvgEnd}`,
      target,
      f.stack === 'baseline' ? '(before)' : quick ? '(quick)' : met ? 'met' : '**missed**',
    ];
  });
}
