/**
 * `soak`: N jobs (10,000; `--quick` 300) through a local stack in its own process (runSoak), its RSS
 * sampled as the jobs finish. Flat after warm-up means: the least-squares slope over the post-warm-up
 * samples is small (a few MiB per 10,000 jobs at most, GC noise) and the last samples are not above the
 * first ones by more than that.
 */
import { runSoak, type SoakSummary } from '../../src/sim/soak.ts';
import { loadAverage } from '../lib/measure.ts';
import { startStackProcess } from '../lib/stack.ts';

export interface SoakBenchParams {
  root: string;
  jobs: number;
  agents: number;
  log: (s: string) => void;
  problems: string[];
}

export type SoakFigures = Omit<SoakSummary, 'samples'> & {
  /** [jobs done, RSS MiB] after the warm-up, thinned to at most 50 points. */
  series: Array<[number, number]>;
  loadAvgStart: string;
  loadAvgEnd: string;
};

/** Above this the RSS is growing with the jobs rather than flat (MiB per 1,000 jobs). */
export const SOAK_SLOPE_LIMIT = 0.5;

export async function soakSection(p: SoakBenchParams): Promise<SoakFigures> {
  const stack = await startStackProcess({ root: p.root });
  const loadAvgStart = loadAverage();
  try {
    p.log(`soak: ${p.jobs} jobs, ${p.agents} agents (load ${loadAvgStart})`);
    let last = 0;
    const s = await runSoak({
      target: { kind: 'local', dataDir: stack.dataDir, stackPid: stack.proc.pid },
      jobs: p.jobs,
      agents: p.agents,
      onSample: (x) => {
        if (x.jobsDone - last >= p.jobs / 10) {
          last = x.jobsDone;
          p.log(`soak: ${x.jobsDone}/${p.jobs} jobs, stack RSS ${x.rssMiB} MiB`);
        }
      },
    });
    if (s.failures > 0) p.problems.push(`soak: ${s.failures} jobs did not succeed (${s.firstFailure})`);
    const { samples, ...rest } = s;
    const after = samples.filter((x) => x.jobsDone >= s.warmupJobs);
    const step = Math.max(1, Math.ceil(after.length / 50));
    return {
      ...rest,
      series: after
        .filter((_, i) => i % step === 0 || i === after.length - 1)
        .map((x) => [x.jobsDone, x.rssMiB]),
      loadAvgStart,
      loadAvgEnd: loadAverage(),
    };
  } finally {
    await stack.close();
  }
}

export function soakRows(s: SoakFigures, quick: boolean): Array<[string, string, string, string]> {
  const flat = s.slopeMiBPer1000Jobs <= SOAK_SLOPE_LIMIT;
  return [
    [
      `Soak: ${s.jobs} jobs through the stack (${s.agents} agents)`,
      `stack RSS after warm-up (${s.warmupJobs} jobs): ${s.afterWarmupFirstMiB} → ${s.lastMiB} MiB, slope ` +
        `${s.slopeMiBPer1000Jobs} MiB/1000 jobs, peak ${s.peakRssMiB} MiB; ${s.jobsPerSec} jobs/s, ` +
        `${s.failures} failed; load ${s.loadAvgStart} → ${s.loadAvgEnd}`,
      `flat: slope ≤ ${SOAK_SLOPE_LIMIT} MiB/1000 jobs`,
      quick ? '(quick)' : flat ? 'met' : '**missed**',
    ],
  ];
}
