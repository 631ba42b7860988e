import { type Command, InvalidArgumentError } from 'commander';
import { type ConfigWarning, resolveAgentConfig, startAgent } from '../../device/index.ts';
import { createLogger } from '../../shared/log.ts';
import { noteLocalStack } from '../errors.ts';
import { parseConnectPort } from '../options.ts';

/**
 * A duration flag, in seconds (fractions allowed). The config turns it into its `…Ms` key
 * (src/device/config/keys.ts): the flag, `"progressInterval"` and `OTA_PROGRESS_INTERVAL` are seconds,
 * `"progressIntervalMs"` and `OTA_PROGRESS_INTERVAL_MS` milliseconds.
 */
const seconds = (flag: string) => (v: string) => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0)
    throw new InvalidArgumentError(`${flag}: must be a number of seconds >= 0`);
  return n;
};

export function registerAgentCommand(program: Command): void {
  program
    .command('agent')
    .description(
      'the device agent: take AWS IoT jobs, download firmware with live progress, report the result',
    )
    // The original JobProgress.py's flags, kept.
    .option('-e, --endpoint <host>', 'AWS IoT endpoint (…-ats.iot.<region>.amazonaws.com)')
    .option('-r, --root-ca <file>', 'root CA certificate')
    .option('-c, --cert <file>', 'device certificate')
    .option('-k, --key <file>', 'device private key')
    .option('-n, --thing-name <name>', 'thing name (the IMEI)')
    .option('-p, --port <port>', 'MQTT port (default 8883)', parseConnectPort('--port'))
    .option('-m, --mode <mode>', 'both | publish | subscribe (default both)')
    .option('-t, --topic <topic>', 'progress topic (default CarVi/test/firmware/<thing>)')
    .option('--current-version <v>', 'installed version, used when no state file exists yet')
    .option('--download-dir <dir>', 'where images are downloaded (default ./firmware)')
    .option('--state-dir <dir>', 'where the agent keeps its state (default <download-dir>/.ota-state)')
    .option('--tz <zone>', 'time zone of OTA_start_time (default: the system zone)')
    .option(
      '--progress-interval <sec>',
      'at most one progress message per this many seconds (default 1)',
      seconds('--progress-interval'),
    )
    .option(
      '--download-retry-window <sec>',
      'keep retrying a download while it made progress within this many seconds (default 300)',
      seconds('--download-retry-window'),
    )
    .option(
      '--connect-timeout <sec>',
      'bound of each connection attempt; with --once, of the wait for the broker (default 30)',
      seconds('--connect-timeout'),
    )
    .option('--connections <n>', 'ranged GETs at once: auto (1-8, adaptive; default) or a number 1-16')
    .option('--max-rate <rate>', 'download cap over all connections, bytes/s (500kB, 2MiB; default none)')
    .option(
      '--min-free <size>',
      'free space to keep after the download: 5% (default, of the file system) or 64MiB',
    )
    .option(
      '--stall-timeout <sec>',
      'no byte for this long: drop the connection and resume (default 60; 0 = off)',
      seconds('--stall-timeout'),
    )
    .option('--step-timeout <min>', "the job's step timer, renewed while bytes flow (default 10; 0 = off)")
    .option('--log-level <level>', 'fatal | error | warn | info | debug | trace | silent')
    .option('--local <data-dir>', "use `ota dev`'s endpoints.json, certificates and S3 endpoint")
    .option('--region <region>', 'S3 region (default: from the endpoint or the job document)')
    .option(
      '--role-alias <alias>',
      'get S3 credentials from the AWS IoT credentials provider with this role alias',
    )
    .option(
      '--credentials-endpoint <url>',
      'credentials provider endpoint (https://<prefix>.credentials.iot.<region>.amazonaws.com)',
    )
    .option('--s3-endpoint <url>', 'S3 endpoint override')
    .option(
      '--install-cmd <cmd>',
      'write the verified image into the device (/bin/sh -c; OTA_FILE, OTA_VERSION, …)',
    )
    .option('--reboot-cmd <cmd>', 'reboot after a successful install; the job finishes after the restart')
    .option('--health-cmd <cmd>', 'self-test of the new version: exit 0 commits, anything else rolls back')
    .option('--rollback-cmd <cmd>', 'put the previous version back after a failed self-test or reboot')
    .option(
      '--hook-timeout <sec>',
      'time limit of each of those commands (default 300)',
      seconds('--hook-timeout'),
    )
    .option('--max-boot-attempts <n>', 'restarts without a commit before rolling back (default 3)')
    .option('--slots <dir>', 'the built-in A/B installer: <dir>/a, <dir>/b and the <dir>/current switch')
    .option(
      '--trusted-key <pem>',
      'public key (PEM file) that signs images; repeatable; with one, unsigned images are refused',
      (v: string, prev: string[] | undefined) => [...(prev ?? []), v],
    )
    .option('--device-type <type>', "this device's type; images for another firmware.deviceType are refused")
    .option('--config <file>', 'JSON config file (same keys as the flags, camelCase)')
    .option('--once', 'exit when no job is pending')
    .action(async (flags) => {
      const warnings: ConfigWarning[] = [];
      // Durations stay in seconds here: resolveAgentConfig turns each into its `…Ms` key.
      const config = resolveAgentConfig({
        flags: { ...flags, trustedKeys: flags.trustedKey, stepTimeoutMinutes: flags.stepTimeout },
        env: process.env,
        onWarning: (w) => warnings.push(w),
      });
      // A stale endpoints.json then reads "the local stack at <dir> is not running", as for `ota job`.
      if (config.local) noteLocalStack(config.local);
      const logger = createLogger({ level: config.logLevel, base: { thing: config.thingName } });
      for (const w of warnings) logger.warn({ key: w.key, suggestion: w.suggestion }, w.message);
      const controller = new AbortController();
      // The first SIGINT/SIGTERM stops at a safe point; with the handlers gone, a second one kills.
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        controller.abort();
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      const agent = startAgent({ config, output: process.stdout, logger, signal: controller.signal });
      const summary = await agent.done;
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      // A stop (SIGTERM, Ctrl-C) is no failure: the job it interrupted resumes at the next start.
      const failed = summary.jobs.filter((j) => j.status === 'FAILED');
      for (const j of summary.jobs.filter((x) => x.status === 'INTERRUPTED')) {
        process.stderr.write(
          `ota agent: stopped; ${j.jobId} stays IN_PROGRESS and resumes when the agent starts again\n`,
        );
      }
      const rebooting = summary.jobs.find((j) => j.status === 'REBOOTING');
      if (rebooting) {
        process.stderr.write(
          `ota agent: ${rebooting.jobId}: the reboot command ran; the job finishes when the agent starts again\n`,
        );
      }
      process.stderr.write(
        `ota agent: ${summary.jobsProcessed} job(s) processed` +
          (summary.jobs.length ? `: ${summary.jobs.map((j) => `${j.jobId} ${j.status}`).join(', ')}` : '') +
          `; current version ${summary.currentVersion}\n`,
      );
      if (config.once && failed.length > 0) process.exitCode = 1;
    });
}
