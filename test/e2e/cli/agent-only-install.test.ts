import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { iotClientFor, s3ClientFor } from '../../../src/operator/clients.ts';
import { createJob } from '../../../src/operator/jobs.ts';
import { startTestStack, type TestStack } from '../../helpers/stack.ts';
import { ota, type RunResult } from './helpers.ts';

/**
 * `ota agent` on a device installed with `npm install --omit=optional` (docs/install.md): the cloud-side
 * packages are not there. The package is laid out as npm installs it (bin/, dist/, package.json) next to
 * a node_modules that has every package of this checkout except the cloud-only ones, and the agent
 * completes a real job from it.
 */
const ROOT = resolve(import.meta.dirname, '../../..');
// package.json's optionalDependencies: the packages an agent-only install leaves out.
const CLOUD_ONLY = Object.keys(
  (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { optionalDependencies: object })
    .optionalDependencies,
);
const KEY = 'firmware/CV150-C3_0.6.6/cv150_ubifs.img';
const IMAGE = Buffer.alloc(1024 * 1024 + 17, 9);
let t: TestStack;
let pkg: string;

/** The package as installed: its files, and node_modules without the cloud-only packages. */
function agentOnlyInstall(into: string): string {
  const dir = join(into, 'node_modules', 'ota-progress');
  mkdirSync(dir, { recursive: true });
  const distMain = join(ROOT, 'dist', 'cli', 'main.js');
  assert.ok(existsSync(distMain), 'dist/ is missing: run `npm run build` (npm test does)');
  for (const f of ['package.json', 'bin', 'dist']) cpSync(join(ROOT, f), join(dir, f), { recursive: true });
  const modules = join(into, 'node_modules');
  for (const entry of readdirSync(join(ROOT, 'node_modules'))) {
    if (entry.startsWith('.')) continue;
    const names = entry.startsWith('@')
      ? readdirSync(join(ROOT, 'node_modules', entry)).map((n) => `${entry}/${n}`)
      : [entry];
    for (const name of names) {
      if (CLOUD_ONLY.includes(name)) continue;
      mkdirSync(join(modules, name, '..'), { recursive: true });
      symlinkSync(join(ROOT, 'node_modules', name), join(modules, name));
    }
  }
  return dir;
}

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return ota(args, { bin: join(pkg, 'bin', 'ota.js'), cwd: t.dir, env });
}

before(async () => {
  t = await startTestStack('ota-agent-only');
  pkg = agentOnlyInstall(join(t.dir, 'device'));
  const e = t.stack.endpoints;
  await s3ClientFor({ kind: 'local', endpoints: e }).send(
    new PutObjectCommand({ Bucket: e.s3.bucket, Key: KEY, Body: IMAGE }),
  );
  await createJob(iotClientFor({ kind: 'local', endpoints: e }), {
    jobId: 'agent-only',
    things: ['RaspberryPi_2'],
    document: JSON.stringify({
      firmware: {
        version: '41811020',
        size: IMAGE.length,
        region: 'us-west-2',
        url: `https://s3.amazonaws.com/${e.s3.bucket}/${KEY}`,
      },
    }),
  });
});
after(async () => {
  await t?.close();
});

test('the cloud-only packages really are absent from the install', () => {
  const req = createRequire(join(pkg, 'dist', 'cli', 'main.js'));
  for (const name of CLOUD_ONLY) assert.throws(() => req.resolve(name), { code: 'MODULE_NOT_FOUND' }, name);
  assert.ok(req.resolve('mqtt'));
});

test('ota agent runs a job to SUCCEEDED without better-sqlite3, aedes or s3rver', async () => {
  const downloadDir = join(t.dir, 'device', 'firmware');
  const r = await run([
    'agent',
    '--local',
    t.stack.dataDir,
    '-n',
    'RaspberryPi_2',
    '--current-version',
    '41811019',
    '--download-dir',
    downloadDir,
    '--once',
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /agent-only SUCCEEDED/);
  // Its logs (stderr is a pipe: JSON lines) name the thing once per line, never "thing":"X","thing":"X".
  const logLines = r.stderr.split('\n').filter((l) => l.startsWith('{'));
  assert.ok(logLines.length > 0, r.stderr);
  for (const l of logLines) assert.equal(l.match(/"thing":/g)?.length, 1, l);
  const file = readFileSync(join(downloadDir, 'cv150_ubifs.img'));
  assert.equal(
    createHash('sha256').update(file).digest('hex'),
    createHash('sha256').update(IMAGE).digest('hex'),
  );
});

test('the cloud commands say what is missing in one line; --help still lists everything', async () => {
  const dev = await run(['dev', '--data-dir', join(t.dir, 'nowhere'), '--mqtt-port', '0']);
  assert.equal(dev.code, 2, dev.stderr);
  assert.deepEqual(dev.stderr.trim().split('\n').length, 1, dev.stderr);
  assert.match(
    dev.stderr,
    /^ota: this command needs \S+, which an agent-only install \(npm install --omit=optional\) leaves out/,
  );
  const job = await run(['job', 'list', '--data-dir', t.stack.dataDir]);
  assert.equal(job.code, 2, job.stderr);
  assert.match(job.stderr, /^ota: this command needs @aws-sdk\/client-iot, which an agent-only install/);
  const help = await run(['--help']);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /agent\s+.*the device agent/);
  assert.match(help.stdout, /dev\s+\(not in this agent-only install: needs /);
});
