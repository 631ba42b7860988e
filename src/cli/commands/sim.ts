import cliProgress from 'cli-progress';
import { type Command, InvalidArgumentError } from 'commander';
import { createLogger } from '../../shared/log.ts';
import { type FleetEvent, type FleetSummary, type FleetTarget, runFleet } from '../../sim/fleet.ts';
import { json } from '../format.ts';
import { awsOptions, parsePositiveInt } from '../options.ts';
import { formatBytes } from '../progress-view.ts';

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

/** The live summary bar: succeeded / in progress / failed (a line every 2 s when not on a terminal). */
class TallyView {
  private bar?: cliProgress.SingleBar;
  private lastLine = 0;
  constructor(private readonly out: NodeJS.WriteStream) {}

  event(e: FleetEvent): void {
    if (e.type === 'phase') {
      if (e.phase === 'run' && this.out.isTTY) {
        this.bar = new cliProgress.SingleBar(
          {
            stream: this.out,
            format:
              ' fleet |{bar}| {value}/{total} succeeded  {inProgress} in progress  {failed} failed  {queued} queued  {elapsed}s',
            barsize: 30,
            hideCursor: true,
            fps: 5,
          },
          cliProgress.Presets.shades_classic,
        );
        return;
      }
      if (e.phase === 'cleanup') this.stop();
      if (e.phase !== 'run') this.out.write(`ota sim: ${e.phase}${e.detail ? `: ${e.detail}` : ''}\n`);
      return;
    }
    if (e.type === 'setup-progress') {
      if (!this.out.isTTY && e.done !== e.total) return;
      this.out.write(`ota sim: ${e.phase} ${e.done}/${e.total}${this.out.isTTY ? '\r' : '\n'}`);
      if (this.out.isTTY && e.done === e.total) this.out.write('\n');
      return;
    }
    if (e.type === 'device-failed') {
      if (!this.bar)
        this.out.write(`ota sim: ${e.thingName} ${e.status}${e.reason ? `: ${e.reason}` : ''}\n`);
      return;
    }
    const t = e.tally;
    const payload = { inProgress: t.inProgress, failed: t.failed, queued: t.queued, elapsed: '' };
    if (this.bar) {
      if (!this.bar.isActive) this.bar.start(t.total, t.succeeded, payload);
      this.bar.update(t.succeeded, payload);
      return;
    }
    const now = Date.now();
    const final = t.succeeded + t.failed === t.total;
    if (!final && now - this.lastLine < 2000) return;
    this.lastLine = now;
    this.out.write(
      `ota sim: ${t.succeeded}/${t.total} succeeded, ${t.inProgress} in progress, ${t.failed} failed, ${t.queued} queued\n`,
    );
  }

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}

export function formatFleetSummary(s: FleetSummary): string {
  const lines = [
    `ota sim: ${s.succeeded}/${s.devices} SUCCEEDED, ${s.failed} failed  (job ${s.jobId}, group ${s.groupName}, ${s.target})`,
    `  image               ${formatBytes(s.imageSize)}  sha256 ${s.sha256.slice(0, 16)}…`,
    `  job → all done      ${(s.durationMs / 1000).toFixed(2)} s   (${s.devicesPerMinute} devices/min)`,
    `  download per device median ${s.downloadSeconds.median} s, max ${s.downloadSeconds.max} s`,
    `  MQTT                ${s.mqtt.devicePublishes} device publishes (${s.mqtt.devicePublishesPerSec}/s); ` +
      `${s.mqtt.progressMessages} progress, ${s.mqtt.jobUpdates} job status updates` +
      (s.mqtt.brokerPublishes !== undefined
        ? `; broker in+out ${s.mqtt.brokerPublishes} (${s.mqtt.brokerPublishesPerSec}/s)`
        : ''),
    s.stack
      ? `  stack process       pid ${s.stack.pid} (${s.stack.where === 'shared' ? 'shared with the agents' : 'separate'}): ` +
        `peak RSS ${s.stack.peakRssMiB} MiB, CPU ${s.stack.cpuSeconds} s (${s.stack.cpuPercent}% of a core)`
      : '  stack process       (not measurable here)',
    `  sim process         peak RSS ${s.simProcess.peakRssMiB} MiB, CPU ${s.simProcess.cpuSeconds} s during the run`,
    `  setup               things ${(s.setupMs.things / 1000).toFixed(1)} s (${s.certificates.issued} certs issued, ` +
      `${s.certificates.reused} reused), connect ${(s.setupMs.connect / 1000).toFixed(1)} s`,
    `  scratch dir         ${s.scratchRemoved ? 'removed' : 'NOT removed'}`,
  ];
  for (const f of s.failures.slice(0, 10)) {
    lines.push(`  failed: ${f.thingName} ${f.status}${f.reason ? `: ${f.reason}` : ''}`);
  }
  if (s.failures.length > 10) lines.push(`  … and ${s.failures.length - 10} more failures`);
  return `${lines.join('\n')}\n`;
}

export function registerSimCommand(program: Command): void {
  const cmd = program
    .command('sim')
    .description(
      'fleet simulator: N things, one job for their group, N real agents; live tally and a summary',
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
      '--data-dir <dir>',
      'use the running `ota dev` of this data dir (default: an embedded stack in a temp dir)',
    )
    .option(
      '--stack-pid <pid>',
      'pid of that `ota dev`, for its RSS/CPU (default: found from its MQTT port)',
      parsePositiveInt('--stack-pid'),
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
      'give up after this many seconds (unfinished devices fail)',
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
  for (const o of awsOptions()) cmd.addOption(o);
  cmd.action(async (flags) => {
    let target: FleetTarget;
    if (flags.aws) {
      if (!flags.certsDir || !flags.bucket) {
        throw new InvalidArgumentError(
          '--aws needs --certs-dir and --bucket (see docs/benchmarks.md, "ota sim --aws")',
        );
      }
      target = {
        kind: 'aws',
        certsDir: flags.certsDir,
        bucket: flags.bucket,
        region: flags.region,
        profile: flags.profile,
        endpoint: flags.endpoint,
        rootCa: flags.rootCa,
        roleAlias: flags.roleAlias,
        credentialsEndpoint: flags.credentialsEndpoint,
      };
    } else if (flags.dataDir) {
      target = {
        kind: 'local',
        dataDir: flags.dataDir,
        ...(flags.stackPid ? { stackPid: flags.stackPid } : {}),
      };
    } else {
      target = { kind: 'embedded' };
    }
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
        target,
        signal: controller.signal,
        logger: createLogger({ level: flags.logLevel }),
        onEvent: (e) => view.event(e),
        ...(flags.jobId ? { jobId: flags.jobId } : {}),
        ...(flags.progressInterval !== undefined ? { progressIntervalMs: flags.progressInterval } : {}),
      });
      view.stop();
      process.stdout.write(flags.json ? `${json(summary)}\n` : formatFleetSummary(summary));
      if (summary.failed > 0) process.exitCode = 1;
    } finally {
      view.stop();
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
  });
}
