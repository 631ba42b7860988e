import type { Command } from 'commander';
import { serveDashboard } from '../../dashboard/serve.ts';
import { resolveDataDir } from '../../shared/endpoints.ts';
import { createLogger } from '../../shared/log.ts';
import { DEFAULT_PROGRESS_PREFIX } from '../../shared/topics.ts';
import { noteLocalStack } from '../errors.ts';
import { awsOptions, dataDirOption, parsePort } from '../options.ts';

/** `ota dev` serves the dashboard on 8790; a separate `ota dashboard` defaults to the next port. */
export const DASHBOARD_DEFAULT_PORT = 8791;

export function registerDashboardCommand(program: Command): void {
  const cmd = program
    .command('dashboard')
    .description('serve the live fleet dashboard in the browser (the local stack, or AWS IoT with --aws)')
    .option(
      '--host <host>',
      'address to listen on (0.0.0.0 to reach it from a phone on the LAN)',
      '127.0.0.1',
    )
    .option('--port <port>', 'HTTP port (0 = free)', parsePort('--port'), DASHBOARD_DEFAULT_PORT)
    .option('--progress-prefix <prefix>', 'progress topic prefix', DEFAULT_PROGRESS_PREFIX)
    .option('--log-level <level>', 'pino log level', 'warn')
    .addOption(dataDirOption());
  for (const o of awsOptions()) cmd.addOption(o);
  cmd.action(async (flags) => {
    const dataDir = resolveDataDir(flags.dataDir);
    // A refused connection then reads "the local stack at <dir> is not running" (src/cli/errors.ts).
    if (!flags.aws) noteLocalStack(dataDir);
    const dash = await serveDashboard({
      aws: flags.aws,
      region: flags.region,
      profile: flags.profile,
      dataDir,
      host: flags.host,
      port: flags.port,
      progressPrefix: flags.progressPrefix,
      logger: createLogger({ level: flags.logLevel }),
    });
    process.stdout.write(`ota dashboard: ${dash.url}   (${dash.label}; Ctrl-C to stop)\n`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    await dash.close();
  });
}
