/**
 * Start-up of `ota agent` as users run it (`node bin/ota.js agent --local ... --once`), on an empty job
 * queue: process start → MQTT connected → start-next answered → exit. Bare `node -e 0` is the floor.
 */

import { cpuSec, dist, interleave, log, type Measured, measure } from '../lib/measure.ts';
import { runCliAgent } from '../lib/runners.ts';
import type { Stack } from '../lib/stack.ts';
import type { Params } from './params.ts';

export async function startup(stack: Stack, thing: string, scratch: string, P: Params) {
  log(`startup: ota agent --once on an empty queue, ${P.startupRuns} runs each, interleaved`);
  const fns: Array<() => Promise<Measured>> = [
    () => runCliAgent(stack, thing, scratch),
    () => runCliAgent(stack, thing, scratch, { debugLog: true }),
    () => measure([process.execPath, '-e', '0']),
    // The launcher's V8 flags off (OTA_AGENT_V8_FLAGS=''), everything else the same: their effect alone.
    () => runCliAgent(stack, thing, scratch, { env: { ...process.env, OTA_AGENT_V8_FLAGS: '' } }),
  ];
  if (P.baseline) fns.push(() => runCliAgent(stack, thing, scratch, { root: P.baseline }));
  const [silent = [], debug = [], bare = [], noFlags = [], base = []] = await interleave(P.startupRuns, fns);
  const ms = (xs: Array<number | undefined>) => dist(xs.map((x) => x ?? Number.NaN));
  return {
    onceExitMs: ms(silent.map((r) => r.wallSec * 1000)),
    onceCpuMs: ms(silent.map((r) => cpuSec(r) * 1000)),
    oncePeakRssMiB: ms(silent.map((r) => r.maxRssKiB / 1024)),
    connectedMs: ms(debug.map((r) => (r as { connectedMs?: number }).connectedMs)),
    startNextAnsweredMs: ms(debug.map((r) => (r as { startNextAnsweredMs?: number }).startNextAnsweredMs)),
    bareNodeMs: ms(bare.map((r) => r.wallSec * 1000)),
    bareNodePeakRssMiB: ms(bare.map((r) => r.maxRssKiB / 1024)),
    noFlagsExitMs: ms(noFlags.map((r) => r.wallSec * 1000)),
    noFlagsCpuMs: ms(noFlags.map((r) => cpuSec(r) * 1000)),
    noFlagsPeakRssMiB: ms(noFlags.map((r) => r.maxRssKiB / 1024)),
    ...(P.baseline
      ? {
          baselineExitMs: ms(base.map((r) => r.wallSec * 1000)),
          baselineCpuMs: ms(base.map((r) => cpuSec(r) * 1000)),
          baselinePeakRssMiB: ms(base.map((r) => r.maxRssKiB / 1024)),
        }
      : {}),
    nodeExtraCaCerts: process.env.NODE_EXTRA_CA_CERTS ?? '(unset)',
  };
}
