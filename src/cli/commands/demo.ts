import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import {
  DeleteJobCommand,
  DescribeJobExecutionCommand,
  type IoTClient,
  ResourceNotFoundException,
} from '@aws-sdk/client-iot';
import { type Command, InvalidArgumentError } from 'commander';
import { DEFAULT_THING, type LocalStack, startLocalStack } from '../../cloud/stack.ts';
import {
  type AgentConfig,
  type AgentSummary,
  type DeviceHooks,
  readSlots,
  resolveAgentConfig,
  startAgent,
} from '../../device/index.ts';
import { iotClientFor, s3ClientFor } from '../../operator/clients.ts';
import { putFirmware } from '../../operator/firmware.ts';
import { writeDeterministicImage } from '../../operator/image.ts';
import { createJob } from '../../operator/jobs.ts';
import { type PacedLink, startPacedLink } from '../../operator/paced-link.ts';
import { operatorConnection, watchProgress } from '../../operator/watch.ts';
import { OtaError } from '../../shared/errors.ts';
import { createLogger, type Logger } from '../../shared/log.ts';
import { json } from '../format.ts';
import { parsePositiveInt } from '../options.ts';
import { FleetProgressView, formatBytes } from '../progress-view.ts';

/** The original document's job (docs/original.md). */
export const DEMO = {
  jobId: 'rasp-ota-test',
  thing: DEFAULT_THING,
  key: 'firmware/CV150-C3_0.6.6/cv150_ubifs.img',
  size: 87_232_512,
  newVersion: '41811020',
  currentVersion: '41811019',
} as const;

export type DemoScenario = 'commit' | 'rollback';

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description(
      "the original's OTA end to end on the embedded local stack, then install into an A/B slot, reboot, self-test and commit (what `npm start` runs)",
    )
    .option('--data-dir <dir>', 'data dir to use (default: a temporary one, removed afterwards)')
    .option('--size <bytes>', 'image size', parsePositiveInt('--size'), DEMO.size)
    .option(
      '--rate <MB/s>',
      'pace the download over a simulated link of this many MB/s (0: loopback speed)',
      (v: string) => {
        const n = Number(v);
        if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('--rate: must be a number >= 0');
        return n;
      },
      25,
    )
    .option(
      '--scenario <name>',
      'commit: the self-test passes and the new slot is committed; rollback: it fails and the old slot comes back',
      (v: string) => {
        if (v !== 'commit' && v !== 'rollback')
          throw new InvalidArgumentError('--scenario: commit or rollback');
        return v;
      },
      'commit',
    )
    .option('--log-level <level>', 'log level of the stack and agent', 'warn')
    .option('--keep', 'keep the stack and its dashboard up after the run, until Ctrl-C')
    .action(async (flags) => {
      const temporary = !flags.dataDir;
      const dataDir = flags.dataDir ? resolve(flags.dataDir) : mkdtempSync(join(tmpdir(), 'ota-demo-'));
      const out = process.stdout;
      const logger = createLogger({ level: flags.logLevel });
      const say = (s: string) => out.write(`${s}\n`);
      say(`ota demo: the original JobProgress.py flow on the embedded local stack (data dir ${dataDir})`);

      // Ports 0: the demo never collides with an `ota dev` already running on the default ports.
      const stack = await startLocalStack({
        dataDir,
        mqttPort: 0,
        wsPort: 0,
        iotPort: 0,
        s3Port: 0,
        dashboardPort: 0,
        logger,
      });
      say(
        `      dashboard: ${stack.endpoints.dashboard?.url} (open it in a browser to watch the rollout live)`,
      );
      const view = new FleetProgressView(out);
      let watch: ReturnType<typeof watchProgress> | undefined;
      let link: PacedLink | undefined;
      try {
        const { endpoints } = stack;
        await stack.ensureThing(DEMO.thing);
        say(
          `[1/7] local stack up: mqtts://${endpoints.mqtt.host}:${endpoints.mqtt.port}, IoT ${endpoints.iot.endpoint}, S3 ${endpoints.s3.endpoint}`,
        );

        const iot = await publishDemoJob(stack, dataDir, flags.size, say);

        watch = watchProgress(operatorConnection(endpoints), { onDevice: (d) => view.update(d) });
        await watch.ready;

        // On loopback the image arrives in a fraction of a second; a paced link makes the progress visible.
        if (flags.rate > 0) link = await startPacedLink(endpoints.s3.endpoint, flags.rate * 1e6);

        const { config, slots } = demoDeviceConfig(dataDir, flags.logLevel, link);
        say(
          `[5/7] agent ${DEMO.thing} at version ${DEMO.currentVersion}, A/B slots in ${slots} (slot a runs); watcher on CarVi/test/firmware/+` +
            (link
              ? `\n      the device reaches S3 over a simulated ${flags.rate} MB/s link (--rate 0 for loopback speed)`
              : '') +
            '\n',
        );
        const device = new DemoDevice(config, view, logger.child({ thing: DEMO.thing }), flags.scenario);
        const first = await device.boot();
        view.log(`      the device reboots into slot ${(await readSlots(slots)).current}`);
        say('');
        const second = await device.boot();
        // Let the last progress message reach the watcher before the bars stop.
        await new Promise((r) => setTimeout(r, 300));
        view.stop();
        say(
          `[6/7] after the reboot: ${second.jobs.map((j) => `${j.jobId} ${j.status}`).join(', ') || 'no job'}`,
        );

        const e = await printOutcome(iot, first, second, slots, say);
        const expected = flags.scenario === 'rollback' ? 'FAILED' : 'SUCCEEDED';
        if (e?.status !== expected) {
          throw new OtaError(
            'OTA_DEMO_FAILED',
            `the job ended ${e?.status}, not ${expected}: ${e?.statusDetails?.detailsMap?.reason ?? ''}`,
          );
        }
        if (flags.keep) {
          say(`\nthe stack stays up (--keep): dashboard ${stack.endpoints.dashboard?.url}; Ctrl-C to stop`);
          await new Promise((r) => process.once('SIGINT', r).once('SIGTERM', r));
        }
      } finally {
        view.stop();
        await watch?.close();
        await link?.close();
        await stack.close();
        if (temporary) rmSync(dataDir, { recursive: true, force: true });
      }
    });
}

/**
 * The demo's device: the real agent with the built-in A/B installer (`--slots`), a reboot that ends the
 * agent as a real one would (the next boot() is the device coming back), and a self-test that checks the
 * slot that booted holds the image the job named, or fails on purpose (`--scenario rollback`).
 */
class DemoDevice {
  constructor(
    private readonly config: AgentConfig,
    private readonly view: FleetProgressView,
    private readonly logger: Logger,
    private readonly scenario: DemoScenario,
  ) {}

  async boot(): Promise<AgentSummary> {
    const view = this.view;
    const output = new Writable({
      write(chunk: Buffer, _enc, cb) {
        view.log(chunk.toString('utf8').replace(/\n$/, ''));
        cb();
      },
    });
    const agent = startAgent({
      config: this.config,
      output,
      logger: this.logger,
      hooks: this.hooks(),
      onEvent: (e) => {
        if (e.type === 'step-start' && ['install', 'health', 'commit', 'rollback'].includes(e.step)) {
          view.log(`      ${e.step}…`);
        }
      },
    });
    return agent.done;
  }

  private hooks(): DeviceHooks {
    const slots = this.config.slots as string;
    const view = this.view;
    const scenario = this.scenario;
    return {
      reboot: async (call) => view.log(`      reboot: ${call.version} is in the inactive slot; restarting`),
      health: async (call) => {
        const { current } = await readSlots(slots);
        if (scenario === 'rollback') {
          throw new Error(
            `the camera service did not come up on slot ${current} (ota demo --scenario rollback)`,
          );
        }
        const booted = await sha256File(join(slots, current));
        if (booted !== call.sha256) throw new Error(`slot ${current} does not hold the image of the job`);
        view.log(`      self-test: slot ${current} holds ${call.version} (sha256 ${booted.slice(0, 16)}…)`);
      },
    };
  }
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** [2/7]–[4/7]: uploads a deterministic image, writes the original's job document, creates the job. */
async function publishDemoJob(
  stack: LocalStack,
  dataDir: string,
  imageSize: number,
  say: (s: string) => void,
): Promise<IoTClient> {
  const { endpoints } = stack;
  const work = join(dataDir, 'demo');
  mkdirSync(work, { recursive: true });
  const image = await writeDeterministicImage(join(work, 'cv150_ubifs.img'), imageSize);
  const uploaded = await putFirmware({
    file: image.path,
    bucket: endpoints.s3.bucket,
    key: DEMO.key,
    version: DEMO.newVersion,
    region: endpoints.region,
    s3: s3ClientFor({ kind: 'local', endpoints }),
  });
  rmSync(image.path, { force: true });
  say(
    `[2/7] uploaded ${formatBytes(imageSize)} image to s3://${uploaded.bucket}/${uploaded.key} (sha256 ${uploaded.document.firmware.sha256.slice(0, 16)}…)`,
  );

  // The original's job document, exactly its four fields.
  const { version, size, region, url } = uploaded.document.firmware;
  const document = { firmware: { version, size, region, url } };
  const documentFile = join(work, 'rasp-ota-job-docs.json');
  writeFileSync(documentFile, `${JSON.stringify(document, null, 2)}\n`);
  say(`[3/7] job document ${documentFile}:\n${JSON.stringify(document, null, 2)}`);

  const iot = iotClientFor({ kind: 'local', endpoints });
  try {
    // A reused data dir still has the previous run's job: replace it, so running twice works.
    await iot.send(new DeleteJobCommand({ jobId: DEMO.jobId, force: true }));
  } catch (err) {
    if (!(err instanceof ResourceNotFoundException)) throw err;
  }
  await createJob(iot, { jobId: DEMO.jobId, things: [DEMO.thing], documentFile, continuous: true });
  say(`[4/7] created job ${DEMO.jobId} (CONTINUOUS) for ${DEMO.thing}`);

  return iot;
}

/** [7/7]: the execution as the service has it, and the summary line. */
async function printOutcome(
  iot: IoTClient,
  first: AgentSummary,
  second: AgentSummary,
  slots: string,
  say: (s: string) => void,
) {
  const execution = await iot.send(
    new DescribeJobExecutionCommand({ jobId: DEMO.jobId, thingName: DEMO.thing }),
  );
  const e = execution.execution;
  say(`\n[7/7] execution of ${DEMO.jobId} on ${DEMO.thing}:`);
  say(
    json({
      status: e?.status,
      statusDetails: e?.statusDetails?.detailsMap,
      executionNumber: e?.executionNumber,
      versionNumber: e?.versionNumber,
      queuedAt: e?.queuedAt,
      startedAt: e?.startedAt,
      lastUpdatedAt: e?.lastUpdatedAt,
    }),
  );
  const s = await readSlots(slots);
  const job = first.jobs.find((j) => j.jobId === DEMO.jobId);
  const seconds = job?.seconds ?? 0;
  say(
    `\nsummary: ${job?.bytes ?? 0} bytes in ${seconds.toFixed(2)} s ` +
      `(${seconds > 0 ? ((job?.bytes ?? 0) / 1e6 / seconds).toFixed(1) : '-'} MB/s), ` +
      `${first.progressMessages + second.progressMessages} progress messages, ` +
      `${first.statusDetailsUpdates + second.statusDetailsUpdates} status updates, ` +
      `${first.messagesPublished + second.messagesPublished} MQTT messages published in all; ` +
      `installed version now ${second.currentVersion}; slot ${s.current} runs, slot ${s.committed} is committed`,
  );
  return e;
}

/** The demo device's agent config: fresh folders on every run (so it is at 41811019 again), A/B slots. */
function demoDeviceConfig(
  dataDir: string,
  logLevel: string,
  link: PacedLink | undefined,
): { config: AgentConfig; slots: string } {
  const deviceDir = join(dataDir, 'device');
  rmSync(deviceDir, { recursive: true, force: true });
  const slots = join(deviceDir, 'slots');
  const config = resolveAgentConfig({
    flags: {
      local: dataDir,
      thingName: DEMO.thing,
      currentVersion: DEMO.currentVersion,
      downloadDir: join(deviceDir, 'firmware'),
      stateDir: join(deviceDir, 'state'),
      slots,
      once: true,
      logLevel,
      ...(link ? { s3Endpoint: link.endpoint } : {}),
    },
    env: {},
  });
  return { config, slots };
}
