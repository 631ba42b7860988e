import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  AddThingToThingGroupCommand,
  CreateThingCommand,
  CreateThingGroupCommand,
  DescribeEndpointCommand,
  type IoTClient,
} from '@aws-sdk/client-iot';
import { ensureLocalCa } from '../cloud/pki/pki.ts';
import { listThingCertificates, startLocalStack } from '../cloud/stack.ts';
import {
  type AgentEvent,
  type AgentHandle,
  type AgentSummary,
  resolveAgentConfig,
  startAgent,
} from '../device/index.ts';
import { iotClientFor, s3ClientFor, type Target } from '../operator/clients.ts';
import { putFirmware } from '../operator/firmware.ts';
import { writeDeterministicImage } from '../operator/image.ts';
import { createJob } from '../operator/jobs.ts';
import { ENDPOINTS_FILE, type Endpoints, readEndpoints } from '../shared/endpoints.ts';
import { AbortedError, ConfigError, errorMessage, ValidationError } from '../shared/errors.ts';
import { type Logger, silentLogger } from '../shared/log.ts';
import { JOB_ID_PATTERN, THING_NAME_PATTERN } from '../shared/topics.ts';
import { findListeningPid, ownStats, type ProcStats, readProcStats } from './proc.ts';

/**
 * The fleet simulator behind `ota sim` and the fleet benchmark: N things with their own certificates in
 * one thing group, one firmware image, one job for the group, and N real device agents (startAgent, the
 * same pipeline as `ota agent`), each with its own MQTT connection, sharing this process.
 *
 * Bounds (issue 4, "no unbounded fan-out"): at most `concurrency` agents connect at a time and at most
 * `concurrency` certificates/registrations are in flight; each agent then holds one MQTT socket, one S3
 * keep-alive socket and, while downloading, one file: about 3 fds per device here, plus as many on the
 * stack's side (6 per device when the stack is embedded in this process). See docs/benchmarks.md.
 */

export type FleetTarget =
  /** Start a local stack inside this process, in `dataDir` or a temp dir that is removed afterwards. */
  | { kind: 'embedded'; dataDir?: string }
  /** A running `ota dev`, found through `<dataDir>/endpoints.json`. */
  | { kind: 'local'; dataDir: string; stackPid?: number }
  /**
   * AWS IoT itself. The things and their certificates must already exist in AWS (`certsDir` holds
   * `<thing>.cert.pem` and `<thing>.key.pem`, the local CA's layout); the image goes to `bucket`, and the
   * agents get S3 credentials from the default chain, or from the IoT credentials provider with `roleAlias`.
   */
  | {
      kind: 'aws';
      certsDir: string;
      bucket: string;
      region?: string;
      profile?: string;
      /** ATS data endpoint; default: DescribeEndpoint(iot:Data-ATS). */
      endpoint?: string;
      rootCa?: string;
      roleAlias?: string;
      credentialsEndpoint?: string;
    };

export interface FleetOptions {
  devices: number;
  target?: FleetTarget;
  /** Bytes; default 1 MiB. */
  imageSize?: number;
  /** Default `sim-<epoch ms>`. */
  jobId?: string;
  /** Agents connecting (and certificates being issued) at the same time; default 64. */
  concurrency?: number;
  /** Thing names are `<prefix><index, 4+ digits>`; default `sim-`. */
  thingPrefix?: string;
  /** Default `sim-fleet`. */
  groupName?: string;
  /** Where images are downloaded (one dir per device); default a temp dir. Always removed afterwards. */
  scratchDir?: string;
  /** Agents' progress interval; default the agent's default (1 s). */
  progressIntervalMs?: number;
  /** Give up waiting for the fleet after this long (unfinished devices count as failures); default 10 min. */
  timeoutMs?: number;
  logger?: Logger;
  signal?: AbortSignal;
  onEvent?: (e: FleetEvent) => void;
}

export interface FleetTally {
  total: number;
  queued: number;
  inProgress: number;
  succeeded: number;
  failed: number;
}

export type FleetPhase = 'stack' | 'things' | 'image' | 'connect' | 'job' | 'run' | 'cleanup';

export type FleetEvent =
  | { type: 'phase'; phase: FleetPhase; detail?: string }
  | { type: 'setup-progress'; phase: 'things' | 'connect'; done: number; total: number }
  | { type: 'tally'; tally: FleetTally }
  | { type: 'device-failed'; thingName: string; status: string; reason?: string };

export interface ResourceFigures {
  /** 'separate' = another process (a running `ota dev`); 'shared' = this process, stack and agents together. */
  where: 'separate' | 'shared';
  pid: number;
  peakRssMiB: number;
  /** User+system CPU seconds between job creation and the end of the run. */
  cpuSeconds: number;
  /** cpuSeconds / run seconds × 100 (100 = one core busy). */
  cpuPercent: number;
}

export interface FleetSummary {
  devices: number;
  jobId: string;
  groupName: string;
  target: FleetTarget['kind'];
  imageSize: number;
  sha256: string;
  /** Certificates issued now vs found valid on disk (local targets). */
  certificates: { issued: number; reused: number };
  setupMs: { stack: number; things: number; image: number; connect: number };
  /** Job creation → the last device's terminal status accepted. */
  durationMs: number;
  succeeded: number;
  failed: number;
  failures: Array<{ thingName: string; status: string; reason?: string }>;
  devicesPerMinute: number;
  mqtt: {
    /** Every publish the agents made (Jobs requests, progress, status updates). */
    devicePublishes: number;
    devicePublishesPerSec: number;
    progressMessages: number;
    jobUpdates: number;
    /** Broker counters (only when the stack is embedded): publishes in + out during the run. */
    brokerPublishes?: number;
    brokerPublishesPerSec?: number;
  };
  /** Per-device download seconds (first byte requested → renamed): median and max. */
  downloadSeconds: { median: number; max: number };
  stack?: ResourceFigures;
  /** This process (the agents, and the stack too when embedded). */
  simProcess: { peakRssMiB: number; cpuSeconds: number };
  scratchRemoved: boolean;
}

const MiB = 1024 * 1024;
const DEFAULT_CONCURRENCY = 64;
/** The version every simulated device starts from; the job offers a newer one. */
const START_VERSION = '1.0.0';
/** An agent that has not connected and asked for work by then counts as failed (it keeps trying). */
const CONNECT_TIMEOUT_MS = 60_000;

/** Runs `fn` over `items` with at most `limit` in flight. */
async function mapBounded<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
  signal?: AbortSignal,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      if (signal?.aborted) throw signal.reason ?? new AbortedError('aborted');
      const i = next++;
      out[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export function thingNames(prefix: string, n: number): string[] {
  const width = Math.max(4, String(n).length);
  return Array.from({ length: n }, (_, i) => `${prefix}${String(i + 1).padStart(width, '0')}`);
}

const ignoreExists = (err: unknown) => {
  if ((err as { name?: string }).name !== 'ResourceAlreadyExistsException') throw err;
};

interface Device {
  thingName: string;
  cert: string;
  key: string;
}

interface Prepared {
  iot: IoTClient;
  target: Target;
  devices: Device[];
  agentBase: Record<string, unknown>;
  bucket: string;
  region: string;
  certificates: { issued: number; reused: number };
  stackResources: () => ProcStats | undefined;
  stackWhere: 'separate' | 'shared';
  brokerPublishes?: () => number;
  close: () => Promise<void>;
}

function median(xs: number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(tmp, file);
}

/** Registers the things in the local stack and issues (or reuses) their certificates, `limit` at a time. */
async function prepareLocalThings(
  dataDir: string,
  endpoints: Endpoints,
  iot: IoTClient,
  names: string[],
  groupName: string,
  limit: number,
  emit: (e: FleetEvent) => void,
  signal?: AbortSignal,
): Promise<{ devices: Device[]; issued: number; reused: number }> {
  const ca = await ensureLocalCa(join(dataDir, 'certs'));
  await iot.send(new CreateThingGroupCommand({ thingGroupName: groupName })).catch(ignoreExists);
  const before = new Set(Object.keys(listThingCertificates(ca)));
  let done = 0;
  const devices = await mapBounded(
    names,
    limit,
    async (thingName) => {
      await iot.send(new CreateThingCommand({ thingName })).catch(ignoreExists);
      await iot.send(new AddThingToThingGroupCommand({ thingGroupName: groupName, thingName }));
      const issued = await ca.issueClientCert(thingName);
      done++;
      if (done % 50 === 0 || done === names.length) {
        emit({ type: 'setup-progress', phase: 'things', done, total: names.length });
      }
      return { thingName, cert: issued.certPath, key: issued.keyPath };
    },
    signal,
  );
  // endpoints.json lists every thing certificate, so `ota agent --local <dir> -n sim-0001` works too.
  // Written once here rather than once per thing (stack.ts's ensureThing rewrites it on each call).
  const file = join(dataDir, ENDPOINTS_FILE);
  const fresh = JSON.parse(readFileSync(file, 'utf8')) as Endpoints;
  fresh.things = listThingCertificates(ca);
  writeJsonAtomic(file, fresh);
  endpoints.things = fresh.things;
  const reused = names.filter((n) => before.has(n)).length;
  return { devices, issued: names.length - reused, reused };
}

async function prepare(
  opts: FleetOptions,
  names: string[],
  groupName: string,
  limit: number,
  emit: (e: FleetEvent) => void,
  timing: FleetSummary['setupMs'],
): Promise<Prepared> {
  const target = opts.target ?? { kind: 'embedded' };
  if (target.kind === 'aws') {
    const t: Target = { kind: 'aws', region: target.region, profile: target.profile };
    const iot = iotClientFor(t);
    const region = target.region ?? (await iot.config.region());
    const endpoint =
      target.endpoint ??
      (await iot.send(new DescribeEndpointCommand({ endpointType: 'iot:Data-ATS' }))).endpointAddress;
    if (!endpoint)
      throw new ConfigError('DescribeEndpoint returned no iot:Data-ATS endpoint; pass --endpoint');
    const t0 = Date.now();
    emit({ type: 'phase', phase: 'things', detail: `${names.length} things from ${target.certsDir}` });
    const devices: Device[] = names.map((thingName) => {
      const cert = join(target.certsDir, `${thingName}.cert.pem`);
      const key = join(target.certsDir, `${thingName}.key.pem`);
      if (!existsSync(cert) || !existsSync(key)) {
        throw new ConfigError(
          `${target.certsDir}: no ${thingName}.cert.pem / ${thingName}.key.pem (create the things and their certificates in AWS first, see docs/benchmarks.md)`,
        );
      }
      return { thingName, cert, key };
    });
    await iot.send(new CreateThingGroupCommand({ thingGroupName: groupName })).catch(ignoreExists);
    await mapBounded(devices, Math.min(limit, 10), (d) =>
      iot.send(new AddThingToThingGroupCommand({ thingGroupName: groupName, thingName: d.thingName })),
    );
    timing.things = Date.now() - t0;
    return {
      iot,
      target: t,
      devices,
      bucket: target.bucket,
      region,
      agentBase: {
        endpoint,
        port: 8883,
        ...(target.rootCa ? { rootCa: target.rootCa } : {}),
        ...(target.roleAlias ? { roleAlias: target.roleAlias } : {}),
        ...(target.credentialsEndpoint ? { credentialsEndpoint: target.credentialsEndpoint } : {}),
        region,
      },
      certificates: { issued: 0, reused: devices.length },
      stackResources: () => undefined,
      stackWhere: 'separate',
      close: async () => {
        iot.destroy();
      },
    };
  }

  let t0 = Date.now();
  let dataDir: string;
  let closeStack = async () => {};
  let stackResources: () => ProcStats | undefined;
  let stackWhere: 'separate' | 'shared';
  let brokerPublishes: (() => number) | undefined;
  if (target.kind === 'embedded') {
    emit({ type: 'phase', phase: 'stack', detail: 'starting an embedded local stack' });
    const temp = target.dataDir === undefined;
    dataDir = target.dataDir ? resolve(target.dataDir) : await mkdtemp(join(tmpdir(), 'ota-sim-stack-'));
    const stack = await startLocalStack({
      dataDir,
      things: [],
      logger: opts.logger?.child({ component: 'stack' }),
    });
    closeStack = async () => {
      await stack.close();
      if (temp) await rm(dataDir, { recursive: true, force: true });
    };
    stackResources = ownStats;
    stackWhere = 'shared';
    brokerPublishes = () => {
      const s = stack.broker.stats();
      return s.publishesIn + s.publishesOut;
    };
  } else {
    dataDir = resolve(target.dataDir);
    const endpoints = readEndpoints(dataDir);
    const pid = target.stackPid ?? findListeningPid(endpoints.mqtt.port);
    stackResources = () => (pid === undefined ? undefined : readProcStats(pid));
    stackWhere = pid === process.pid ? 'shared' : 'separate';
  }
  timing.stack = Date.now() - t0;
  try {
    const endpoints = readEndpoints(dataDir);
    const t: Target = { kind: 'local', endpoints };
    const iot = iotClientFor(t);
    t0 = Date.now();
    emit({
      type: 'phase',
      phase: 'things',
      detail: `${names.length} things with certificates in group ${groupName}`,
    });
    const { devices, issued, reused } = await prepareLocalThings(
      dataDir,
      endpoints,
      iot,
      names,
      groupName,
      limit,
      emit,
      opts.signal,
    );
    timing.things = Date.now() - t0;
    return {
      iot,
      target: t,
      devices,
      bucket: endpoints.s3.bucket,
      region: endpoints.region,
      agentBase: {
        endpoint: endpoints.mqtt.host,
        port: endpoints.mqtt.port,
        // PEM text, read once, rather than N reads of the same file.
        rootCa: readFileSync(endpoints.rootCA, 'utf8'),
        region: endpoints.region,
        s3Endpoint: endpoints.s3.endpoint,
        s3AccessKeyId: endpoints.s3.accessKeyId,
        s3SecretAccessKey: endpoints.s3.secretAccessKey,
      },
      certificates: { issued, reused },
      stackResources,
      stackWhere,
      ...(brokerPublishes ? { brokerPublishes } : {}),
      close: async () => {
        iot.destroy();
        await closeStack();
      },
    };
  } catch (err) {
    await closeStack();
    throw err;
  }
}

/**
 * Runs the simulation end to end and returns its figures. Throws only when the fleet cannot be set up
 * (stack, things, image, job); devices that fail are counted in the summary, not thrown.
 */
export async function runFleet(opts: FleetOptions): Promise<FleetSummary> {
  const n = opts.devices;
  if (!Number.isInteger(n) || n < 1 || n > 100_000) throw new ValidationError('devices', 'must be 1-100000');
  const imageSize = opts.imageSize ?? MiB;
  if (!Number.isInteger(imageSize) || imageSize < 1)
    throw new ValidationError('image-size', 'must be ≥ 1 byte');
  const limit = opts.concurrency ?? DEFAULT_CONCURRENCY;
  if (!Number.isInteger(limit) || limit < 1) throw new ValidationError('concurrency', 'must be ≥ 1');
  const jobId = opts.jobId ?? `sim-${Date.now()}`;
  if (!JOB_ID_PATTERN.test(jobId)) throw new ValidationError('job-id', `must match ${JOB_ID_PATTERN.source}`);
  const prefix = opts.thingPrefix ?? 'sim-';
  const groupName = opts.groupName ?? 'sim-fleet';
  const names = thingNames(prefix, n);
  if (!names.every((t) => THING_NAME_PATTERN.test(t))) {
    throw new ValidationError('thing-prefix', `thing names must match ${THING_NAME_PATTERN.source}`);
  }
  const log = opts.logger ?? silentLogger;
  const emit = (e: FleetEvent) => {
    try {
      opts.onEvent?.(e);
    } catch (err) {
      log.warn({ err: errorMessage(err) }, 'onEvent handler threw');
    }
  };
  const timeoutMs = opts.timeoutMs ?? 600_000;
  const setupMs = { stack: 0, things: 0, image: 0, connect: 0 };
  const scratch = opts.scratchDir ? resolve(opts.scratchDir) : await mkdtemp(join(tmpdir(), 'ota-sim-'));

  let prepared: Prepared;
  try {
    prepared = await prepare(opts, names, groupName, limit, emit, setupMs);
  } catch (err) {
    await rm(scratch, { recursive: true, force: true });
    throw err;
  }
  const agents: AgentHandle[] = [];
  let scratchRemoved = false;
  try {
    // 1. The image, uploaded once.
    let t0 = Date.now();
    emit({ type: 'phase', phase: 'image', detail: `${imageSize} bytes` });
    const imagePath = join(scratch, 'image.bin');
    const image = await writeDeterministicImage(imagePath, imageSize, jobId);
    const s3 = s3ClientFor(prepared.target);
    const version = '2.0.0';
    const put = await putFirmware({
      file: imagePath,
      bucket: prepared.bucket,
      key: `firmware/ota-sim/${jobId}.bin`,
      version,
      region: prepared.region,
      s3,
    }).finally(() => s3.destroy());
    await rm(imagePath, { force: true });
    setupMs.image = Date.now() - t0;

    // 2. The agents, connected and idle (start-next found nothing), `limit` connecting at a time.
    t0 = Date.now();
    emit({ type: 'phase', phase: 'connect', detail: `${n} agents, ${limit} at a time` });
    const tally: FleetTally = { total: n, queued: n, inProgress: 0, succeeded: 0, failed: 0 };
    const state = new Map<string, 'queued' | 'inProgress' | 'done'>();
    const failures: FleetSummary['failures'] = [];
    const downloadSeconds: number[] = [];
    let jobCreatedAt = 0;
    let lastDoneAt = 0;
    let allDone: () => void = () => {};
    const allDonePromise = new Promise<void>((r) => {
      allDone = r;
    });
    let tallyDirty = false;
    const finish = (thingName: string, ok: boolean, status: string, reason?: string) => {
      const prev = state.get(thingName) ?? 'queued';
      if (prev === 'done') return;
      if (prev === 'inProgress') tally.inProgress--;
      else tally.queued--;
      state.set(thingName, 'done');
      if (ok) tally.succeeded++;
      else {
        tally.failed++;
        failures.push({ thingName, status, ...(reason ? { reason } : {}) });
        emit({ type: 'device-failed', thingName, status, ...(reason ? { reason } : {}) });
      }
      lastDoneAt = Date.now();
      tallyDirty = true;
      if (tally.succeeded + tally.failed === n) allDone();
    };
    const onAgentEvent = (thingName: string, e: AgentEvent) => {
      if (e.type === 'step-start' && e.jobId === jobId && state.get(thingName) === 'queued') {
        state.set(thingName, 'inProgress');
        tally.queued--;
        tally.inProgress++;
        tallyDirty = true;
      } else if (e.type === 'job-result' && e.job.jobId === jobId) {
        if (e.job.seconds !== undefined) downloadSeconds.push(e.job.seconds);
        finish(thingName, e.job.status === 'SUCCEEDED', e.job.status, e.job.reason);
      }
    };
    let connected = 0;
    const summaries: Promise<AgentSummary | undefined>[] = [];
    await mapBounded(
      prepared.devices,
      limit,
      async (d) => {
        state.set(d.thingName, 'queued');
        const config = resolveAgentConfig({
          flags: {
            ...prepared.agentBase,
            cert: d.cert,
            key: d.key,
            thingName: d.thingName,
            currentVersion: START_VERSION,
            downloadDir: join(scratch, d.thingName),
            logLevel: 'silent',
            ...(opts.progressIntervalMs !== undefined ? { progressIntervalMs: opts.progressIntervalMs } : {}),
          },
          cwd: scratch,
        });
        let ready: () => void = () => {};
        const idle = new Promise<void>((r) => {
          ready = r;
        });
        const handle = startAgent({
          config,
          logger: log.child({ thing: d.thingName }),
          onEvent: (e) => {
            // Connected and asked for work: the slot is free for the next agent.
            if (e.type === 'idle' || e.type === 'job-result') ready();
            onAgentEvent(d.thingName, e);
          },
        });
        agents.push(handle);
        summaries.push(
          handle.done.catch((err: unknown) => {
            finish(d.thingName, false, 'AGENT_ERROR', errorMessage(err));
            ready();
            return undefined;
          }),
        );
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<'late'>((r) => {
          timer = setTimeout(() => r('late'), CONNECT_TIMEOUT_MS);
        });
        const how = await Promise.race([idle.then(() => 'ok' as const), late]);
        clearTimeout(timer);
        if (how === 'late')
          finish(d.thingName, false, 'CONNECT_TIMEOUT', 'not connected and idle within 60 s');
        connected++;
        if (connected % 50 === 0 || connected === n) {
          emit({ type: 'setup-progress', phase: 'connect', done: connected, total: n });
        }
      },
      opts.signal,
    );
    setupMs.connect = Date.now() - t0;

    // 3. One job for the group; the clock starts here.
    emit({ type: 'phase', phase: 'job', detail: jobId });
    const stackBefore = prepared.stackResources();
    const ownBefore = ownStats();
    const brokerBefore = prepared.brokerPublishes?.() ?? 0;
    jobCreatedAt = Date.now();
    await createJob(prepared.iot, {
      jobId,
      groups: [groupName],
      document: JSON.stringify(put.document),
      description: `ota sim: ${n} devices, ${imageSize} bytes`,
    });
    emit({ type: 'phase', phase: 'run' });
    emit({ type: 'tally', tally: { ...tally } });
    const ticker = setInterval(() => {
      if (!tallyDirty) return;
      tallyDirty = false;
      emit({ type: 'tally', tally: { ...tally } });
    }, 250);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((r) => {
      timer = setTimeout(() => r('timeout'), timeoutMs);
    });
    const aborted = new Promise<'aborted'>((r) => {
      if (opts.signal?.aborted) r('aborted');
      opts.signal?.addEventListener('abort', () => r('aborted'), { once: true });
    });
    const how = await Promise.race([allDonePromise.then(() => 'done' as const), timedOut, aborted]);
    clearTimeout(timer);
    clearInterval(ticker);
    const endAt = how === 'done' ? lastDoneAt : Date.now();
    const stackAfter = prepared.stackResources();
    const ownAfter = ownStats();
    const brokerAfter = prepared.brokerPublishes?.();
    if (how !== 'done') {
      for (const [thingName, s] of state) {
        if (s !== 'done') finish(thingName, false, how === 'timeout' ? 'TIMED_OUT' : 'ABORTED');
      }
    }
    emit({ type: 'tally', tally: { ...tally } });

    // 4. Stop the agents and collect their counters.
    emit({ type: 'phase', phase: 'cleanup' });
    await Promise.all(agents.map((a) => a.stop()));
    agents.length = 0;
    const done = (await Promise.all(summaries)).filter((s): s is AgentSummary => s !== undefined);
    const sum = (f: (s: AgentSummary) => number) => done.reduce((acc, s) => acc + f(s), 0);
    const ourJob = (s: AgentSummary) => s.jobs.filter((j) => j.jobId === jobId);
    const durationMs = Math.max(1, endAt - jobCreatedAt);
    const runSec = durationMs / 1000;
    const devicePublishes = sum((s) => s.messagesPublished);
    const brokerPublishes = brokerAfter === undefined ? undefined : brokerAfter - brokerBefore;
    let stack: ResourceFigures | undefined;
    if (stackBefore && stackAfter) {
      const cpu = stackAfter.userSec + stackAfter.sysSec - stackBefore.userSec - stackBefore.sysSec;
      stack = {
        where: prepared.stackWhere,
        pid: stackAfter.pid,
        peakRssMiB: round(stackAfter.peakRssBytes / MiB, 1),
        cpuSeconds: round(cpu, 2),
        cpuPercent: round((cpu / runSec) * 100, 0),
      };
    }
    await rm(scratch, { recursive: true, force: true });
    scratchRemoved = !existsSync(scratch);
    return {
      devices: n,
      jobId,
      groupName,
      target: (opts.target ?? { kind: 'embedded' }).kind,
      imageSize,
      sha256: image.sha256,
      certificates: prepared.certificates,
      setupMs,
      durationMs,
      succeeded: tally.succeeded,
      failed: tally.failed,
      failures,
      devicesPerMinute: round((tally.succeeded / durationMs) * 60_000, 0),
      mqtt: {
        devicePublishes,
        devicePublishesPerSec: round(devicePublishes / runSec, 0),
        progressMessages: sum((s) => ourJob(s).reduce((a, j) => a + j.progressMessages, 0)),
        jobUpdates: sum((s) => ourJob(s).reduce((a, j) => a + j.statusDetailsUpdates, 0)),
        ...(brokerPublishes !== undefined
          ? { brokerPublishes, brokerPublishesPerSec: round(brokerPublishes / runSec, 0) }
          : {}),
      },
      downloadSeconds: {
        median: round(median(downloadSeconds), 3),
        max: round(Math.max(0, ...downloadSeconds), 3),
      },
      ...(stack ? { stack } : {}),
      simProcess: {
        peakRssMiB: round(ownAfter.peakRssBytes / MiB, 1),
        cpuSeconds: round(ownAfter.userSec + ownAfter.sysSec - ownBefore.userSec - ownBefore.sysSec, 2),
      },
      scratchRemoved,
    };
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
    if (!scratchRemoved) await rm(scratch, { recursive: true, force: true }).catch(() => {});
    await prepared.close();
  }
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
