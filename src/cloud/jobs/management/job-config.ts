/**
 * Validation of the job configurations (AWS IoT developer guide, "Job configurations"; API reference
 * shapes JobExecutionsRolloutConfig, AbortConfig, JobExecutionsRetryConfig, TimeoutConfig,
 * PresignedUrlConfig, SchedulingConfig, MaintenanceWindow), shared by CreateJob and CreateJobTemplate.
 *
 * Range violations are worded as AWS words them ("1 validation error detected: Value '0' at
 * 'jobExecutionsRolloutConfig.maximumPerMinute' failed to satisfy constraint: Member must have value
 * greater than or equal to 1"); rules across fields get a sentence that names the fields.
 */

import { cronProblem } from '../lifecycle/maintenance.ts';
import type {
  AbortConfig,
  JobConfigs,
  JobExecutionsRetryConfig,
  JobExecutionsRolloutConfig,
  MaintenanceWindow,
  SchedulingConfig,
} from '../types.ts';
import { cpErr } from './common.ts';

const FAILURE_TYPES = ['FAILED', 'REJECTED', 'TIMED_OUT', 'ALL'] as const;
const RETRYABLE_FAILURE_TYPES = ['FAILED', 'TIMED_OUT', 'ALL'] as const;
const END_BEHAVIORS = ['STOP_ROLLOUT', 'CANCEL', 'FORCE_CANCEL'] as const;
/** Local limit: every window is evaluated on each rollout tick. */
export const MAX_MAINTENANCE_WINDOWS = 10;
const MINUTES_PER_YEAR = 365 * 24 * 60;

const invalid = (message: string) => cpErr('InvalidRequestException', message);
const constraint = (path: string, value: unknown, rule: string) =>
  invalid(
    `1 validation error detected: Value '${String(value)}' at '${path}' failed to satisfy constraint: ${rule}`,
  );

function number(
  path: string,
  v: unknown,
  opts: { min?: number; max?: number; integer?: boolean; decimals?: number },
) {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalid(`${path}: expected a number`);
  if (opts.integer === true && !Number.isInteger(v)) throw invalid(`${path}: expected an integer`);
  if (opts.min !== undefined && v < opts.min) {
    throw constraint(path, v, `Member must have value greater than or equal to ${opts.min}`);
  }
  if (opts.max !== undefined && v > opts.max) {
    throw constraint(path, v, `Member must have value less than or equal to ${opts.max}`);
  }
  if (
    opts.decimals !== undefined &&
    Math.abs(v * 10 ** opts.decimals - Math.round(v * 10 ** opts.decimals)) > 1e-9
  ) {
    throw invalid(
      `${path}: at most ${opts.decimals === 1 ? 'one digit' : `${opts.decimals} digits`} after the decimal point (got ${v})`,
    );
  }
  return v;
}

function oneOf<T extends string>(path: string, v: unknown, values: readonly T[]): T {
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
    throw constraint(path, v, `Member must satisfy enum value set: [${values.join(', ')}]`);
  }
  return v as T;
}

function list(path: string, v: unknown, min: number, max?: number): unknown[] {
  if (!Array.isArray(v)) throw invalid(`${path}: expected a list`);
  if (v.length < min)
    throw constraint(path, `[${v.length} items]`, `Member must have length greater than or equal to ${min}`);
  if (max !== undefined && v.length > max) {
    throw constraint(path, `[${v.length} items]`, `Member must have length less than or equal to ${max}`);
  }
  return v;
}

const obj = (path: string, v: unknown): Record<string, unknown> => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(`${path}: expected an object`);
  return v as Record<string, unknown>;
};

export function validateRolloutConfig(
  v: unknown,
  path = 'jobExecutionsRolloutConfig',
): JobExecutionsRolloutConfig {
  const o = obj(path, v);
  const out: JobExecutionsRolloutConfig = {};
  if (o.maximumPerMinute !== undefined) {
    out.maximumPerMinute = number(`${path}.maximumPerMinute`, o.maximumPerMinute, {
      min: 1,
      max: 1000,
      integer: true,
    });
  }
  if (o.exponentialRate !== undefined) {
    const p = `${path}.exponentialRate`;
    const e = obj(p, o.exponentialRate);
    const base = number(`${p}.baseRatePerMinute`, e.baseRatePerMinute, { min: 1, max: 1000, integer: true });
    const factor = number(`${p}.incrementFactor`, e.incrementFactor, { min: 1.1, max: 5, decimals: 1 });
    const c = obj(`${p}.rateIncreaseCriteria`, e.rateIncreaseCriteria);
    const criteria: { numberOfNotifiedThings?: number; numberOfSucceededThings?: number } = {};
    if (c.numberOfNotifiedThings !== undefined) {
      const n = c.numberOfNotifiedThings;
      criteria.numberOfNotifiedThings = number(`${p}.rateIncreaseCriteria.numberOfNotifiedThings`, n, {
        min: 1,
        integer: true,
      });
    }
    if (c.numberOfSucceededThings !== undefined) {
      const n = c.numberOfSucceededThings;
      criteria.numberOfSucceededThings = number(`${p}.rateIncreaseCriteria.numberOfSucceededThings`, n, {
        min: 1,
        integer: true,
      });
    }
    if (criteria.numberOfNotifiedThings === undefined && criteria.numberOfSucceededThings === undefined) {
      throw invalid(`${p}.rateIncreaseCriteria: give numberOfNotifiedThings or numberOfSucceededThings`);
    }
    out.exponentialRate = {
      baseRatePerMinute: base,
      incrementFactor: factor,
      rateIncreaseCriteria: criteria,
    };
  }
  return out;
}

export function validateAbortConfig(v: unknown, path = 'abortConfig'): AbortConfig {
  const o = obj(path, v);
  const items = list(`${path}.criteriaList`, o.criteriaList, 1);
  return {
    criteriaList: items.map((item, i) => {
      const p = `${path}.criteriaList.${i + 1}.member`;
      const c = obj(p, item);
      return {
        failureType: oneOf(`${p}.failureType`, c.failureType, FAILURE_TYPES),
        action: oneOf(`${p}.action`, c.action, ['CANCEL'] as const),
        thresholdPercentage: number(`${p}.thresholdPercentage`, c.thresholdPercentage, {
          min: 0,
          max: 100,
          decimals: 2,
        }),
        minNumberOfExecutedThings: number(`${p}.minNumberOfExecutedThings`, c.minNumberOfExecutedThings, {
          min: 1,
          integer: true,
        }),
      };
    }),
  };
}

export function validateRetryConfig(v: unknown, path = 'jobExecutionsRetryConfig'): JobExecutionsRetryConfig {
  const o = obj(path, v);
  const items = list(`${path}.criteriaList`, o.criteriaList, 1, 2);
  const criteriaList = items.map((item, i) => {
    const p = `${path}.criteriaList.${i + 1}.member`;
    const c = obj(p, item);
    return {
      failureType: oneOf(`${p}.failureType`, c.failureType, RETRYABLE_FAILURE_TYPES),
      numberOfRetries: number(`${p}.numberOfRetries`, c.numberOfRetries, { min: 0, max: 10, integer: true }),
    };
  });
  const types = criteriaList.map((c) => c.failureType);
  if (new Set(types).size !== types.length)
    throw invalid(`${path}.criteriaList: each failureType may appear once`);
  if (types.includes('ALL') && types.length > 1) {
    throw invalid(`${path}.criteriaList: ALL already covers FAILED and TIMED_OUT; give it alone`);
  }
  const total = criteriaList.reduce((n, c) => n + c.numberOfRetries, 0);
  if (total > 10) {
    throw invalid(
      `${path}.criteriaList: at most 10 retries for a device across all failure types (got ${total})`,
    );
  }
  return { criteriaList };
}

export function validateMaintenanceWindows(v: unknown, path: string, now: number): MaintenanceWindow[] {
  const items = list(path, v, 1, MAX_MAINTENANCE_WINDOWS);
  return items.map((item, i) => {
    const p = `${path}.${i + 1}.member`;
    const w = obj(p, item);
    if (typeof w.startTime !== 'string' || w.startTime.length < 1 || w.startTime.length > 256) {
      throw invalid(
        `${p}.startTime: expected a cron expression of 1–256 characters, e.g. cron(0 2 ? * SAT *)`,
      );
    }
    const problem = cronProblem(w.startTime, now);
    if (problem !== undefined) throw invalid(`${p}.startTime: ${problem}`);
    return {
      startTime: w.startTime,
      durationInMinutes: number(`${p}.durationInMinutes`, w.durationInMinutes, {
        min: 1,
        max: 1430,
        integer: true,
      }),
    };
  });
}

/** `YYYY-MM-DDTHH:MM` (UTC, AWS's documented form) or any ISO 8601 date-time; epoch milliseconds. */
export function parseScheduleTime(path: string, v: unknown): number {
  if (typeof v !== 'string' || v.length < 1 || v.length > 64) {
    throw invalid(`${path}: expected a date and time of 1–64 characters (YYYY-MM-DDTHH:MM, UTC)`);
  }
  const m = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/.exec(v);
  const t = m === null ? Number.NaN : Date.parse(`${m[1]}T${m[2]}${m[3] ?? ''}${m[5] ?? 'Z'}`);
  if (!Number.isFinite(t)) throw invalid(`${path}: '${v}' is not a date and time (YYYY-MM-DDTHH:MM, UTC)`);
  return t;
}

/**
 * SchedulingConfig rules: startTime 30 minutes to a year ahead; endTime 30 minutes to two years ahead and
 * 30 minutes to two years after startTime. Minutes are the service's (scaled) minutes.
 */
export function validateSchedulingConfig(v: unknown, now: number, minuteMs: number): SchedulingConfig {
  const path = 'schedulingConfig';
  const o = obj(path, v);
  const out: SchedulingConfig = {};
  const minutes = (n: number) => n * minuteMs;
  let start = now;
  if (o.startTime !== undefined) {
    start = parseScheduleTime(`${path}.startTime`, o.startTime);
    if (start < now + minutes(30)) throw invalid(`${path}.startTime: must be at least 30 minutes from now`);
    if (start > now + minutes(MINUTES_PER_YEAR))
      throw invalid(`${path}.startTime: must be at most a year from now`);
    out.startTime = o.startTime as string;
  }
  if (o.endTime !== undefined) {
    const end = parseScheduleTime(`${path}.endTime`, o.endTime);
    if (end < now + minutes(30)) throw invalid(`${path}.endTime: must be at least 30 minutes from now`);
    if (end > now + minutes(2 * MINUTES_PER_YEAR))
      throw invalid(`${path}.endTime: must be at most two years from now`);
    if (end < start + minutes(30))
      throw invalid(`${path}.endTime: must be at least 30 minutes after startTime`);
    if (end > start + minutes(2 * MINUTES_PER_YEAR))
      throw invalid(`${path}.endTime: must be at most two years after startTime`);
    out.endTime = o.endTime as string;
  }
  if (o.endBehavior !== undefined)
    out.endBehavior = oneOf(`${path}.endBehavior`, o.endBehavior, END_BEHAVIORS);
  if (o.maintenanceWindows !== undefined) {
    out.maintenanceWindows = validateMaintenanceWindows(
      o.maintenanceWindows,
      `${path}.maintenanceWindows`,
      now,
    );
  }
  return out;
}

const CONFIG_KEYS = [
  'presignedUrlConfig',
  'timeoutConfig',
  'jobExecutionsRolloutConfig',
  'abortConfig',
  'jobExecutionsRetryConfig',
] as const satisfies readonly (keyof JobConfigs)[];

/** `target` with every configuration it lacks taken from `source` (a template, a job). */
export function withConfigsFrom<T extends JobConfigs>(target: T, source: JobConfigs): T {
  const out: T = { ...target };
  for (const k of CONFIG_KEYS)
    if (out[k] === undefined && source[k] !== undefined) Object.assign(out, { [k]: source[k] });
  return out;
}

/** The configurations jobs and templates share; undefined members stay absent. */
export function validateJobConfigs(input: JobConfigs): JobConfigs {
  const out: JobConfigs = {};
  const expires = input.presignedUrlConfig?.expiresInSec;
  if (expires !== undefined && (!Number.isInteger(expires) || expires < 60 || expires > 3600)) {
    throw invalid('presignedUrlConfig.expiresInSec must be an integer from 60 to 3600');
  }
  if (input.presignedUrlConfig !== undefined) out.presignedUrlConfig = { ...input.presignedUrlConfig };
  const inProgress = input.timeoutConfig?.inProgressTimeoutInMinutes;
  if (inProgress !== undefined && (!Number.isInteger(inProgress) || inProgress < 1 || inProgress > 10080)) {
    throw invalid('timeoutConfig.inProgressTimeoutInMinutes must be an integer from 1 to 10080 (7 days)');
  }
  if (input.timeoutConfig !== undefined) out.timeoutConfig = { ...input.timeoutConfig };
  if (input.jobExecutionsRolloutConfig !== undefined) {
    out.jobExecutionsRolloutConfig = validateRolloutConfig(input.jobExecutionsRolloutConfig);
  }
  if (input.abortConfig !== undefined) out.abortConfig = validateAbortConfig(input.abortConfig);
  if (input.jobExecutionsRetryConfig !== undefined) {
    out.jobExecutionsRetryConfig = validateRetryConfig(input.jobExecutionsRetryConfig);
  }
  return out;
}
