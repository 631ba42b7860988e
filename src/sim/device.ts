/**
 * The simulator's one adapter over the device agent's API (src/device): everything the simulator needs
 * from the agent — its config, its start and stop, its events, its install hook — goes through here, so a
 * change of startAgent's options is adapted in this file alone.
 *
 * Each role (faults.ts) is plain agent behaviour: a device that fails has an install hook that throws; one
 * that rejects already runs the offered version, so the agent's check-version step rejects the job; one
 * that times out hangs in its install hook and never reports, until the simulator learns the service
 * timed that execution out (then the hook gives up the way a stopped agent does: no report, and the
 * agent goes on to its next execution, e.g. a retry, and hangs again).
 */
import { accessSync, constants, statSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type AgentEvent,
  type AgentHandle,
  type AgentSummary,
  type Hook,
  resolveAgentConfig,
  startAgent,
} from '../device/index.ts';
import { AbortedError } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import type { DeviceRole } from './faults.ts';

export type { AgentEvent, AgentHandle, AgentSummary };

/**
 * Where the simulated devices keep their downloads and state: a RAM disk (/dev/shm) when there is one.
 * Each agent fsyncs its image and its state file, as a device must; on one shared disk 10,000 devices'
 * fsyncs measure that disk (92 MB/s with fdatasync on the benchmark machine), not the fleet or the stack.
 */
export async function deviceScratch(prefix: string): Promise<string> {
  let base = tmpdir();
  try {
    if (statSync('/dev/shm').isDirectory()) {
      accessSync('/dev/shm', constants.W_OK);
      base = '/dev/shm';
    }
  } catch {
    // No RAM disk here: the temp dir.
  }
  return mkdtemp(join(base, prefix));
}

/** The version every simulated device runs; the job offers JOB_VERSION. */
export const START_VERSION = '1.0.0';
export const JOB_VERSION = '2.0.0';

export const SIMULATED_INSTALL_FAILURE = 'simulated install failure (ota sim --fail-rate)';

/** Executions hung by `timeout` devices, released when the service has ended them. */
export class Hangs {
  private readonly waiting = new Map<string, { thingName: string; release: () => void }>();
  private readonly stop = new AbortController();

  /** `onHang`/`onRelease`: told of each change (a worker process relays them to the simulator). */
  constructor(
    private readonly on: {
      onHang?: (h: { thingName: string; jobId: string; executionNumber: number }) => void;
      onRelease?: (h: { thingName: string; jobId: string; executionNumber: number }) => void;
    } = {},
  ) {}

  get size(): number {
    return this.waiting.size;
  }

  /** Hangs until `release(thing, executionNumber)` or `releaseAll()`; then rejects as a stop does. */
  hang(thingName: string, jobId: string, executionNumber: number | undefined): Promise<never> {
    const key = `${thingName}\n${jobId}\n${executionNumber ?? 0}`;
    const h = { thingName, jobId, executionNumber: executionNumber ?? 0 };
    return new Promise<never>((_, reject) => {
      const release = () => {
        if (this.waiting.delete(key)) this.on.onRelease?.(h);
        reject(new AbortedError(`${thingName}: the hung execution ended`));
      };
      if (this.stop.signal.aborted) return release();
      this.waiting.set(key, { thingName, release });
      this.on.onHang?.(h);
    });
  }

  /** Which things hang now, with their execution numbers (for the service check). */
  hung(): Array<{ thingName: string; jobId: string; executionNumber: number }> {
    return [...this.waiting.keys()].map((k) => {
      const [thingName = '', jobId = '', n = '0'] = k.split('\n');
      return { thingName, jobId, executionNumber: Number(n) };
    });
  }

  release(thingName: string, jobId: string, executionNumber: number): void {
    this.waiting.get(`${thingName}\n${jobId}\n${executionNumber}`)?.release();
  }

  releaseAll(): void {
    this.stop.abort();
    for (const w of [...this.waiting.values()]) w.release();
  }
}

export interface SimDevice {
  thingName: string;
  cert: string;
  key: string;
  role: DeviceRole;
}

export interface SimDeviceOptions {
  device: SimDevice;
  /** Connection settings shared by every agent (endpoint, port, CA PEM, S3 endpoint and keys, region). */
  base: Record<string, unknown>;
  /** A directory of this device's own (downloads and state). */
  dir: string;
  progressIntervalMs?: number;
  hangs: Hangs;
  logger: Logger;
  onEvent: (e: AgentEvent) => void;
}

/** Starts the agent of one simulated device (never called for an `offline` one). */
export function startSimDevice(o: SimDeviceOptions): AgentHandle {
  const { device } = o;
  const config = resolveAgentConfig({
    flags: {
      ...o.base,
      cert: device.cert,
      key: device.key,
      thingName: device.thingName,
      currentVersion: device.role === 'reject' ? JOB_VERSION : START_VERSION,
      downloadDir: join(o.dir, 'firmware'),
      stateDir: o.dir,
      logLevel: 'silent',
      // One connection per download: every simulated device shares this host's loopback, where one
      // stream already fills the link, and 10,000 devices probing for more (`connections: auto`) only
      // multiply the requests the one stack must accept and serve (docs/benchmarks.md, fleet of 10,000).
      connections: 1,
      ...(o.progressIntervalMs !== undefined ? { progressIntervalMs: o.progressIntervalMs } : {}),
    },
    cwd: o.dir,
  });
  // The role's fault is plain agent behaviour: an install hook that throws, or one that never returns.
  let install: Hook | undefined;
  if (device.role === 'fail') {
    install = async () => {
      throw new Error(SIMULATED_INSTALL_FAILURE);
    };
  } else if (device.role === 'timeout') {
    install = (call) => o.hangs.hang(device.thingName, call.jobId, call.executionNumber);
  }
  return startAgent({
    config,
    logger: o.logger,
    onEvent: o.onEvent,
    ...(install ? { hooks: { install } } : {}),
  });
}

/**
 * Starts the device's agent and waits until it has connected and asked for work (start-next found
 * nothing, or it already ran a job), until its agent ended, or `timeoutMs`: then `idle` is false.
 */
export async function startUntilIdle(
  o: SimDeviceOptions,
  timeoutMs: number,
): Promise<{ handle: AgentHandle; idle: boolean }> {
  let ready: (idle: boolean) => void = () => {};
  const idle = new Promise<boolean>((r) => {
    ready = r;
  });
  const handle = startSimDevice({
    ...o,
    onEvent: (e) => {
      if (e.type === 'idle' || e.type === 'job-result') ready(true);
      o.onEvent(e);
    },
  });
  handle.done.then(
    () => ready(false),
    () => ready(false),
  );
  const timer = setTimeout(() => ready(false), timeoutMs);
  try {
    return { handle, idle: await idle };
  } finally {
    clearTimeout(timer);
  }
}
