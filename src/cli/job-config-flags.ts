/**
 * The flags for a job's configurations (rollout, abort, retry, timeout, presigned URLs, maintenance
 * windows), in the compact syntaxes of src/operator/job-configs.ts: shared by `ota job create`,
 * `ota job template create` and `ota sim`, so all three take the same flags the same way.
 */
import { type Command, InvalidArgumentError } from 'commander';
import { parseAbortCriterion, parseRetryCriterion } from '../operator/job-configs.ts';
import type { JobConfigRequest } from '../operator/jobs.ts';
import { parsePositiveInt } from './options.ts';

export const collect = (value: string, previous: string[] = []) => [...previous, value];

function parseNumber(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${flag}: must be a positive number`);
    return n;
  };
}

/**
 * Flags for the configurations a job and a job template share (AWS field names in the help).
 * `maintenanceWindows: false` leaves out `--maintenance-window` (read by the caller, not configFrom).
 */
export function withConfigFlags(cmd: Command, opts: { maintenanceWindows?: boolean } = {}): Command {
  cmd
    .option(
      '--presigned-url-expires <sec>',
      'presignedUrlConfig.expiresInSec (60-3600)',
      parsePositiveInt('--presigned-url-expires'),
    )
    .option('--presigned-url-role-arn <arn>', 'presignedUrlConfig.roleArn (AWS)')
    .option(
      '--in-progress-timeout <min>',
      'timeoutConfig.inProgressTimeoutInMinutes',
      parsePositiveInt('--in-progress-timeout'),
    )
    .option(
      '--max-per-minute <n>',
      'jobExecutionsRolloutConfig.maximumPerMinute (1-1000)',
      parsePositiveInt('--max-per-minute'),
    )
    .option('--rate-base <n>', 'exponentialRate.baseRatePerMinute (1-1000)', parsePositiveInt('--rate-base'))
    .option('--rate-factor <f>', 'exponentialRate.incrementFactor (1.1-5)', parseNumber('--rate-factor'))
    .option(
      '--rate-notified <n>',
      'rateIncreaseCriteria.numberOfNotifiedThings',
      parsePositiveInt('--rate-notified'),
    )
    .option(
      '--rate-succeeded <n>',
      'rateIncreaseCriteria.numberOfSucceededThings',
      parsePositiveInt('--rate-succeeded'),
    )
    .option('--abort <TYPE:PCT%:minN>', 'abortConfig criterion, e.g. FAILED:20%:min50 (repeatable)', collect)
    .option('--retry <TYPE:N>', 'jobExecutionsRetryConfig criterion, e.g. TIMED_OUT:3 (repeatable)', collect);
  if (opts.maintenanceWindows === false) return cmd;
  return cmd.option(
    '--maintenance-window <CRON,MIN>',
    "maintenance window, e.g. 'cron(0 2 * * ? *),120' (repeatable)",
    collect,
  );
}

export interface ConfigFlags {
  presignedUrlExpires?: number;
  presignedUrlRoleArn?: string;
  inProgressTimeout?: number;
  maxPerMinute?: number;
  rateBase?: number;
  rateFactor?: number;
  rateNotified?: number;
  rateSucceeded?: number;
  abort?: string[];
  retry?: string[];
}

export function configFrom(flags: ConfigFlags): JobConfigRequest {
  const req: JobConfigRequest = {
    presignedUrlExpiresInSec: flags.presignedUrlExpires,
    presignedUrlRoleArn: flags.presignedUrlRoleArn,
    inProgressTimeoutInMinutes: flags.inProgressTimeout,
    maxPerMinute: flags.maxPerMinute,
    abort: flags.abort?.map(parseAbortCriterion),
    retry: flags.retry?.map(parseRetryCriterion),
  };
  if (flags.rateBase !== undefined || flags.rateFactor !== undefined) {
    if (flags.rateBase === undefined || flags.rateFactor === undefined) {
      throw new InvalidArgumentError('--rate-base and --rate-factor go together (exponentialRate)');
    }
    req.exponentialRate = {
      baseRatePerMinute: flags.rateBase,
      incrementFactor: flags.rateFactor,
      numberOfNotifiedThings: flags.rateNotified,
      numberOfSucceededThings: flags.rateSucceeded,
    };
  }
  return req;
}

/** The flags that give `cfg` (configFrom's inverse), for summaries: `--max-per-minute 300 --abort …`. */
export function configFlagsText(cfg: JobConfigRequest): string {
  const parts: string[] = [];
  if (cfg.maxPerMinute !== undefined) parts.push(`--max-per-minute ${cfg.maxPerMinute}`);
  const e = cfg.exponentialRate;
  if (e !== undefined) {
    parts.push(`--rate-base ${e.baseRatePerMinute} --rate-factor ${e.incrementFactor}`);
    if (e.numberOfNotifiedThings !== undefined) parts.push(`--rate-notified ${e.numberOfNotifiedThings}`);
    if (e.numberOfSucceededThings !== undefined) parts.push(`--rate-succeeded ${e.numberOfSucceededThings}`);
  }
  for (const a of cfg.abort ?? [])
    parts.push(`--abort ${a.failureType}:${a.thresholdPercentage}%:min${a.minNumberOfExecutedThings}`);
  for (const r of cfg.retry ?? []) parts.push(`--retry ${r.failureType}:${r.numberOfRetries}`);
  if (cfg.inProgressTimeoutInMinutes !== undefined)
    parts.push(`--in-progress-timeout ${cfg.inProgressTimeoutInMinutes}`);
  if (cfg.presignedUrlExpiresInSec !== undefined)
    parts.push(`--presigned-url-expires ${cfg.presignedUrlExpiresInSec}`);
  return parts.join(' ');
}
