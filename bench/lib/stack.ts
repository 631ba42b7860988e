/**
 * The local stack as the benchmarks use it: its own process (`node bin/ota.js dev`, compiled), images
 * uploaded through the operator's S3 client, and presigned GET URLs for curl, boto3 and the HTTP clients.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateThingCommand } from '@aws-sdk/client-iot';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { createLocalThing } from '../../src/cloud/stack.ts';
import { iotClientFor, s3ClientFor, type Target } from '../../src/operator/clients.ts';
import { putFirmware } from '../../src/operator/firmware.ts';
import { writeDeterministicImage } from '../../src/operator/image.ts';
import { type Endpoints, readEndpoints } from '../../src/shared/endpoints.ts';
import { problems, ROOT } from './measure.ts';

export interface Stack {
  proc: ChildProcess;
  dataDir: string;
  endpoints: Endpoints;
  target: Target;
  /** S3 over HTTPS (`ota dev --s3-tls`). */
  tls: boolean;
  close(): Promise<void>;
}

/**
 * `root`: a built checkout whose `ota dev` runs (default this one; `--baseline DIR` for the "before").
 * An earlier checkout may predate the dashboard and its `--no-dashboard`: it gets only the flags every
 * version knows, and ports 0.
 */
export async function startStackProcess(opts: { s3Tls?: boolean; root?: string } = {}): Promise<Stack> {
  const root = opts.root ?? ROOT;
  const dataDir = await mkdtemp(join(tmpdir(), 'ota-bench-stack-'));
  const ports = ['mqtt', 'ws', 'wss', 'iot', 's3'].flatMap((p) => [`--${p}-port`, '0']);
  const proc = spawn(
    process.execPath,
    [
      join(root, 'bin/ota.js'),
      'dev',
      '--data-dir',
      dataDir,
      ...ports,
      ...(opts.s3Tls ? ['--s3-tls'] : []),
      // The dashboard subscribes to every progress message; the figures are for the stack alone.
      ...(root === ROOT ? ['--no-dashboard'] : []),
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], cwd: root },
  );
  await new Promise<void>((res, rej) => {
    let out = '';
    const timer = setTimeout(() => rej(new Error(`ota dev did not start: ${out}`)), 30_000);
    proc.stdout?.on('data', (d: Buffer) => {
      out += d;
      if (out.includes('is ready')) {
        clearTimeout(timer);
        res();
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`ota dev exited (${code}): ${out}`));
    });
  });
  proc.stdout?.resume();
  const endpoints = readEndpoints(dataDir);
  return {
    proc,
    dataDir,
    endpoints,
    target: { kind: 'local', endpoints },
    tls: opts.s3Tls === true,
    close: async () => {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await exited;
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export async function ensureThing(stack: Stack, thingName: string): Promise<void> {
  const iot = iotClientFor(stack.target);
  try {
    await createLocalThing(stack.dataDir, thingName, async (name) => {
      await iot.send(new CreateThingCommand({ thingName: name }));
    });
  } finally {
    iot.destroy();
  }
}

export interface Image {
  size: number;
  key: string;
  sha256: string;
  document: string;
}

export async function uploadImage(stack: Stack, scratch: string, size: number): Promise<Image> {
  const file = join(scratch, `image-${size}.bin`);
  const img = await writeDeterministicImage(file, size, `bench-${size}`);
  const s3 = s3ClientFor(stack.target);
  try {
    const put = await putFirmware({
      file,
      bucket: stack.endpoints.s3.bucket,
      key: `firmware/bench/image-${size}.img`,
      version: '2',
      region: stack.endpoints.region,
      s3,
    });
    if (put.document.firmware.sha256 !== img.sha256)
      problems.push(`upload of ${size} bytes: sha256 mismatch`);
    return { size, key: put.key, sha256: img.sha256, document: JSON.stringify(put.document) };
  } finally {
    s3.destroy();
    await rm(file, { force: true });
  }
}

export async function presignedUrl(stack: Stack, key: string): Promise<string> {
  const s3 = s3ClientFor(stack.target);
  try {
    return await getSignedUrl(s3, new GetObjectCommand({ Bucket: stack.endpoints.s3.bucket, Key: key }), {
      expiresIn: 3600,
    });
  } finally {
    s3.destroy();
  }
}
