import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { z } from 'zod';
import { errorMessage, ValidationError } from '../../shared/errors.ts';
import { publicKeyFromPem } from '../../shared/firmware-signature.ts';
import { progressTopic } from '../../shared/topics.ts';
import { type DownloadConfig, normaliseDownloadConfig } from './download.ts';
import type { ConfigWarning } from './keys.ts';
import { mergeSources, parseMerged, type RawSchema } from './sources.ts';

/**
 * Agent configuration: zod schema → parse → normalise (paths resolved, defaults filled, the local stack's
 * endpoints.json merged in). Sources, highest first: flags, `OTA_*` environment variables, a JSON config
 * file, `--local <data-dir>`'s endpoints.json, defaults. The original JobProgress.py took -e -r -c -k -n
 * (docs/original.md); those map to endpoint, rootCa, cert, key, thingName. The schema and the sources are in
 * sources.ts; this file parses their merge and normalises it.
 */
export type AgentMode = 'both' | 'publish' | 'subscribe';

export type { ConfigWarning } from './keys.ts';
export { envName } from './sources.ts';

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
  /** `https://<prefix>.credentials.iot.<region>.amazonaws.com` (docs/protocol.md, Credentials provider). */
  credentialsEndpoint?: string;
  /** S3 endpoint override (the local store). */
  s3Endpoint?: string;
  /** Static S3 credentials (the local stack's); otherwise the default chain or the IoT provider. */
  s3Credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Exit when start-next returns no execution. */
  once: boolean;
  /** MQTT keep-alive, seconds; AWS IoT accepts 30–1200 (docs/protocol.md, Message broker). */
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
  const { merged, cfgPath, maxRateFixed } = mergeSources({ ...input, cwd });
  return normalise(parseMerged(merged), cwd, cfgPath && !maxRateFixed ? resolve(cwd, cfgPath) : undefined);
}

/** Parsed config → AgentConfig: paths resolved against cwd, PEMs or paths, derived defaults, cross-checks. */
function normalise(c: z.output<typeof RawSchema>, cwd: string, maxRateFile: string | undefined): AgentConfig {
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
    ...normaliseDownloadConfig(c, maxRateFile),
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
