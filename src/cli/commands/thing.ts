import { CreateThingCommand, ListThingsCommand, ResourceAlreadyExistsException } from '@aws-sdk/client-iot';
import type { Command } from 'commander';
import { createLocalThing } from '../../cloud/stack.ts';
import { iotClientFor } from '../../operator/clients.ts';
import { resolveDataDir } from '../../shared/endpoints.ts';
import { json, table } from '../format.ts';
import { dataDirOption, localEndpoints } from '../options.ts';

export function registerThingCommands(program: Command): void {
  const thing = program.command('thing').description('things (devices) of the local stack');
  thing
    .command('create <name>')
    .description('register a thing on the running local stack and issue its EC P-256 certificate')
    .addOption(dataDirOption())
    .option('--json', 'print JSON')
    .action(async (name: string, flags) => {
      const dataDir = resolveDataDir(flags.dataDir);
      const iot = iotClientFor({ kind: 'local', endpoints: localEndpoints(flags.dataDir) });
      const out = await createLocalThing(dataDir, name, async (thingName) => {
        try {
          await iot.send(new CreateThingCommand({ thingName }));
        } catch (err) {
          if (!(err instanceof ResourceAlreadyExistsException)) throw err;
        }
      });
      process.stdout.write(
        flags.json ? `${json(out)}\n` : `thing ${out.thingName}\n  cert ${out.cert}\n  key  ${out.key}\n`,
      );
    });
  thing
    .command('list')
    .description('list the things of the local stack')
    .addOption(dataDirOption())
    .option('--json', 'print JSON')
    .action(async (flags) => {
      const iot = iotClientFor({ kind: 'local', endpoints: localEndpoints(flags.dataDir) });
      const things: Array<{ thingName?: string; thingArn?: string }> = [];
      let nextToken: string | undefined;
      do {
        const out = await iot.send(new ListThingsCommand({ nextToken, maxResults: 250 }));
        things.push(...(out.things ?? []));
        nextToken = out.nextToken;
      } while (nextToken);
      process.stdout.write(
        flags.json
          ? `${json(things)}\n`
          : `${table(
              ['THING', 'ARN'],
              things.map((t) => [t.thingName, t.thingArn]),
            )}\n`,
      );
    });
}
