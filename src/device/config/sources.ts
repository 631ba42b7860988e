/**
 * The agent configuration's schema and its sources: the zod schema of every key (RawSchema), and how each
 * source (flags, `OTA_*` environment variables, a JSON config file, `--local`'s endpoints.json) is read
 * into the schema's keys and merged, highest first. agent-config.ts parses the merge and normalises it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { type Endpoints, readEndpoints } from '../../shared/endpoints.ts';
import { ConfigError, ValidationError } from '../../shared/errors.ts';
import { DEVICE_TYPE } from '../../shared/firmware-document.ts';
import { THING_NAME_PATTERN } from '../../shared/topics.ts';
import { isValidVersion } from '../document/version.ts';
import { isValidTimeZone } from '../progress/message.ts';
import { DOWNLOAD_FIELDS } from './download.ts';
import { type ConfigWarning, DURATION_KEYS, normaliseDurations, unknownKeyWarnings } from './keys.ts';

const positiveInt = (field: string, min: number, max: number) =>
  z.coerce
    .number({ error: `must be a number` })
    .refine((n) => Number.isInteger(n) && n >= min && n <= max, { error: `must be an integer ${min}-${max}` })
    .describe(field);

const bool = z
  .union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no'])])
  .transform((v) => v === true || v === 'true' || v === '1' || v === 'yes');

/** A shell command line: one line, no NUL (it goes to `/bin/sh -c`). */
const command = z
  .string()
  .min(1)
  // biome-ignore lint/suspicious/noControlCharactersInRegex: NUL and newlines are what it refuses
  .refine((c) => !/[\u0000\r\n]/.test(c), { error: 'must be one line without NUL' })
  .optional();

export const RawSchema = z.object({
  endpoint: z.string().min(1, { error: 'required' }),
  port: z.coerce
    .number({ error: 'must be 1-65535' })
    .refine((n) => Number.isInteger(n) && n >= 1 && n <= 65535, { error: 'must be 1-65535' })
    .default(8883),
  rootCa: z.string().min(1).optional(),
  cert: z.string().min(1, { error: 'required' }),
  key: z.string().min(1, { error: 'required' }),
  thingName: z.string().regex(THING_NAME_PATTERN, { error: `must match ${THING_NAME_PATTERN.source}` }),
  clientId: z.string().min(1).max(128).optional(),
  mode: z
    .enum(['both', 'publish', 'subscribe'], { error: 'must be both, publish or subscribe' })
    // The original's default (JobProgress.py `-m both`): run jobs, publish and print what the topic carries.
    .default('both'),
  topic: z
    .string()
    .min(1)
    .refine((t) => !/[#+]/.test(t) && Buffer.byteLength(t) <= 256, {
      error: 'must be a topic name ≤ 256 bytes without wildcards',
    })
    .optional(),
  currentVersion: z
    .union([z.string(), z.number()])
    .transform((v) => String(v))
    .refine(isValidVersion, { error: 'must be a version like 41811019 or 1.2.3' })
    .optional(),
  downloadDir: z.string().min(1).default('firmware'),
  stateDir: z.string().min(1).optional(),
  tz: z
    .string()
    .refine(isValidTimeZone, { error: 'must be an IANA time zone like America/Chicago' })
    .optional(),
  progressIntervalMs: positiveInt('progressIntervalMs', 0, 3_600_000).default(1000),
  statusDetailsIntervalMs: positiveInt('statusDetailsIntervalMs', 0, 3_600_000).default(10_000),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  local: z.string().min(1).optional(),
  region: z
    .string()
    .regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, { error: 'must be an AWS region like us-west-2' })
    .optional(),
  roleAlias: z
    .string()
    .regex(/^[\w=,@-]{1,128}$/, { error: 'must be a role alias name' })
    .optional(),
  credentialsEndpoint: z.string().min(1).optional(),
  s3Endpoint: z.url({ error: 'must be a URL' }).optional(),
  s3AccessKeyId: z.string().min(1).optional(),
  s3SecretAccessKey: z.string().min(1).optional(),
  once: bool.default(false),
  keepaliveSec: positiveInt('keepaliveSec', 30, 1200).default(60),
  requestTimeoutMs: positiveInt('requestTimeoutMs', 100, 600_000).default(10_000),
  connectTimeoutMs: positiveInt('connectTimeoutMs', 100, 600_000).default(30_000),
  downloadRetryWindowMs: positiveInt('downloadRetryWindowMs', 0, 86_400_000).default(300_000),
  installCmd: command,
  rebootCmd: command,
  healthCmd: command,
  rollbackCmd: command,
  hookTimeoutMs: positiveInt('hookTimeoutMs', 1, 86_400_000).default(300_000),
  maxBootAttempts: positiveInt('maxBootAttempts', 1, 100).default(3),
  slots: z.string().min(1).optional(),
  trustedKeys: z
    .union([z.string().min(1), z.array(z.string().min(1)).min(1)], {
      error: 'must be a PEM file path (or PEM text), or a list of them',
    })
    .optional(),
  deviceType: z
    .string()
    .regex(DEVICE_TYPE, { error: `must match ${DEVICE_TYPE.source}` })
    .optional(),
  // Parallel ranges, --max-rate, --min-free, the stall watchdog and the step timer (download.ts).
  ...DOWNLOAD_FIELDS,
});

export type RawKey = keyof typeof RawSchema.shape;
type Source = Partial<Record<RawKey, unknown>>;
const KEYS = Object.keys(RawSchema.shape) as RawKey[];

/** `thingName` → `OTA_THING_NAME`. */
export function envName(key: string): string {
  return `OTA_${key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()}`;
}

/** A source's keys the schema knows, durations given in seconds already turned into milliseconds. */
function pick(raw: Record<string, unknown> | undefined): Source {
  const out: Source = {};
  if (!raw) return out;
  const src = normaliseDurations(raw);
  for (const k of KEYS) {
    const v = src[k];
    if (v !== undefined && v !== null && v !== '') out[k] = v;
  }
  return out;
}

function fromEnv(env: Record<string, string | undefined>): Source {
  const out: Record<string, unknown> = {};
  for (const k of [...KEYS, ...Object.keys(DURATION_KEYS)]) {
    const v = env[envName(k)];
    if (v !== undefined && v !== '') out[k] = v;
  }
  return pick(out);
}

function readConfigFile(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new ConfigError(`${path}: config file not found`);
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`${path}: not a JSON object`, { cause: err });
  }
}

function fromLocal(dataDir: string, thingName: unknown): Source {
  const ep: Endpoints = readEndpoints(dataDir);
  const out: Source = {
    endpoint: ep.mqtt.host,
    port: ep.mqtt.port,
    rootCa: ep.rootCA,
    region: ep.region,
    s3Endpoint: ep.s3.endpoint,
    s3AccessKeyId: ep.s3.accessKeyId,
    s3SecretAccessKey: ep.s3.secretAccessKey,
  };
  if (typeof thingName === 'string') {
    const t = ep.things[thingName];
    if (!t) {
      throw new ValidationError(
        'thingName',
        `"${thingName}" has no certificate in ${join(dataDir, 'endpoints.json')} (create it with \`ota thing create ${thingName}\`)`,
      );
    }
    out.cert = t.cert;
    out.key = t.key;
  }
  return out;
}

export interface ConfigSourcesInput {
  flags?: Record<string, unknown>;
  env?: Record<string, string | undefined>;
  configFile?: string;
  cwd: string;
  onWarning?: (w: ConfigWarning) => void;
}

export interface MergedSources {
  merged: Source;
  /** The config file's path as given (relative to cwd), if any. */
  cfgPath: string | undefined;
  /** Whether a flag or the environment fixed maxRate (then the config file is not re-read for it). */
  maxRateFixed: boolean;
}

/** Merges flags > env > config file > local endpoints.json (defaults are the schema's). */
export function mergeSources(input: ConfigSourcesInput): MergedSources {
  const cwd = input.cwd;
  const env = input.env ?? {};
  const flags = pick(input.flags);
  const envv = fromEnv(env);
  const cfgPath = input.configFile ?? (input.flags?.config as string | undefined) ?? env.OTA_CONFIG;
  let file: Source = {};
  if (cfgPath) {
    const path = resolve(cwd, cfgPath);
    const raw = readConfigFile(path);
    for (const w of unknownKeyWarnings(raw, KEYS, path)) input.onWarning?.(w);
    file = pick(raw);
  }
  const merged: Source = { ...file, ...envv, ...flags };
  if (merged.local !== undefined) {
    const local = fromLocal(resolve(cwd, String(merged.local)), merged.thingName);
    for (const [k, v] of Object.entries(local) as [RawKey, unknown][]) {
      if (merged[k] === undefined) merged[k] = v;
    }
  }
  return { merged, cfgPath, maxRateFixed: flags.maxRate !== undefined || envv.maxRate !== undefined };
}

/** Validates the merge against the schema; the error names the field (`required` when it is missing). */
export function parseMerged(merged: Source): z.output<typeof RawSchema> {
  const r = RawSchema.safeParse(merged);
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = issue?.path.map(String).join('.') || '(config)';
    const missing = merged[field as RawKey] === undefined;
    throw new ValidationError(field, missing ? 'required' : (issue?.message ?? 'invalid'));
  }
  return r.data;
}
