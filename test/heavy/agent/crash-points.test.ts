import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { readState } from '../../../src/device/install/state.ts';
import {
  agentFlags,
  createJob,
  debris,
  describeExecution,
  firmwareDoc,
  startWorld,
  type World,
} from '../../e2e/agent/helpers.ts';
import { ota } from '../../e2e/cli/helpers.ts';

/**
 * Power cuts at every durable step of the agent's disk protocol (docs/agent.md, "Commit protocol").
 * `test/helpers/crash-preload.mjs`, loaded into a real `ota agent` process, SIGKILLs it right before or
 * right after its N-th rename, symlink, unlink, copy, write-file, mkdir or fsync under the device's dir,
 * or the start or end of a hook command. The device: A/B slots, driven by the built-in installer
 * (`--slots`) or by shell commands as a U-Boot or RAUC setup would be, a reboot command that stops the
 * agent as a reboot would, and a self-test. After the cut, the agent is started once without network,
 * then again (as the device would after power comes back) until the job is terminal, and these must hold:
 * - the boot slot is the committed slot, and it holds the image of the version state.json names;
 * - the job's status is the truthful one (SUCCEEDED for a healthy image, FAILED "rolled back" for one
 *   whose self-test fails), and SUCCEEDED names that version;
 * - no partial, temp or failed image is left, and state.json holds no pending record or unsent report;
 * - the next update installs and SUCCEEDS.
 */

const PRELOAD = resolve(import.meta.dirname, '../../helpers/crash-preload.mjs');
const OLD = '41811019';
const NEW = '41811020';
const NEXT = '41811021';
const image = (marker: string) => Buffer.concat([Buffer.from(marker), Buffer.alloc(100_000, 3)]);
const OLD_IMAGE = image('OLDIMG');
const GOOD = image('HEALTHY');
const BROKEN = image('BROKEN');
const NEXT_IMAGE = image('NEXTOK');
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const imageOf: Record<string, Buffer> = { [OLD]: OLD_IMAGE, [NEXT]: NEXT_IMAGE };

type Variant = 'healthy' | 'unhealthy';
type Installer = 'slots' | 'commands';

/** Points `name` at `slot` atomically (a symlink made aside, renamed over), in shell. */
const point = (s: string, name: string, slot: string) =>
  `ln -sfn ${slot} ${s}/${name}.new && mv -T ${s}/${name}.new ${s}/${name}`;

function installerFlags(installer: Installer, s: string): string[] {
  // The self-test fails on the broken image only: the old one passes it, as a real one would.
  const healthy = `! head -c 6 ${s}/current | grep -q BROKEN`;
  if (installer === 'slots') return ['--slots', s, '--health-cmd', healthy];
  const target = `t=$([ "$(readlink ${s}/committed)" = a ] && echo b || echo a)`;
  return [
    '--install-cmd',
    `${target} && cp "$OTA_FILE" ${s}/$t.new && sync ${s}/$t.new && mv ${s}/$t.new ${s}/$t && ${point(s, 'current', '$t')}`,
    '--health-cmd',
    `${healthy} && ${point(s, 'committed', `$(readlink ${s}/current)`)}`,
    '--rollback-cmd',
    point(s, 'current', `$(readlink ${s}/committed)`),
  ];
}
interface Point {
  installer: Installer;
  variant: Variant;
  /** Which agent run is cut: 1 (download, install, reboot) or 2 (self-test, commit or rollback). */
  run: 1 | 2;
  step: number;
  when: 'before' | 'after';
}

describe('power cuts at every durable step: device and cloud agree on what runs', () => {
  let w: World;
  let seq = 0;
  before(async () => {
    w = await startWorld();
    for (const [key, body] of [
      ['firmware/good/fw.img', GOOD],
      ['firmware/broken/fw.img', BROKEN],
      ['firmware/next/fw.img', NEXT_IMAGE],
    ] as const)
      await w.s3.send(new PutObjectCommand({ Bucket: w.bucket, Key: key, Body: body }));
  });
  after(async () => {
    await w?.close();
  });

  /**
   * A new device on OLD: its own thing, dirs, and A/B slots with OLD committed in slot a. `slots`: the
   * built-in installer. `commands`: the same slots driven by shell commands, as a U-Boot or RAUC setup
   * is (the install writes the slot that is not committed and switches the boot slot; the self-test
   * marks the running slot good itself; the rollback switches back), so the agent sees only hooks.
   */
  async function device(installer: Installer) {
    const thing = `Crash_${++seq}`;
    await w.stack.ensureThing(thing);
    const dev = join(w.dir, thing);
    const slots = join(dev, 'slots');
    mkdirSync(slots, { recursive: true });
    writeFileSync(join(slots, 'a'), OLD_IMAGE);
    symlinkSync('a', join(slots, 'current'));
    symlinkSync('a', join(slots, 'committed'));
    const agent = (crash: Record<string, string> = {}, extra: string[] = []) =>
      ota(
        [
          'agent',
          ...agentFlags(w, thing, {
            currentVersion: OLD,
            downloadDir: join(dev, 'dl'),
            stateDir: join(dev, 'state'),
            logLevel: 'silent',
          }),
          ...installerFlags(installer, slots),
          '--reboot-cmd',
          'kill -TERM $OTA_AGENT_PID',
          '--once',
          ...extra,
        ],
        {
          timeoutMs: 60_000,
          env: { NODE_OPTIONS: `--import ${PRELOAD}`, OTA_CRASH_ROOT: dev, ...crash },
        },
      );
    return { thing, dev, slots, agent };
  }

  type Device = Awaited<ReturnType<typeof device>>;

  /** Runs the agent (no cuts) until the job is terminal; at most `max` starts. */
  async function untilTerminal(d: Device, jobId: string, max = 6): Promise<string | undefined> {
    let status: string | undefined;
    for (let i = 0; i < max; i++) {
      status = (await describeExecution(w, d.thing, jobId))?.status;
      if (status !== 'QUEUED' && status !== 'IN_PROGRESS') return status;
      await d.agent();
    }
    return (await describeExecution(w, d.thing, jobId))?.status;
  }

  async function newJob(d: Device, variant: Variant | 'next'): Promise<string> {
    const jobId = `${d.thing}-${variant}`;
    const [key, body, version] =
      variant === 'healthy'
        ? ['firmware/good/fw.img', GOOD, NEW]
        : variant === 'unhealthy'
          ? ['firmware/broken/fw.img', BROKEN, NEW]
          : ['firmware/next/fw.img', NEXT_IMAGE, NEXT];
    await createJob(w, d.thing, jobId, firmwareDoc(w, body.length, { version, sha256: sha(body) }, key));
    return jobId;
  }

  /** Every invariant of the header, for a device whose job just ended. */
  async function assertAgreed(d: Device, jobId: string, variant: Variant, label: string) {
    const exec = await describeExecution(w, d.thing, jobId);
    const state = await readState(join(d.dev, 'state'));
    const current = readlinkSync(join(d.slots, 'current'));
    const committed = readlinkSync(join(d.slots, 'committed'));
    const running = sha(readFileSync(join(d.slots, committed)));
    const why = `${label}: ${exec?.status} ${JSON.stringify(exec?.statusDetails?.detailsMap)} state ${JSON.stringify(state)}`;
    assert.equal(current, committed, `${why}: the boot slot is not the committed one`);
    if (variant === 'healthy') {
      assert.equal(exec?.status, 'SUCCEEDED', why);
      assert.equal(exec?.statusDetails?.detailsMap?.version, NEW, why);
      assert.equal(state.currentVersion, NEW, why);
      assert.equal(running, sha(GOOD), `${why}: the committed slot does not hold ${NEW}`);
    } else {
      assert.equal(exec?.status, 'FAILED', why);
      assert.match(exec?.statusDetails?.detailsMap?.reason ?? '', /^rolled back to 41811019: /, why);
      assert.equal(state.currentVersion ?? OLD, OLD, why);
      assert.equal(running, sha(imageOf[OLD] as Buffer), `${why}: the committed slot does not hold ${OLD}`);
    }
    assert.equal(state.pending, undefined, `${why}: a pending record is left`);
    // Cut after the service accepted the report but before state.json forgot it: the report is the
    // cloud's status already, and the next start-next sends it once more and clears it (checked below).
    if (state.report)
      assert.deepEqual(
        [state.report.jobId, state.report.status],
        [jobId, exec?.status],
        `${why}: a report the cloud does not have`,
      );
    assert.deepEqual(debris(join(d.dev, 'dl')), [], `${why}: partial or temp files are left`);
    const images = existsSync(join(d.dev, 'dl')) ? readdirSync(join(d.dev, 'dl')) : [];
    if (variant === 'unhealthy') assert.deepEqual(images, [], `${why}: the failed image is left`);
  }

  /** The steps one uncut run takes: the crash points of that run. */
  async function enumerate(installer: Installer, variant: Variant, run: 1 | 2): Promise<number> {
    const d = await device(installer);
    const jobId = await newJob(d, variant);
    const logFile = join(d.dev, 'steps.log');
    if (run === 2) await d.agent();
    await d.agent({ OTA_CRASH_LOG: logFile });
    await untilTerminal(d, jobId);
    return existsSync(logFile) ? readFileSync(logFile, 'utf8').trim().split('\n').length : 0;
  }

  async function cutAt(p: Point): Promise<void> {
    const d = await device(p.installer);
    const jobId = await newJob(d, p.variant);
    if (p.run === 2) await d.agent();
    await d.agent({ OTA_CRASH_AT: `${p.step}:${p.when}` });
    // Power comes back where there is no network (nothing answers on port 1): the start reads the
    // state, cannot connect and gives up; it must change nothing that the next start relies on.
    const offline = await d.agent({}, ['--port', '1', '--connect-timeout', '1']);
    assert.notEqual(offline.code, 0, 'the offline start connected');
    const label = `${p.installer}, ${p.variant}, run ${p.run}, ${p.when} step ${p.step}`;
    const status = await untilTerminal(d, jobId);
    assert.ok(status !== 'QUEUED' && status !== 'IN_PROGRESS', `${label}: the job is stuck ${status}`);
    await assertAgreed(d, jobId, p.variant, label);
    // The next update works.
    const next = await newJob(d, 'next');
    assert.equal(await untilTerminal(d, next), 'SUCCEEDED', `${label}: the next update did not succeed`);
    const state = await readState(join(d.dev, 'state'));
    assert.equal(state.currentVersion, NEXT, `${label}: the next update is not the current version`);
    assert.equal(state.report, undefined, `${label}: a report is still waiting after the next update`);
    const committed = readlinkSync(join(d.slots, 'committed'));
    assert.equal(sha(readFileSync(join(d.slots, committed))), sha(NEXT_IMAGE), `${label}: next image`);
  }

  for (const installer of ['slots', 'commands'] as const) {
    for (const variant of ['healthy', 'unhealthy'] as const) {
      for (const run of [1, 2] as const) {
        test(`${installer}, ${variant} image, cuts in agent run ${run}: every step, before and after`, async (t) => {
          const steps = await enumerate(installer, variant, run);
          assert.ok(steps >= 3, `only ${steps} durable steps found: the preload did not load`);
          t.diagnostic(`${steps} crash points × before/after = ${steps * 2} scenarios`);
          for (let step = 1; step <= steps; step++) {
            for (const when of ['before', 'after'] as const)
              await cutAt({ installer, variant, run, step, when });
          }
        });
      }
    }
  }
});
