/** The fleet simulator's options, events and summary (runFleet, `ota sim`, the fleet benchmark). */
import type { JobConfigRequest } from '../operator/jobs.ts';
import type { Logger } from '../shared/log.ts';
import type { DeviceRole, FaultRates } from './faults.ts';

export type FleetTarget =
  /** Start a local stack inside this process, in `dataDir` or a temp dir that is removed afterwards. */
  | { kind: 'embedded'; dataDir?: string; minuteMs?: number }
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
  /**
   * Where the devices' downloads and state go: a temp dir made inside it (one dir per device), removed
   * afterwards. Default: a temp dir on /dev/shm when there is one (device.ts, deviceScratch).
   */
  scratchDir?: string;
  /** Agents' progress interval; default the agent's default (1 s). */
  progressIntervalMs?: number;
  /** Give up waiting for the fleet after this long (unfinished devices count as failures); default 10 min. */
  timeoutMs?: number;
  /** Fractions of the fleet that fail, reject, time out or stay offline (faults.ts); default none. */
  faults?: FaultRates;
  /** Which devices get which fault; default 1. */
  seed?: number;
  /**
   * Child processes for the agents (worker-host.ts); 0 = in this process. Default: none up to 2,000
   * devices, else one per 2,500 (file descriptors and cores: docs/benchmarks.md).
   */
  workers?: number;
  /** pino level for the worker processes' agents (they cannot share `logger`); default silent. */
  workerLogLevel?: string;
  /**
   * The job's rollout, abort, retry, timeout and presigned-URL configurations (as `ota job create`).
   * With a `timeout` fault and no inProgressTimeoutInMinutes, the job gets 1 minute.
   */
  job?: JobConfigRequest;
  /** How often the job is polled (DescribeJob); default 250 ms (1 s against AWS). */
  pollMs?: number;
  logger?: Logger;
  signal?: AbortSignal;
  onEvent?: (e: FleetEvent) => void;
}

/** The job as the service counts it (DescribeJob jobProcessDetails: the latest execution of each thing). */
export interface FleetTally {
  total: number;
  /** Things that have an execution (the others wait for the rollout, or never will). */
  notified: number;
  queued: number;
  inProgress: number;
  succeeded: number;
  failed: number;
  rejected: number;
  timedOut: number;
  canceled: number;
}

export type FleetPhase = 'stack' | 'things' | 'image' | 'connect' | 'job' | 'run' | 'cleanup';

export type FleetEvent =
  | { type: 'phase'; phase: FleetPhase; detail?: string }
  | { type: 'setup-progress'; phase: 'things' | 'connect'; done: number; total: number }
  | { type: 'tally'; tally: FleetTally }
  | { type: 'aborted'; afterMs: number; reason: string }
  /** A device ended other than its role says (a healthy run has none). */
  | { type: 'device-failed'; thingName: string; status: string; reason?: string };

export interface ResourceFigures {
  /** 'separate' = another process (a running `ota dev`); 'shared' = this process, stack and agents together. */
  where: 'separate' | 'shared';
  pid: number;
  peakRssMiB: number;
  /** RSS when every agent was connected and idle, before the job (MiB). */
  connectedRssMiB?: number;
  /** RSS before the agents connected (MiB). */
  baseRssMiB?: number;
  /** Open file descriptors before the agents connected, and with all of them connected. */
  baseFds?: number;
  connectedFds?: number;
  /** User+system CPU seconds between job creation and the end of the run. */
  cpuSeconds: number;
  /** cpuSeconds / run seconds × 100 (100 = one core busy). */
  cpuPercent: number;
}

/** Final outcome of each device's latest execution (ListJobExecutionsForJob); NEVER_NOTIFIED: none. */
export interface FleetOutcomes {
  succeeded: number;
  failed: number;
  rejected: number;
  timedOut: number;
  canceled: number;
  removed: number;
  queued: number;
  inProgress: number;
  neverNotified: number;
}

export interface FleetAbort {
  /** Job creation → the service cancelled the job (its lastUpdatedAt, else when it was seen). */
  afterMs: number;
  /** The service's own words (DescribeJob comment), e.g. "50 of 161 executed … (31.06%) ended FAILED …". */
  reason: string;
  /** DescribeJob's counts when the cancellation was first seen. */
  countsAtAbort: FleetTally;
  /** Devices the abort kept from the image: never notified, or cancelled while queued. */
  spared: { neverNotified: number; canceledWhileQueued: number; total: number };
}

export interface FleetSummary {
  devices: number;
  jobId: string;
  groupName: string;
  target: FleetTarget['kind'];
  imageSize: number;
  sha256: string;
  seed: number;
  roles: Record<DeviceRole, number>;
  /** What the job was created with (rollout, abort, retry, timeout). */
  jobConfig: JobConfigRequest;
  /** The job's status at the end (IN_PROGRESS when offline devices still hold queued executions). */
  jobStatus: string;
  /** The sim cancelled its job at the end so no queued execution waits for a later run's agents. */
  canceledAtEnd: boolean;
  /** Certificates issued now vs found valid on disk (local targets). */
  certificates: { issued: number; reused: number };
  setupMs: { stack: number; things: number; image: number; connect: number };
  /** Job creation → every device that will act has ended (the last terminal status). */
  durationMs: number;
  outcomes: FleetOutcomes;
  abort?: FleetAbort;
  succeeded: number;
  /** Devices that ended FAILED, REJECTED or TIMED_OUT, or whose agent could not run. */
  failed: number;
  /** Devices that ended other than their role says (an `ok` device that did not succeed, …): 0 when healthy. */
  unexpected: number;
  failures: Array<{ thingName: string; role: DeviceRole; status: string; reason?: string }>;
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
  /**
   * This process and its worker processes (the agents, and the stack too when embedded): RSS and fds
   * summed over the processes, before the agents connected and with every agent connected and idle.
   */
  simProcess: {
    processes: number;
    peakRssMiB: number;
    cpuSeconds: number;
    baseRssMiB?: number;
    connectedRssMiB?: number;
    baseFds?: number;
    connectedFds?: number;
    /** The most descriptors one process held (each process has its own `ulimit -n`). */
    maxProcessFds?: number;
  };
  scratchRemoved: boolean;
}
