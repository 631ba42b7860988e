import { type Command, Option } from 'commander';
import { CLIENT_ID_POLICIES } from '../../cloud/broker/types.ts';
import { resolveDataDir } from '../../shared/endpoints.ts';
import { createLogger } from '../../shared/log.ts';
import { dataDirOption, parsePort, parsePositiveInt } from '../options.ts';
import { DEV_DEFAULT_PORTS, runDev } from './dev.ts';

export function registerDevCommand(program: Command): void {
  program
    .command('dev')
    .description('run the local AWS IoT stack: MQTT broker (mTLS + WS), Jobs service, IoT API and S3')
    .addOption(dataDirOption())
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--mqtt-port <port>', 'MQTT over TLS port', parsePort('--mqtt-port'), DEV_DEFAULT_PORTS.mqtt)
    .option('--ws-port <port>', 'MQTT over WebSocket port', parsePort('--ws-port'), DEV_DEFAULT_PORTS.ws)
    .option(
      '--wss-port <port>',
      'MQTT over WebSocket over TLS port (as AWS IoT serves it)',
      parsePort('--wss-port'),
      DEV_DEFAULT_PORTS.wss,
    )
    .option(
      '--iot-port <port>',
      'IoT control-plane HTTP port',
      parsePort('--iot-port'),
      DEV_DEFAULT_PORTS.iot,
    )
    .option('--s3-port <port>', 'S3 API port', parsePort('--s3-port'), DEV_DEFAULT_PORTS.s3)
    .option('--s3-tls', 'serve S3 over HTTPS with a certificate from the local CA (as real S3 is)')
    .option(
      '--anonymous-port <port>',
      'also open a plain-TCP MQTT listener without authentication (read-only)',
      parsePort('--anonymous-port'),
    )
    .option(
      '--dashboard-port <port>',
      'fleet dashboard HTTP port (0 = free)',
      parsePort('--dashboard-port'),
      DEV_DEFAULT_PORTS.dashboard,
    )
    .option('--no-dashboard', 'do not serve the fleet dashboard')
    .option('--progress-prefix <prefix>', 'progress topic prefix', 'CarVi/test/firmware')
    .addOption(
      new Option(
        '--client-ids <policy>',
        "which MQTT client ids a thing certificate may use: its thing name only (AWS's recommended " +
          'policy), or any (several connections per certificate, but one thing can disconnect another)',
      )
        .choices(CLIENT_ID_POLICIES)
        .default('thing-name'),
    )
    .option(
      '--minute-ms <ms>',
      'length of a Jobs "minute": timeouts and presigned-URL lifetimes scale with it (testing)',
      parsePositiveInt('--minute-ms'),
    )
    .option('--no-reject-in-progress', 'refuse IN_PROGRESS → REJECTED (AWS behaviour is unconfirmed)')
    .option(
      '--jobs-rate-limit <n>',
      'Jobs MQTT API requests per second per thing; over it the request is answered RequestThrottled',
      parsePositiveInt('--jobs-rate-limit'),
    )
    .option('--log-level <level>', 'pino log level', 'info')
    .action(async (flags) => {
      const logger = createLogger({ level: flags.logLevel });
      const { stack, banner } = await runDev({
        dataDir: resolveDataDir(flags.dataDir),
        host: flags.host,
        mqttPort: flags.mqttPort,
        wsPort: flags.wsPort,
        wssPort: flags.wssPort,
        clientIds: flags.clientIds,
        iotPort: flags.iotPort,
        s3Port: flags.s3Port,
        s3Tls: flags.s3Tls === true,
        anonymousPort: flags.anonymousPort,
        dashboardPort: flags.dashboard ? flags.dashboardPort : undefined,
        progressPrefix: flags.progressPrefix,
        minuteMs: flags.minuteMs,
        allowRejectFromInProgress: flags.rejectInProgress,
        jobsRequestsPerSecondPerThing: flags.jobsRateLimit,
        logger,
      });
      // The handlers go in before the banner: whoever waits for "ready" may signal at once, and a signal
      // with no handler yet would kill the process instead of stopping the stack.
      const stopped = new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          process.stdout.write(`\nota dev: ${signal}, stopping…\n`);
          resolve();
        };
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
      });
      process.stdout.write(`${banner}\n`);
      await stopped;
      await stack.close();
      process.stdout.write('ota dev: stopped\n');
    });
}
