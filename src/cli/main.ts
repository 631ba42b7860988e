#!/usr/bin/env node
/**
 * The `ota` command line. This is the only layer that prints or exits: commands are typed async functions
 * elsewhere (src/operator, src/device, src/cloud) that return data or throw OtaError.
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { missingOptionalPackage, reportError } from './errors.ts';

// The AWS SDK warns on every run that releases after January 2027 need Node 22; the README says so once.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

type Register = (program: Command) => void;

/**
 * Each command's module is loaded only when that command runs: `ota agent` on a Raspberry Pi must not pay
 * (in start-up time and resident memory) for the broker, SQLite and the IoT SDK it never uses.
 * `ota --help` and unknown commands load them all, so help lists everything.
 */
const COMMANDS: Record<string, () => Promise<Register>> = {
  dev: async () => (await import('./commands/dev-command.ts')).registerDevCommand,
  thing: async () => (await import('./commands/thing.ts')).registerThingCommands,
  firmware: async () => (await import('./commands/firmware.ts')).registerFirmwareCommands,
  job: async () => (await import('./commands/job.ts')).registerJobCommands,
  agent: async () => (await import('./commands/agent.ts')).registerAgentCommand,
  watch: async () => (await import('./commands/watch.ts')).registerWatchCommand,
  demo: async () => (await import('./commands/demo.ts')).registerDemoCommand,
  sim: async () => (await import('./commands/sim.ts')).registerSimCommand,
  dashboard: async () => (await import('./commands/dashboard.ts')).registerDashboardCommand,
  provision: async () => (await import('./commands/provision.ts')).registerProvisionCommand,
};

/** package.json's version: the same file from src/cli (tsx) and from dist/cli (compiled). */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version?: string;
  };
  return pkg.version ?? '0.0.0';
}

/**
 * A mistyped flag gets commander's one error line and a pointer to the help of the command that was
 * typed, not the whole help (which pushed the error off the screen).
 */
function hintOnError(cmd: Command, path: string): void {
  cmd.showHelpAfterError(`(run \`${path} --help\` for usage)`);
  for (const sub of cmd.commands) hintOnError(sub, `${path} ${sub.name()}`);
}

async function main(argv: string[]): Promise<void> {
  const program = new Command('ota')
    .description(
      'OTA firmware updates over AWS IoT Jobs, with live progress, and an embedded local AWS IoT stack',
    )
    .version(packageVersion(), '-V, --version', 'print the version')
    // `ota --version` only before a command: `ota firmware put --version 41811020` is the firmware's.
    .enablePositionalOptions()
    .configureHelp({ sortSubcommands: false });
  const name = argv[2];
  const versionOnly = name === '-V' || name === '--version';
  const selected = versionOnly
    ? []
    : name !== undefined && Object.hasOwn(COMMANDS, name)
      ? [name]
      : Object.keys(COMMANDS);
  for (const n of selected) {
    const load = COMMANDS[n];
    if (!load) continue;
    try {
      (await load())(program);
    } catch (err) {
      if (selected.length === 1 || missingOptionalPackage(err) === undefined) throw err;
      // `ota --help` on an agent-only install (docs/install.md): list the command and what it needs.
      program
        .command(n)
        .description(
          `(not in this agent-only install: needs ${missingOptionalPackage(err)}, see docs/install.md)`,
        )
        .allowUnknownOption()
        .allowExcessArguments()
        .action(() => {
          throw err;
        });
    }
  }
  hintOnError(program, 'ota');
  await program.parseAsync(argv);
}

main(process.argv).catch((err: unknown) => {
  process.exitCode = reportError(err);
});
