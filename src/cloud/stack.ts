import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { type Clock, systemClock } from '../shared/clock.ts';
import type { Endpoints } from '../shared/endpoints.ts';
import { ENDPOINTS_FILE } from '../shared/endpoints.ts';
import { OtaError, ValidationError } from '../shared/errors.ts';
import { type Logger, silentLogger } from '../shared/log.ts';
import { THING_NAME_PATTERN } from '../shared/topics.ts';
import type { ClientIdPolicy, RunningBroker } from './broker/types.ts';
import { createSessionTokens } from './credentials/session-tokens.ts';
import type { JobsService } from './jobs/service.ts';
import type { RunningObjectStore } from './object-store/store.ts';
import { ensureLocalCa, type LocalCa } from './pki/pki.ts';
import type { SecurityRegistry } from './security/registry.ts';
import {
  buildEndpoints,
  createClosers,
  createStackJobs,
  type LaterParts,
  type LocalCredentials,
  OPERATOR_IDENTITY,
  openStackSecurity,
  registeredThingCheck,
  type StackContext,
  type StackParts,
  startStackBroker,
  startStackControlPlane,
  startStackDashboard,
  startStackObjectStore,
} from './stack-steps.ts';

/**
 * The embedded local AWS IoT stack: MQTT broker (mTLS + WebSocket), Jobs service, control plane and S3
 * store, composed on one machine. `ota dev`, `ota demo`, the tests and the benchmarks all start it here.
 * Its state (CA, certificates, SQLite, objects, credentials) lives in the data dir and survives restarts.
 */
export interface LocalStackOptions {
  dataDir: string;
  host?: string;
  /** Ports; 0 picks a free one. `ota dev` passes its defaults, tests pass 0. */
  mqttPort?: number;
  wsPort?: number;
  /** MQTT over WebSocket over TLS; 0 (the default) picks a free port. */
  wssPort?: number;
  iotPort?: number;
  s3Port?: number;
  anonymousPort?: number;
  region?: string;
  bucket?: string;
  progressPrefix?: string;
  /** Client ids the stack's own thing certificates may use (broker/types.ts); default `thing-name`. */
  clientIds?: ClientIdPolicy;
  /**
   * Length of a Jobs "minute", so tests need not wait minutes. It scales every Jobs duration alike: step
   * and in-progress timeouts, rollout rates (per minute), scheduling distances, maintenance-window
   * durations, and the lifetime of presigned URLs (`presignedUrlConfig.expiresInSec`, at least 1 s).
   */
  minuteMs?: number;
  allowRejectFromInProgress?: boolean;
  /**
   * Serve S3 over HTTPS (a server certificate from the stack's CA, the broker's), as real S3 is; default
   * plain HTTP. endpoints.json's `s3.endpoint` then says https, and clients trust `rootCA` for it.
   */
  s3Tls?: boolean;
  /** Serve the fleet dashboard (src/dashboard) on this port (0 = free); endpoints.json gets its URL. */
  dashboardPort?: number;
  /** Jobs MQTT API requests per second per thing; over it, RequestThrottled. Default: no limit. */
  jobsRequestsPerSecondPerThing?: number;
  /** Things to ensure at start; default ['RaspberryPi_2']. */
  things?: string[];
  /**
   * The stack's clock: Jobs deadlines and rollouts, presigned-URL signing and expiry, session tokens and
   * the SigV4 checks; default the system's. Tests pass a ManualClock started at the wall time (clients
   * still sign with the wall clock, and AWS tolerates 5 minutes of skew) and move it instead of waiting.
   */
  clock?: Clock;
  logger?: Logger;
}

export interface LocalStack {
  readonly dataDir: string;
  readonly endpoints: Endpoints;
  readonly jobs: JobsService;
  readonly broker: RunningBroker;
  readonly objectStore: RunningObjectStore;
  /** Certificates, IoT policies, thing principals and role aliases made through the control plane. */
  readonly security: SecurityRegistry;
  /** Registers the thing and issues its certificate (idempotent); endpoints.json is rewritten. */
  ensureThing(thingName: string): Promise<{ cert: string; key: string }>;
  close(): Promise<void>;
}

export const DEFAULT_REGION = 'us-west-2';
export const DEFAULT_BUCKET = 'dev-korea-job';
export const DEFAULT_THING = 'RaspberryPi_2';
export { LOCAL_ACCOUNT_ID, LOCAL_ROLE_ALIAS, OPERATOR_IDENTITY } from './stack-steps.ts';

/** Credentials of the local stack, created once per data dir (they sign requests; they protect nothing). */
function loadOrCreateCredentials(dataDir: string): LocalCredentials {
  const file = join(dataDir, 'local-credentials.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as LocalCredentials;
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const id = [...randomBytes(16)].map((b) => alphabet[b % 32]).join('');
  const creds = {
    accessKeyId: `AKIALOCAL${id.slice(0, 11)}`,
    secretAccessKey: randomBytes(30).toString('base64'),
  };
  writeFileSync(file, `${JSON.stringify(creds, null, 2)}\n`, { mode: 0o600 });
  return creds;
}

/**
 * One stack per data dir: two processes on the same SQLite file, CA and object directory would each
 * believe they own the state. The lock file holds the owner's pid; a lock left by a process that is gone
 * (kill -9) is taken over.
 */
function lockDataDir(dataDir: string): () => void {
  const file = join(dataDir, 'stack.lock');
  try {
    writeFileSync(file, String(process.pid), { flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const owner = Number(readFileSync(file, 'utf8').trim());
    if (Number.isInteger(owner) && owner > 0 && isAlive(owner)) {
      throw new OtaError(
        'OTA_DATA_DIR_LOCKED',
        `${dataDir} is in use by another local stack (pid ${owner}); stop it or use another --data-dir`,
      );
    }
    writeFileSync(file, String(process.pid));
  }
  return () => {
    try {
      if (readFileSync(file, 'utf8').trim() === String(process.pid)) unlinkSync(file);
    } catch {
      // already gone
    }
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** AWS's thing-name pattern (docs/protocol.md, Topics); `operator` is the operator's certificate CN. */
function assertThingName(thingName: string): void {
  if (!THING_NAME_PATTERN.test(thingName)) {
    throw new ValidationError('thingName', `must match ${THING_NAME_PATTERN.source}`);
  }
  if (thingName === OPERATOR_IDENTITY) {
    throw new ValidationError('thingName', `"${OPERATOR_IDENTITY}" is reserved for the operator identity`);
  }
}

function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(tmp, file);
}

/** The `things` map of endpoints.json: every client certificate the local CA issued, but the operator's. */
export function listThingCertificates(ca: LocalCa): Endpoints['things'] {
  const dir = join(ca.dir, 'clients');
  const things: Endpoints['things'] = {};
  if (!existsSync(dir)) return things;
  for (const name of readdirSync(dir).sort()) {
    const m = /^(.+)\.cert\.pem$/.exec(name);
    if (!m?.[1] || m[1] === OPERATOR_IDENTITY) continue;
    const key = join(dir, `${m[1]}.key.pem`);
    if (existsSync(key)) things[m[1]] = { cert: join(dir, name), key };
  }
  return things;
}

export async function startLocalStack(options: LocalStackOptions): Promise<LocalStack> {
  const dataDir = resolve(options.dataDir);
  const logger = options.logger ?? silentLogger;
  mkdirSync(dataDir, { recursive: true });
  const closers = createClosers(logger);
  closers.add(lockDataDir(dataDir));
  const ctx: StackContext = {
    options,
    dataDir,
    host: options.host ?? '127.0.0.1',
    region: options.region ?? DEFAULT_REGION,
    bucket: options.bucket ?? DEFAULT_BUCKET,
    logger,
    clock: options.clock ?? systemClock,
    closers,
  };
  try {
    return await startStackParts(ctx);
  } catch (err) {
    await closers.closeAll();
    throw err;
  }
}

/** The steps of `startLocalStack` after the data dir is locked: PKI, stores, broker, listeners, files. */
async function startStackParts(ctx: StackContext): Promise<LocalStack> {
  const credentials = loadOrCreateCredentials(ctx.dataDir);
  const ca = await ensureLocalCa(join(ctx.dataDir, 'certs'), { hosts: [ctx.host] });
  const objectStore = await startStackObjectStore(ctx, ca, credentials);
  const later: LaterParts = {};
  const jobs = createStackJobs(ctx, objectStore, later);
  const isRegisteredThing = registeredThingCheck(jobs);
  const security = openStackSecurity(ctx, ca, isRegisteredThing);
  later.security = security;
  const sessionTokens = createSessionTokens(security.sessionTokenStore, ctx.clock);
  const parts: StackParts = { ca, credentials, jobs, security, sessionTokens, isRegisteredThing };
  const broker = await startStackBroker(ctx, parts);
  later.broker = broker;
  const controlPlane = await startStackControlPlane(ctx, parts);
  const endpoints = await buildEndpoints(ctx, { ca, credentials, broker }, controlPlane, objectStore);
  await startStackDashboard(ctx, endpoints);

  const endpointsFile = join(ctx.dataDir, ENDPOINTS_FILE);
  const ensureThing = async (thingName: string) => {
    assertThingName(thingName);
    if (!isRegisteredThing(thingName)) jobs.controlPlane.createThing({ thingName });
    const issued = await ca.issueClientCert(thingName);
    endpoints.things = listThingCertificates(ca);
    writeJsonAtomic(endpointsFile, endpoints);
    return { cert: issued.certPath, key: issued.keyPath };
  };
  for (const thing of ctx.options.things ?? [DEFAULT_THING]) await ensureThing(thing);
  endpoints.things = listThingCertificates(ca);
  writeJsonAtomic(endpointsFile, endpoints);

  return {
    dataDir: ctx.dataDir,
    endpoints,
    jobs,
    broker,
    objectStore,
    security,
    ensureThing,
    close: ctx.closers.closeAll,
  };
}

/**
 * `ota thing create` against a running local stack from another process: registers the thing through the
 * control plane (so the running Jobs service sees it at once), issues its certificate with the data dir's
 * CA, and rewrites endpoints.json's `things`.
 */
export async function createLocalThing(
  dataDir: string,
  thingName: string,
  register: (thingName: string) => Promise<void>,
): Promise<{ thingName: string; cert: string; key: string }> {
  assertThingName(thingName);
  await register(thingName);
  const ca = await ensureLocalCa(join(resolve(dataDir), 'certs'));
  const issued = await ca.issueClientCert(thingName);
  const endpointsFile = join(resolve(dataDir), ENDPOINTS_FILE);
  const endpoints = JSON.parse(readFileSync(endpointsFile, 'utf8')) as Endpoints;
  endpoints.things = listThingCertificates(ca);
  writeJsonAtomic(endpointsFile, endpoints);
  return { thingName, cert: issued.certPath, key: issued.keyPath };
}
