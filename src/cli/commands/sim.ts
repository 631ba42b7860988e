import { type Command, InvalidArgumentError } from 'commander';
import { createLogger } from '../../shared/log.ts';
import type { FaultRates } from '../../sim/faults.ts';
import { type FleetTarget, runFleet } from '../../sim/fleet.ts';
import { json } from '../format.ts';
import { type ConfigFlags, configFrom, withConfigFlags } from '../job-config-flags.ts';
import { awsOptions, parsePositiveInt } from '../options.ts';
import { formatFleetSummary, TallyView } from '../sim-view.ts';

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
};

/** `1MiB`, `64KiB`, `87232512`, `1.5MB` → bytes. */
export function parseSize(flag: string) {
  return (value: string): number => {
    const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(value.trim());
    const unit = m?.[2]?.toLowerCase() ?? '';
    const mult = UNITS[unit];
    const n = m && mult !== undefined ? Math.round(Number(m[1]) * mult) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < 1) {
      throw new InvalidArgumentError(`${flag}: a size like 1MiB, 64KiB or 87232512`);
    }
    return n;
  };
}

/** A fraction 0–1 (`--fail-rate 0.3`). */
function parseFraction(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1)
      throw new InvalidArgumentError(`${flag}: a fraction from 0 to 1, e.g. 0.3`);
    return n;
  };
}

interface SimFlags extends ConfigFlags {
  devices: number;
  imageSize: number;
  jobId?: string;
  concurrency: number;
  dataDir?: string;
  stackPid?: number;
  minuteMs?: number;
  thingPrefix: string;
  group: string;
  progressInterval?: number;
  timeout: number;
  failRate?: number;
  rejectRate?: number;
  timeoutRate?: number;
  offlineRate?: number;
  seed: number;
  workers?: number;
  scratchDir?: string;
  aws?: boolean;
  region?: string;
  profile?: string;
  certsDir?: string;
  bucket?: string;
  endpoint?: string;
  rootCa?: string;
  roleAlias?: string;
  credentialsEndpoint?: string;
  logLevel: string;
  json?: boolean;
}

function targetOf(flags: SimFlags): FleetTarget {
  if (flags.minuteMs !== undefined && (flags.aws || flags.dataDir)) {
    throw new InvalidArgumentError(
      '--minute-ms is for the embedded stack; a running `ota dev` takes its own --minute-ms',
    );
  }
  if (flags.aws) {
    if (!flags.certsDir || !flags.bucket) {
      throw new InvalidArgumentError(
        '--aws needs --certs-dir and --bucket (see docs/benchmarks.md, "ota sim --aws")',
      );
    }
    const { certsDir, bucket, region, profile, endpoint, rootCa, roleAlias, credentialsEndpoint } = flags;
    return {
      kind: 'aws',
      certsDir,
      bucket,
      region,
      profile,
      endpoint,
      rootCa,
      roleAlias,
      credentialsEndpoint,
    };
  }
  if (flags.dataDir) {
    return { kind: 'local', dataDir: flags.dataDir, ...(flags.stackPid ? { stackPid: flags.stackPid } : {}) };
  }
  return { kind: 'embedded', ...(flags.minuteMs !== undefined ? { minuteMs: flags.minuteMs } : {}) };
}

function faultsOf(flags: SimFlags): FaultRates {
  return {
    ...(flags.failRate !== undefined ? { fail: flags.failRate } : {}),
    ...(flags.rejectRate !== undefined ? { reject: flags.rejectRate } : {}),
    ...(flags.timeoutRate !== undefined ? { timeout: flags.timeoutRate } : {}),
    ...(flags.offlineRate !== undefined ? { offline: flags.offlineRate } : {}),
  };
}

function simCommand(program: Command): Command {
  return program
    .command('sim')
    .description(
      'fleet simulator: N things, one job for their group, N real agents (some faulty, if asked); live tally and a summary',
    )
    .requiredOption('--devices <n>', 'number of simulated devices', parsePositiveInt('--devices'))
    .option(
      '--image-size <size>',
      'firmware image size (1MiB, 64KiB, bytes)',
      parseSize('--image-size'),
      1024 ** 2,
    )
    .option('--job-id <id>', 'job id (default sim-<epoch ms>)')
    .option(
      '--concurrency <c>',
      'agents connecting (and certificates issued) at a time',
      parsePositiveInt('--concurrency'),
      64,
    )
    .option(
      '--fail-rate <f>',
      'fraction of devices whose install fails (FAILED)',
      parseFraction('--fail-rate'),
    )
    .option(
      '--reject-rate <f>',
      'fraction of devices already on the offered version (REJECTED)',
      parseFraction('--reject-rate'),
    )
    .option(
      '--timeout-rate <f>',
      'fraction of devices that take the job and never report (TIMED_OUT; default --in-progress-timeout 1)',
      parseFraction('--timeout-rate'),
    )
    .option('--offline-rate <f>', 'fraction of devices that never connect', parseFraction('--offline-rate'))
    .option('--seed <n>', 'which devices get which fault', parsePositiveInt('--seed'), 1)
    .option(
      '--workers <n>',
      'child processes for the agents, 0 = this process (default: 0 up to 2,000 devices, else one per 2,500)',
      (v: string) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0 || n > 64) throw new InvalidArgumentError('--workers: 0 to 64');
        return n;
      },
    )
    .option(
      '--minute-ms <ms>',
      'length of a Jobs minute in the embedded stack (rollout rates, timeouts)',
      parsePositiveInt('--minute-ms'),
    )
    .option(
      '--data-dir <dir>',
      'use the running `ota dev` of this data dir (default: an embedded stack in a temp dir)',
    )
    .option(
      '--stack-pid <pid>',
      'pid of that `ota dev`, for its RSS/CPU (default: found from its MQTT port)',
      parsePositiveInt('--stack-pid'),
    )
    .option(
      '--scratch-dir <dir>',
      "the devices' downloads and state (default: a temp dir on /dev/shm when there is one); removed afterwards",
    )
    .option('--thing-prefix <prefix>', 'thing names are <prefix>0001…', 'sim-')
    .option('--group <name>', 'thing group the job targets', 'sim-fleet')
    .option('--progress-interval <sec>', "agents' progress interval in seconds (default 1)", (v: string) => {
      const n = Number(v);
      if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('--progress-interval: seconds >= 0');
      return Math.round(n * 1000);
    })
    .option(
      '--timeout <sec>',
      'give up after this many seconds (unfinished devices count as unexpected)',
      parsePositiveInt('--timeout'),
      600,
    )
    .option(
      '--certs-dir <dir>',
      'with --aws: <thing>.cert.pem / <thing>.key.pem for each thing (created in AWS)',
    )
    .option('--bucket <bucket>', 'with --aws: S3 bucket for the image')
    .option('--endpoint <host>', 'with --aws: ATS data endpoint (default: DescribeEndpoint)')
    .option('--root-ca <file>', 'with --aws: root CA (default: the system trust store)')
    .option('--role-alias <alias>', 'with --aws: S3 credentials from the IoT credentials provider')
    .option('--credentials-endpoint <url>', 'with --aws and --role-alias: the credentials provider endpoint')
    .option('--log-level <level>', 'pino log level for the agents and the stack (stderr)', 'silent')
    .option('--json', 'print the summary as JSON');
}

export function registerSimCommand(program: Command): void {
  const cmd = withConfigFlags(simCommand(program), { maintenanceWindows: false });
  for (const o of awsOptions()) cmd.addOption(o);
  cmd.action(async (flags: SimFlags) => {
    const target = targetOf(flags);
    const controller = new AbortController();
    const stop = () => controller.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    const view = new TallyView(process.stderr);
    try {
      const summary = await runFleet({
        devices: flags.devices,
        imageSize: flags.imageSize,
        concurrency: flags.concurrency,
        thingPrefix: flags.thingPrefix,
        groupName: flags.group,
        timeoutMs: flags.timeout * 1000,
        faults: faultsOf(flags),
        seed: flags.seed,
        ...(flags.workers !== undefined ? { workers: flags.workers } : {}),
        ...(flags.scratchDir !== undefined ? { scratchDir: flags.scratchDir } : {}),
        workerLogLevel: flags.logLevel,
        job: configFrom(flags),
        target,
        signal: controller.signal,
        logger: createLogger({ level: flags.logLevel }),
        onEvent: (e) => view.event(e),
        ...(flags.jobId ? { jobId: flags.jobId } : {}),
        ...(flags.progressInterval !== undefined ? { progressIntervalMs: flags.progressInterval } : {}),
      });
      view.stop();
      process.stdout.write(flags.json ? `${json(summary)}\n` : formatFleetSummary(summary));
      if (summary.unexpected > 0) process.exitCode = 1;
    } finally {
      view.stop();
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
  });
}
