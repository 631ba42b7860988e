/**
 * The fleet simulator behind `ota sim` and the fleet benchmark: N things with their own certificates in
 * one thing group, one firmware image, one job for the group, and N real device agents (the same
 * pipeline as `ota agent`, through the adapter in device.ts), each with its own MQTT connection, sharing
 * this process. Some devices can be made to misbehave (faults.ts), and the job can carry rollout, abort,
 * retry and timeout configurations; the service's view of the job (watch.ts) decides when the run is over
 * and how each device ended (outcomes.ts).
 *
 * Bounds: at most `concurrency` agents connect at a time and at most `concurrency` certificates and
 * registrations are in flight; each agent then holds one MQTT socket, one S3 keep-alive socket and, while
 * downloading, one file: about 3 fds per device here, plus as many on the stack's side (6 per device when
 * the stack is embedded in this process). See docs/benchmarks.md.
 *
 * Timings here are wall-clock measurements of the run itself (setup, time to settle): they report how
 * fast the real stack and agents were, so they read Date.now, not an injected clock.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { cancelJob, createJob, listExecutions } from '../operator/jobs.ts';
import { ValidationError } from '../shared/errors.ts';
import { JOB_ID_PATTERN, THING_NAME_PATTERN } from '../shared/topics.ts';
import { type AgentHost, localHost } from './agent-host.ts';
import { deviceScratch, JOB_VERSION } from './device.ts';
import { checkFaultRates, countRoles, type DeviceRole, planRoles } from './faults.ts';
import { type Fleet, type FleetRun, figuresOf, newFleetRun } from './fleet-run.ts';
import { countOutcomes, type DeviceEnd, isExpected, latestByThing } from './outcomes.ts';
import { type Prepared, prepare, thingNames, uploadImage } from './prepare.ts';
import { ownStats } from './proc.ts';
import type { FleetEvent, FleetOptions, FleetSummary } from './types.ts';
import { watchJob } from './watch.ts';
import { workerHost } from './worker-host.ts';

export type * from './types.ts';
export { thingNames };

const MiB = 1024 * 1024;
const DEFAULT_CONCURRENCY = 64;

/** Checks the options before anything starts; returns them with their defaults. */
function checkOptions(opts: FleetOptions) {
  const n = opts.devices;
  if (!Number.isInteger(n) || n < 1 || n > 100_000) throw new ValidationError('devices', 'must be 1-100000');
  const imageSize = opts.imageSize ?? MiB;
  if (!Number.isInteger(imageSize) || imageSize < 1)
    throw new ValidationError('image-size', 'must be ≥ 1 byte');
  const limit = opts.concurrency ?? DEFAULT_CONCURRENCY;
  if (!Number.isInteger(limit) || limit < 1) throw new ValidationError('concurrency', 'must be ≥ 1');
  const jobId = opts.jobId ?? `sim-${Date.now()}`;
  if (!JOB_ID_PATTERN.test(jobId)) throw new ValidationError('job-id', `must match ${JOB_ID_PATTERN.source}`);
  const names = thingNames(opts.thingPrefix ?? 'sim-', n);
  if (!names.every((t) => THING_NAME_PATTERN.test(t))) {
    throw new ValidationError('thing-prefix', `thing names must match ${THING_NAME_PATTERN.source}`);
  }
  const faults = opts.faults ?? {};
  checkFaultRates(faults);
  const seed = opts.seed ?? 1;
  if (!Number.isSafeInteger(seed)) throw new ValidationError('seed', 'must be an integer');
  const minuteMs = opts.target?.kind === 'embedded' ? opts.target.minuteMs : undefined;
  if (minuteMs !== undefined && !(Number.isFinite(minuteMs) && minuteMs >= 1))
    throw new ValidationError('minute-ms', 'must be a number of milliseconds ≥ 1');
  const roles = planRoles(n, faults, seed);
  const job = { ...opts.job };
  // A device that hangs is only ever ended by the service's in-progress timer.
  if (roles.includes('timeout') && job.inProgressTimeoutInMinutes === undefined)
    job.inProgressTimeoutInMinutes = 1;
  const pollMs = opts.pollMs ?? (opts.target?.kind === 'aws' ? 1000 : 250);
  const workers = opts.workers ?? (n > 2000 ? Math.ceil(n / 2500) : 0);
  if (!Number.isInteger(workers) || workers < 0 || workers > 64)
    throw new ValidationError('workers', 'must be 0 (agents in this process) to 64');
  return { n, imageSize, limit, jobId, names, seed, roles, job, pollMs, workers };
}

/**
 * Runs the simulation end to end and returns its figures. Throws only when the fleet cannot be set up
 * (stack, things, image, job); devices that fail are counted in the summary, not thrown.
 */
export async function runFleet(opts: FleetOptions): Promise<FleetSummary> {
  const o = checkOptions(opts);
  const groupName = opts.groupName ?? 'sim-fleet';
  const run = newFleetRun(opts, o.jobId);
  // A dir of our own (inside scratchDir when given): it is removed afterwards, the caller's dir is not.
  const scratch = opts.scratchDir
    ? await mkdtemp(join(resolve(opts.scratchDir), 'ota-sim-'))
    : await deviceScratch('ota-sim-');
  let prepared: Prepared;
  try {
    prepared = await prepare(opts, o.names, groupName, o.limit, run.emit, run.setupMs);
  } catch (err) {
    await rm(scratch, { recursive: true, force: true });
    throw err;
  }
  const fleet: Fleet = {
    prepared,
    scratch,
    devices: prepared.devices.map((d, i) => ({ ...d, role: o.roles[i] as DeviceRole })),
    host: hostFor(opts, o, prepared, scratch, run),
    jobId: o.jobId,
  };
  try {
    const t0 = Date.now();
    run.emit({ type: 'phase', phase: 'image', detail: `${o.imageSize} bytes` });
    const image = await uploadImage(prepared, scratch, o.jobId, o.imageSize, JOB_VERSION);
    run.setupMs.image = Date.now() - t0;
    const stackBase = prepared.stackResources();
    const simBase = [ownStats()];
    await connectAgents(fleet, o.limit, run);
    const stackConnected = prepared.stackResources();
    const simConnected = [ownStats(), ...fleet.host.workers()];
    const simNow = () => [ownStats(), ...fleet.host.workers()];

    run.emit({ type: 'phase', phase: 'job', detail: o.jobId });
    const before = { stack: prepared.stackResources(), sim: simNow(), broker: prepared.brokerPublishes?.() };
    run.jobCreatedAt = Date.now();
    await createJob(prepared.iot, {
      ...o.job,
      jobId: o.jobId,
      groups: [groupName],
      document: JSON.stringify(image.document),
      description: `ota sim: ${o.n} devices, ${o.imageSize} bytes`,
    });
    run.emit({ type: 'phase', phase: 'run' });
    const end = await waitForFleet(fleet, o.n, o.pollMs, opts, run);
    const after = { stack: prepared.stackResources(), sim: simNow(), broker: prepared.brokerPublishes?.() };

    const ends = await finalStates(fleet, run);
    const canceledAtEnd = await cancelLeftovers(fleet, end.jobStatus);
    run.emit({ type: 'phase', phase: 'cleanup' });
    const totals = await fleet.host.stop(o.jobId);
    await rm(scratch, { recursive: true, force: true });
    const outcomes = countOutcomes(ends);
    const unexpected = ends.filter(
      (e) => !isExpected(e.role, e.status, end.jobCanceled) || run.lost.has(e.thingName),
    );
    if (end.abort) {
      const spared = { neverNotified: outcomes.neverNotified, canceledWhileQueued: outcomes.canceled };
      end.abort.spared = { ...spared, total: spared.neverNotified + spared.canceledWhileQueued };
    }
    return {
      devices: o.n,
      jobId: o.jobId,
      groupName,
      target: (opts.target ?? { kind: 'embedded' }).kind,
      imageSize: o.imageSize,
      sha256: image.sha256,
      seed: o.seed,
      roles: countRoles(o.roles),
      jobConfig: o.job,
      jobStatus: end.jobStatus,
      canceledAtEnd,
      certificates: prepared.certificates,
      setupMs: run.setupMs,
      ...(end.abort ? { abort: end.abort } : {}),
      outcomes,
      succeeded: outcomes.succeeded,
      failed: outcomes.failed + outcomes.rejected + outcomes.timedOut + run.lost.size,
      unexpected: unexpected.length,
      failures: unexpected.map((e) => ({
        thingName: e.thingName,
        role: e.role,
        status: e.status,
        ...(e.reason ? { reason: e.reason } : {}),
      })),
      ...figuresOf({
        run,
        jobId: o.jobId,
        succeeded: outcomes.succeeded,
        endAt: end.at,
        before,
        after,
        stackBase,
        stackConnected,
        simBase,
        simConnected,
        prepared,
        totals,
      }),
      scratchRemoved: !existsSync(scratch),
    };
  } finally {
    await fleet.host.stop(o.jobId);
    await rm(scratch, { recursive: true, force: true }).catch(() => {});
    await prepared.close();
  }
}

/** In this process, or over `workers` child processes. */
function hostFor(
  opts: FleetOptions,
  o: { limit: number; workers: number },
  prepared: Prepared,
  scratch: string,
  run: FleetRun,
): AgentHost {
  const common = {
    base: prepared.agentBase,
    scratch,
    concurrency: o.limit,
    logger: run.log,
    ...(opts.progressIntervalMs !== undefined ? { progressIntervalMs: opts.progressIntervalMs } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  };
  if (o.workers === 0) return localHost(common);
  return workerHost({ ...common, workers: o.workers, logLevel: opts.workerLogLevel ?? 'silent' });
}

/** Starts every device's agent but the offline ones', and waits until each is idle (or lost). */
async function connectAgents(fleet: Fleet, limit: number, run: FleetRun): Promise<void> {
  const t0 = Date.now();
  const online = fleet.devices.filter((d) => d.role !== 'offline');
  const byName = new Map(online.map((d) => [d.thingName, d]));
  run.emit({ type: 'phase', phase: 'connect', detail: `${online.length} agents, ${limit} at a time` });
  let settled = 0;
  await fleet.host.start(online, (thingName, e) => {
    const d = byName.get(thingName);
    if (d === undefined) return;
    run.onAgentEvent(d, e);
    if (e.type === 'connected' || (e.type === 'lost' && !run.connected.has(thingName))) {
      run.connected.add(thingName);
      settled++;
      if (settled % 50 === 0 || settled === online.length) {
        run.emit({ type: 'setup-progress', phase: 'connect', done: settled, total: online.length });
      }
    }
  });
  run.setupMs.connect = Date.now() - t0;
}

/** Waits for the service to say the run is over, for the time limit or for the caller's signal. */
async function waitForFleet(fleet: Fleet, n: number, pollMs: number, opts: FleetOptions, run: FleetRun) {
  const offline = fleet.devices.filter((d) => d.role === 'offline').length;
  const watch = watchJob({
    iot: fleet.prepared.iot,
    jobId: fleet.jobId,
    devices: n,
    offline: () => offline + run.lost.size,
    host: fleet.host,
    pollMs,
    createdAt: run.jobCreatedAt,
    log: run.log,
    onTally: (t) => run.emit({ type: 'tally', tally: t }),
    onAbort: (a) => run.emit({ type: 'aborted', afterMs: a.afterMs, reason: a.reason }),
  });
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((r) => {
    timer = setTimeout(() => r('timeout'), opts.timeoutMs ?? 600_000);
  });
  const aborted = new Promise<'aborted'>((r) => {
    if (opts.signal?.aborted) r('aborted');
    opts.signal?.addEventListener('abort', () => r('aborted'), { once: true });
  });
  const how = await Promise.race([watch.settled.then(() => 'done' as const), timedOut, aborted]);
  clearTimeout(timer);
  watch.stop();
  const seenAt = how === 'done' ? await watch.settled : Date.now();
  if (how !== 'done')
    run.stoppedEarly = how === 'timeout' ? 'the sim timed out (--timeout)' : 'the sim was stopped';
  const jobStatus = watch.job()?.status ?? 'UNKNOWN';
  const abort = watch.abort();
  // Timeouts and cancellations are only seen by polling; otherwise the last agent report is the end.
  const serviceEnded = abort !== undefined || fleet.devices.some((d) => d.role === 'timeout');
  const at = how === 'done' && !serviceEnded && run.lastResultAt > 0 ? run.lastResultAt : seenAt;
  return {
    at,
    jobStatus,
    jobCanceled: jobStatus === 'CANCELED',
    abort: abort && { ...abort, spared: { neverNotified: 0, canceledWhileQueued: 0, total: 0 } },
  };
}

/** Each device's latest execution, as the service lists them, with what its agent said. */
async function finalStates(fleet: Fleet, run: FleetRun): Promise<DeviceEnd[]> {
  const rows = await listExecutions(fleet.prepared.iot, fleet.jobId, { details: false });
  const latest = latestByThing(rows);
  return fleet.devices.map((d) => {
    const status = latest.get(d.thingName) ?? 'NEVER_NOTIFIED';
    const unfinished = status === 'QUEUED' || status === 'IN_PROGRESS' ? run.stoppedEarly : undefined;
    const reason = run.lost.get(d.thingName) ?? run.reasons.get(d.thingName) ?? unfinished;
    return { thingName: d.thingName, role: d.role, status, ...(reason ? { reason } : {}) };
  });
}

/**
 * A job left IN_PROGRESS (offline devices' queued executions, a stopped run) is cancelled with force, so
 * no execution waits for a later run's agents of the same things.
 */
async function cancelLeftovers(fleet: Fleet, jobStatus: string): Promise<boolean> {
  if (jobStatus !== 'IN_PROGRESS' && jobStatus !== 'SCHEDULED') return false;
  await cancelJob(fleet.prepared.iot, fleet.jobId, {
    force: true,
    comment: 'ota sim: the run is over; executions left for offline devices are cancelled',
  });
  return true;
}

export type { FleetEvent, FleetOptions, FleetSummary };
