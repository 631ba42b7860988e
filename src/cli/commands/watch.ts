import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import {
  isFinalState,
  operatorConnection,
  type WatchConnection,
  watchProgress,
} from '../../operator/watch.ts';
import { ValidationError } from '../../shared/errors.ts';
import { DEFAULT_PROGRESS_PREFIX } from '../../shared/topics.ts';
import { dataDirOption, localEndpoints, parseConnectPort, parsePositiveInt } from '../options.ts';
import { FleetProgressView } from '../progress-view.ts';

export function registerWatchCommand(program: Command): void {
  program
    .command('watch')
    .description("live progress of a fleet's OTA downloads: one bar per device")
    .option('-t, --topic <filter>', 'topic filter', `${DEFAULT_PROGRESS_PREFIX}/+`)
    .option('--json', 'print the raw messages as NDJSON instead of bars')
    .option('--count <n>', 'exit after N devices reached a final state', parsePositiveInt('--count'))
    .option('-e, --endpoint <host>', 'MQTT endpoint (AWS IoT); default: the local stack')
    .option('-p, --port <port>', 'MQTT port', parseConnectPort('--port'), 8883)
    .option('-r, --root-ca <file>', 'root CA (with --endpoint)')
    .option('-c, --cert <file>', 'client certificate (with --endpoint)')
    .option('-k, --key <file>', 'private key (with --endpoint)')
    .addOption(dataDirOption())
    .action(async (flags) => {
      let conn: WatchConnection;
      if (flags.endpoint) {
        for (const f of ['rootCa', 'cert', 'key'] as const) {
          if (!flags[f])
            throw new ValidationError(`--${f === 'rootCa' ? 'root-ca' : f}`, 'required with --endpoint');
        }
        conn = {
          host: flags.endpoint,
          port: flags.port,
          ca: readFileSync(flags.rootCa, 'utf8'),
          cert: readFileSync(flags.cert, 'utf8'),
          key: readFileSync(flags.key, 'utf8'),
        };
      } else {
        conn = operatorConnection(localEndpoints(flags.dataDir));
      }
      let view: FleetProgressView | undefined;
      const finished = new Set<string>();
      let resolveDone: () => void = () => {};
      const done = new Promise<void>((r) => {
        resolveDone = r;
      });
      const handle = watchProgress(conn, {
        topic: flags.topic,
        onMessage: (topic, raw, parsed) => {
          // receivedAt: the wall time of arrival, for whoever reads the log.
          if (flags.json) {
            process.stdout.write(
              `${JSON.stringify({ topic, receivedAt: new Date().toISOString(), message: parsed ?? raw.toString('utf8') })}\n`,
            );
          }
        },
        onDevice: (d) => {
          view?.update(d);
          if (isFinalState(d.state)) finished.add(d.device);
          if (flags.count && finished.size >= flags.count) resolveDone();
        },
      });
      // Rejects (and closes the connection) when the first connection fails: the CLI says why and exits.
      await handle.ready;
      if (!flags.json) view = new FleetProgressView();
      process.stderr.write(`watching ${flags.topic} (Ctrl-C to stop)\n`);
      process.once('SIGINT', resolveDone);
      process.once('SIGTERM', resolveDone);
      await done;
      view?.stop();
      await handle.close();
    });
}
