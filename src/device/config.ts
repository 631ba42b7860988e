import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { type Endpoints, readEndpoints } from '../shared/endpoints.ts';
import { ConfigError, errorMessage, ValidationError } from '../shared/errors.ts';
import { DEVICE_TYPE } from '../shared/firmware-document.ts';
import { publicKeyFromPem } from '../shared/firmware-signature.ts';
import { progressTopic, THING_NAME_PATTERN } from '../shared/topics.ts';
import { type ConfigWarning, DURATION_KEYS, normaliseDurations, unknownKeyWarnings } from './config-keys.ts';
import { DOWNLOAD_FIELDS, type DownloadConfig, normaliseDownloadConfig } from './download-config.ts';
import { isValidTimeZone } from './progress.ts';
import { isValidVersion } from './version.ts';

/**
 * Agent configuration: zod schema → parse → normalise (paths resolved, defaults filled, the local stack's
 * endpoints.json merged in). Sources, highest first: flags, `OTA_*` environment variables, a JSON config
 * file, `--local <data-dir>`'s endpoints.json, defaults. The original JobProgress.py took -e -r -c -k -n
 * (seed, 3-3); those map to endpoint, rootCa, cert, key, thingName.
 */
export type AgentMode = 'both' | 'publish' | 'subscribe';

export type { ConfigWarning } from './config-keys.ts';

export interface AgentConfig extends DownloadConfig {
  /** MQTT host (AWS IoT ATS endpoint, or the local broker). */
  endpoint: string;
  port: number;
  /** PEM text or a file path; omitted = Node's default trust store. */
  rootCa?: string;
  /** PEM text or a file path. */
  cert: string;
  key: string;
  thingName: string;
  /** MQTT client id; AWS IoT policies usually require it to equal the thing name. */
  clientId: string;
  /** publish: run jobs and publish progress; subscribe: only print the progress topic; both: both. */
  mode: AgentMode;
  /** Progress topic, default `CarVi/test/firmware/<thing>`. */
  topic: string;
  /** Used when `<stateDir>/state.json` has no version yet. */
  currentVersion?: string;
  downloadDir: string;
  stateDir: string;
  /**
   * IANA zone for `OTA_start_time`; undefined = the system's local time (no Intl: loading ICU's zone
   * data costs ~7 MiB of RSS at start-up, docs/benchmarks.md).
   */
  tz?: string;
  progressIntervalMs: number;
  statusDetailsIntervalMs: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** The local stack's data dir, when running against `ota dev`. */
  local?: string;
  region?: string;
  roleAlias?: string;
  /** `https://<prefix>.credentials.iot.<region>.amazonaws.com` (reference section 5). */
  credentialsEndpoint?: string;
  /** S3 endpoint override (the local store). */
  s3Endpoint?: string;
  /** Static S3 credentials (the local stack's); otherwise the default chain or the IoT provider. */
  s3Credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Exit when start-next returns no execution. */
  once: boolean;
  /** MQTT keep-alive, seconds; AWS IoT accepts 30–1200 (reference section 3). */
  keepaliveSec: number;
  /** Timeout of one Jobs request before it is retried with a fresh clientToken. */
  requestTimeoutMs: number;
  /**
   * Bound of one connection attempt (TCP, TLS, CONNACK); with `once`, also of the whole wait for the
   * first connection, after which the agent exits non-zero naming the likely cause (default 30 s).
   */
  connectTimeoutMs: number;
  /**
   * The download's retry budget, in time: transient failures are retried while the last progress is at
   * most this old (default 5 min: longer than a broker or stack restart).
   */
  downloadRetryWindowMs: number;
  /** Writes the verified image into the device (`/bin/sh -c`, OTA_* variables; docs/agent.md). */
  installCmd?: string;
  /** Runs after a successful install; the agent resumes at the self-test when it starts again. */
  rebootCmd?: string;
  /** The self-test of the new version: exit 0 commits, anything else rolls back. */
  healthCmd?: string;
  /** Puts the previous version back (after a failed self-test, reboot or too many boot attempts). */
  rollbackCmd?: string;
  /** Each command's time limit (default 300 s). */
  hookTimeoutMs: number;
  /** Restarts without a commit after which the agent rolls back (default 3). */
  maxBootAttempts: number;
  /** The built-in A/B installer's directory (`<dir>/a`, `<dir>/b`, `<dir>/current`). */
  slots?: string;
  /** PEM public keys (text); with at least one, every image must carry a signature one of them verifies. */
  trustedKeys: string[];
  /** This device's type; a document whose `firmware.deviceType` differs is REJECTED. */
  deviceType?: string;
}

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

const RawSchema = z.object({
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
  // Parallel ranges, --max-rate, --min-free, the stall watchdog and the step timer (download-config.ts).
  ...DOWNLOAD_FIELDS,
});

type RawKey = keyof typeof RawSchema.shape;
const KEYS = Object.keys(RawSchema.shape) as RawKey[];

/** `thingName` → `OTA_THING_NAME`. */
export function envName(key: string): string {
  return `OTA_${key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()}`;
}

/** A source's keys the schema knows, durations given in seconds already turned into milliseconds. */
function pick(raw: Record<string, unknown> | undefined): Partial<Record<RawKey, unknown>> {
  const out: Partial<Record<RawKey, unknown>> = {};
  if (!raw) return out;
  const src = normaliseDurations(raw);
  for (const k of KEYS) {
    const v = src[k];
    if (v !== undefined && v !== null && v !== '') out[k] = v;
  }
  return out;
}

function fromEnv(env: Record<string, string | undefined>): Partial<Record<RawKey, unknown>> {
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

function fromLocal(dataDir: string, thingName: unknown): Partial<Record<RawKey, unknown>> {
  const ep: Endpoints = readEndpoints(dataDir);
  const out: Partial<Record<RawKey, unknown>> = {
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

export interface ResolveAgentConfigInput {
  /** Parsed CLI flags, camelCase keys (`thingName`, `rootCa`, ...). `config` names a JSON config file. */
  flags?: Record<string, unknown>;
  env?: Record<string, string | undefined>;
  /** Path of a JSON config file (same keys as flags); `flags.config` / `OTA_CONFIG` also work. */
  configFile?: string;
  /** Base for relative paths; default process.cwd(). */
  cwd?: string;
  /**
   * Told about what is accepted but probably wrong: an unknown key in the config file (with the known
   * key it most resembles), a retired one. Library code does not print: the CLI logs these.
   */
  onWarning?: (w: ConfigWarning) => void;
}

/**
 * Merges flags > env > config file > local endpoints.json > defaults, validates, normalises. Throws
 * ValidationError naming the field (`thingName: required`, `port: must be 1-65535`) or ConfigError for an
 * unreadable file.
 */
export function resolveAgentConfig(input: ResolveAgentConfigInput): AgentConfig {
  const cwd = input.cwd ?? process.cwd();
  const env = input.env ?? {};
  const flags = pick(input.flags);
  const envv = fromEnv(env);
  const cfgPath = input.configFile ?? (input.flags?.config as string | undefined) ?? env.OTA_CONFIG;
  let file: Partial<Record<RawKey, unknown>> = {};
  if (cfgPath) {
    const path = resolve(cwd, cfgPath);
    const raw = readConfigFile(path);
    for (const w of unknownKeyWarnings(raw, KEYS, path)) input.onWarning?.(w);
    file = pick(raw);
  }
  const merged: Partial<Record<RawKey, unknown>> = { ...file, ...envv, ...flags };
  if (merged.local !== undefined) {
    const local = fromLocal(resolve(cwd, String(merged.local)), merged.thingName);
    for (const [k, v] of Object.entries(local) as [RawKey, unknown][]) {
      if (merged[k] === undefined) merged[k] = v;
    }
  }
  const r = RawSchema.safeParse(merged);
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = issue?.path.map(String).join('.') || '(config)';
    const missing = merged[field as RawKey] === undefined;
    throw new ValidationError(field, missing ? 'required' : (issue?.message ?? 'invalid'));
  }
  const c = r.data;
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(cwd, p));
  const pemOrPath = (p: string | undefined) =>
    p === undefined ? undefined : p.includes('-----BEGIN') ? p : abs(p);
  if ((c.s3AccessKeyId === undefined) !== (c.s3SecretAccessKey === undefined)) {
    throw new ValidationError(
      c.s3AccessKeyId ? 's3SecretAccessKey' : 's3AccessKeyId',
      'required together with the other S3 key',
    );
  }
  let credentialsEndpoint = c.credentialsEndpoint;
  if (c.roleAlias && !credentialsEndpoint) {
    // The local stack serves the credentials provider on its mTLS MQTT port (ALPN http/1.1).
    if (c.local) credentialsEndpoint = `https://${c.endpoint}:${c.port}`;
    else throw new ValidationError('credentialsEndpoint', 'required with roleAlias');
  }
  const downloadDir = abs(c.downloadDir);
  const out: AgentConfig = {
    endpoint: c.endpoint,
    port: c.port,
    cert: pemOrPath(c.cert) as string,
    key: pemOrPath(c.key) as string,
    thingName: c.thingName,
    clientId: c.clientId ?? c.thingName,
    mode: c.mode,
    topic: c.topic ?? progressTopic(c.thingName),
    downloadDir,
    stateDir: c.stateDir ? abs(c.stateDir) : join(downloadDir, '.ota-state'),
    ...(c.tz ? { tz: c.tz } : {}),
    progressIntervalMs: c.progressIntervalMs,
    statusDetailsIntervalMs: c.statusDetailsIntervalMs,
    logLevel: c.logLevel,
    once: c.once,
    keepaliveSec: c.keepaliveSec,
    requestTimeoutMs: c.requestTimeoutMs,
    connectTimeoutMs: c.connectTimeoutMs,
    downloadRetryWindowMs: c.downloadRetryWindowMs,
    hookTimeoutMs: c.hookTimeoutMs,
    maxBootAttempts: c.maxBootAttempts,
    trustedKeys: trustedKeyPems(c.trustedKeys, abs),
    // maxRate is re-read from the config file while downloading, unless a flag or OTA_MAX_RATE fixes it.
    ...normaliseDownloadConfig(
      c,
      cfgPath && flags.maxRate === undefined && envv.maxRate === undefined
        ? resolve(cwd, cfgPath)
        : undefined,
    ),
  };
  if (c.slots && (c.installCmd || c.rollbackCmd)) {
    throw new ValidationError(
      'slots',
      `the built-in A/B installer cannot be combined with ${c.installCmd ? 'installCmd' : 'rollbackCmd'}`,
    );
  }
  for (const k of ['installCmd', 'rebootCmd', 'healthCmd', 'rollbackCmd'] as const) {
    const v = c[k];
    if (v !== undefined) out[k] = v;
  }
  if (c.slots) out.slots = abs(c.slots);
  if (c.deviceType) out.deviceType = c.deviceType;
  if (c.rootCa) out.rootCa = pemOrPath(c.rootCa);
  if (c.currentVersion) out.currentVersion = c.currentVersion;
  if (c.local) out.local = abs(c.local);
  const region = c.region ?? /\.iot\.([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com/.exec(c.endpoint)?.[1];
  if (region) out.region = region;
  if (c.roleAlias) out.roleAlias = c.roleAlias;
  if (credentialsEndpoint) out.credentialsEndpoint = credentialsEndpoint;
  if (c.s3Endpoint) out.s3Endpoint = c.s3Endpoint;
  if (c.s3AccessKeyId && c.s3SecretAccessKey) {
    out.s3Credentials = { accessKeyId: c.s3AccessKeyId, secretAccessKey: c.s3SecretAccessKey };
  }
  return out;
}

/**
 * `trustedKeys` as PEM texts: from a list (config file, repeated flag) or one string (environment) that
 * is PEM text (one or more keys) or comma-separated paths. Each key is parsed here, so a bad one is
 * refused at start-up with its name, never at the first signed job.
 */
function trustedKeyPems(v: string | string[] | undefined, abs: (p: string) => string): string[] {
  if (v === undefined) return [];
  const items = Array.isArray(v) ? v : v.includes('-----BEGIN') ? [v] : v.split(',');
  const pems: string[] = [];
  for (const item of items.map((x) => x.trim()).filter(Boolean)) {
    const text = item.includes('-----BEGIN') ? item : readPem(abs(item), 'trustedKeys');
    const blocks = text.match(/-----BEGIN [A-Z ]+-----[\s\S]+?-----END [A-Z ]+-----/g) ?? [];
    if (blocks.length === 0) {
      throw new ValidationError(
        'trustedKeys',
        `${item.includes('-----BEGIN') ? 'PEM text' : item}: no PEM block`,
      );
    }
    for (const pem of blocks) {
      try {
        publicKeyFromPem(pem);
      } catch (err) {
        throw new ValidationError(
          'trustedKeys',
          `${item.includes('-----BEGIN') ? 'PEM text' : item}: ${errorMessage(err)}`,
          { cause: err },
        );
      }
      pems.push(pem);
    }
  }
  return pems;
}

/** Reads a PEM given as text or a path. */
export function readPem(v: string, field = 'pem'): string {
  if (v.includes('-----BEGIN')) return v;
  try {
    return readFileSync(v, 'utf8');
  } catch (err) {
    // Name the flag, rather than a bare ENOENT from deep inside TLS setup.
    throw new ValidationError(field, `cannot read ${v} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, {
      cause: err,
    });
  }
}
