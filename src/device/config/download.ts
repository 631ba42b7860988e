import { z } from 'zod';
import { ValidationError } from '../../shared/errors.ts';
import { DEFAULT_MIN_FREE, type MinFree } from '../download/disk-space.ts';

/**
 * The download's options of the agent config: schema fragments merged into agent-config.ts's
 * RawSchema, and their normalisation. Same sources as every option: flags, `OTA_*` env, the config file.
 *
 * - `connections`: `auto` (default: 1 to 8, adaptive) or a fixed count 1–16.
 * - `maxRate`: bytes/s over all connections (`500kB`, `1MiB`, `2000000`; 0 = unlimited). Read again from
 *   the config file while downloading, so it can be changed without losing the download.
 * - `minFree`: free space to keep after the download: `5%` (default, of the file system) or a size.
 * - `stallTimeoutMs`: no byte for this long → drop the connection and resume (default 60 s; 0 = off).
 * - `stepTimeoutMinutes`: the job's step timer, set and renewed while bytes flow (default 10; 0 = off).
 */
export interface DownloadConfig {
  connections: number | 'auto';
  maxRate: number;
  /** The config file `maxRate` is re-read from while downloading (set when neither a flag nor the environment sets it). */
  maxRateFile?: string;
  minFree: MinFree;
  stallTimeoutMs: number;
  stepTimeoutMinutes: number;
}

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1e3,
  k: 1e3,
  kib: 1024,
  mb: 1e6,
  m: 1e6,
  mib: 1024 ** 2,
  gb: 1e9,
  g: 1e9,
  gib: 1024 ** 3,
};

/** `1048576`, `1MiB`, `500 kB`, `2M` → bytes (integer); undefined when it is not a size. */
export function parseByteSize(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*(?:\/s)?\s*$/i.exec(v);
  const unit = UNITS[(m?.[2] ?? '').toLowerCase()];
  if (!m || unit === undefined) return undefined;
  const n = Math.round(Number(m[1]) * unit);
  return Number.isSafeInteger(n) ? n : undefined;
}

const byteSize = (what: string) =>
  z.union([z.number(), z.string()]).transform((v, ctx) => {
    const n = parseByteSize(v);
    if (n === undefined) {
      ctx.addIssue({ code: 'custom', message: `must be ${what} like 1048576, 500kB or 2MiB` });
      return z.NEVER;
    }
    return n;
  });

const intIn = (min: number, max: number, error = `must be an integer ${min}-${max}`) =>
  z.coerce
    .number({ error: 'must be a number' })
    .refine((n) => Number.isInteger(n) && n >= min && n <= max, { error });

/** `--max-rate`'s schema (also used when the config file is re-read). */
export const MaxRateSchema = byteSize('bytes per second');

export const DOWNLOAD_FIELDS = {
  connections: z
    .union([z.literal('auto'), intIn(1, 16, 'must be auto or an integer 1-16')], {
      error: 'must be auto or an integer 1-16',
    })
    .default('auto'),
  maxRate: MaxRateSchema.default(0),
  minFree: z
    .union([z.number(), z.string()])
    .transform((v, ctx): MinFree => {
      const pct = typeof v === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(v) : null;
      if (pct && Number(pct[1]) <= 50) return { percent: Number(pct[1]) };
      const n = parseByteSize(v);
      if (n !== undefined) return { bytes: n };
      ctx.addIssue({
        code: 'custom',
        message: 'must be a percentage of the file system (0-50%) or a size like 64MiB',
      });
      return z.NEVER;
    })
    .default(DEFAULT_MIN_FREE),
  stallTimeoutMs: intIn(0, 3_600_000).default(60_000),
  stepTimeoutMinutes: intIn(0, 10_080).default(10),
};

type Parsed = {
  connections: number | 'auto';
  maxRate: number;
  minFree: MinFree;
  stallTimeoutMs: number;
  stepTimeoutMinutes: number;
  statusDetailsIntervalMs: number;
};

/**
 * Checks the options against each other and returns them. `maxRateFile`: the config file, when `maxRate`
 * is not fixed by a flag or the environment (those win over the file, so re-reading it would change nothing).
 */
/**
 * The interval of the download's statusDetails updates: the configured one, but at least two per step
 * timer while one is set, because those updates are what renews it (a long `statusDetailsIntervalMs`
 * must not time a healthy download out).
 */
export function statusDetailsInterval(cfg: {
  statusDetailsIntervalMs: number;
  stepTimeoutMinutes: number;
}): number {
  if (cfg.stepTimeoutMinutes <= 0) return cfg.statusDetailsIntervalMs;
  return Math.min(cfg.statusDetailsIntervalMs, (cfg.stepTimeoutMinutes * 60_000) / 2);
}

export function normaliseDownloadConfig(c: Parsed, maxRateFile: string | undefined): DownloadConfig {
  if (c.stepTimeoutMinutes > 0) {
    const stepMs = c.stepTimeoutMinutes * 60_000;
    if (c.stallTimeoutMs >= stepMs) {
      throw new ValidationError(
        'stallTimeoutMs',
        `must be shorter than stepTimeoutMinutes (${c.stepTimeoutMinutes} min), or a stall times the job out before it is noticed`,
      );
    }
  }
  return {
    connections: c.connections,
    maxRate: c.maxRate,
    ...(maxRateFile ? { maxRateFile } : {}),
    minFree: c.minFree,
    stallTimeoutMs: c.stallTimeoutMs,
    stepTimeoutMinutes: c.stepTimeoutMinutes,
  };
}
