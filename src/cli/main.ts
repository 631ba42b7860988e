#!/usr/bin/env node
/**
 * The `ota` command line. This is the only layer that prints or exits: commands are typed async functions
 * elsewhere (src/operator, src/device, src/cloud) that return data or throw OtaError.
 */
import { Command } from 'commander';
import { registerAgentCommand } from './commands/agent.ts';
import { registerDemoCommand } from './commands/demo.ts';
import { registerDevCommand } from './commands/dev-command.ts';
import { registerFirmwareCommands } from './commands/firmware.ts';
import { registerJobCommands } from './commands/job.ts';
import { registerThingCommands } from './commands/thing.ts';
import { registerWatchCommand } from './commands/watch.ts';
import { reportError } from './errors.ts';

// The AWS SDK warns on every run that releases after January 2027 need Node 22; the README says so once.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const program = new Command('ota')
  .description(
    'OTA firmware updates over AWS IoT Jobs, with live progress, and an embedded local AWS IoT stack',
  )
  .showHelpAfterError()
  .configureHelp({ sortSubcommands: false });

registerDevCommand(program);
registerThingCommands(program);
registerFirmwareCommands(program);
registerJobCommands(program);
registerAgentCommand(program);
registerWatchCommand(program);
registerDemoCommand(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  process.exitCode = reportError(err);
});
