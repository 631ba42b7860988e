import { GiB, MiB } from '../lib/measure.ts';

/** The original's image size (docs/original.md, the job document). */
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
  /** Jobs in the soak section (10,000 in full: the stack's RSS must level off). */
  soakJobs: number;
  ranges: RangesParams;
}

/** The `ranges` section: the latency-and-cap link and the --max-rate checks. */
export interface RangesParams {
  /** Image for the adaptive and 8-connection runs through the link. */
  size: number;
  /** Image for the one-connection run (slow by design: 1/8 of the link). */
  singleSize: number;
  /** The link's cap per connection (bytes/s); the link carries 8× that in total. */
  perConnection: number;
  rttMs: number;
  runs: number;
  /** `--max-rate` on loopback: image size and rate. */
  rateSize: number;
  rate: number;
  /** `--max-rate` below the link's capacity with 8 connections: image size and rate. */
  linkRateSize: number;
  linkRate: number;
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
  soakJobs: 300,
  ranges: {
    size: 4 * MiB,
    singleSize: MiB,
    perConnection: 256 * 1024,
    rttMs: 100,
    runs: 1,
    rateSize: 8 * MiB,
    rate: 4 * MiB,
    linkRateSize: 2 * MiB,
    linkRate: 1024 * 1024,
  },
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
  fleets: [1000, 10_000],
  fleetImage: MiB,
  soakJobs: 10_000,
  ranges: {
    size: ORIGINAL_SIZE,
    singleSize: 8 * MiB,
    perConnection: 256 * 1024,
    rttMs: 100,
    runs: 3,
    rateSize: ORIGINAL_SIZE,
    rate: 20 * MiB,
    linkRateSize: 32 * MiB,
    linkRate: 1.5 * MiB,
  },
};
