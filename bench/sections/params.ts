import { GiB, MiB } from '../lib/measure.ts';

/** The original's image size (seed, section 3-2-1). */
export const ORIGINAL_SIZE = 87_232_512;

export interface Params {
  /**
   * `--baseline DIR`: a built checkout of an earlier commit; its `ota agent` runs side by side with this
   * one in the startup and gib sections (the "before" of docs/benchmarks.md).
   */
  baseline?: string;
  throughputSize: number;
  runs: number;
  memSmall: number;
  memLarge: number;
  gibSize: number;
  gibRuns: number;
  startupRuns: number;
  clientRuns: number;
  fleets: number[];
  fleetImage: number;
}

export const QUICK_PARAMS: Params = {
  throughputSize: 8 * MiB,
  runs: 3,
  memSmall: 4 * MiB,
  memLarge: 32 * MiB,
  gibSize: 32 * MiB,
  gibRuns: 2,
  startupRuns: 3,
  clientRuns: 1,
  fleets: [10, 50],
  fleetImage: 64 * 1024,
};

export const FULL_PARAMS: Params = {
  throughputSize: ORIGINAL_SIZE,
  runs: 7,
  memSmall: 64 * MiB,
  memLarge: GiB,
  gibSize: GiB,
  gibRuns: 3,
  startupRuns: 7,
  clientRuns: 5,
  fleets: [100, 1000],
  fleetImage: MiB,
};
