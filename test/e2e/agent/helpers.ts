import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before } from 'node:test';
import {
  CancelJobCommand,
  CreateJobCommand,
  DescribeJobExecutionCommand,
  DescribeThingCommand,
  IoTClient,
} from '@aws-sdk/client-iot';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import mqtt, { type MqttClient } from 'mqtt';
import { type LocalStack, type LocalStackOptions, startLocalStack } from '../../../src/cloud/stack.ts';
import { type AgentEvent, type AgentSummary, startAgent } from '../../../src/device/agent.ts';
import { type AgentConfig, resolveAgentConfig } from '../../../src/device/config/agent-config.ts';
import { localS3ClientConfig } from '../../../src/shared/s3-client-config.ts';
import { startTestStack } from '../../helpers/stack.ts';

export interface World {
  dir: string;
  stack: LocalStack;
  /** Closes the stack, waits `downMs`, starts it again on the same ports and data dir (startWorld's). */
  restart?: (downMs: number) => Promise<void>;
  iot: IoTClient;
  s3: S3Client;
  bucket: string;
  close(): Promise<void>;
}

export async function startWorld(options: Omit<LocalStackOptions, 'dataDir'> = {}): Promise<World> {
  const { dir, stack, close } = await startTestStack('ota-e2e-agent', { things: [], ...options });
  const ep = stack.endpoints;
  const iot = new IoTClient({
    endpoint: ep.iot.endpoint,
    region: ep.region,
    credentials: { accessKeyId: ep.iot.accessKeyId, secretAccessKey: ep.iot.secretAccessKey },
  });
  const s3 = new S3Client(localS3ClientConfig(ep.s3.endpoint, ep.s3, ep.region));
  let current = stack;
  let restarted: LocalStack | undefined;
  const world: World = {
    dir,
    stack,
    iot,
    s3,
    bucket: ep.s3.bucket,
    restart: async (downMs) => {
      const port = (u: string) => Number(new URL(u).port);
      await current.close();
      await new Promise((r) => setTimeout(r, downMs));
      current = await startLocalStack({
        dataDir: stack.dataDir,
        host: ep.mqtt.host,
        mqttPort: ep.mqtt.port,
        wsPort: port(ep.ws.url),
        iotPort: port(ep.iot.endpoint),
        s3Port: port(ep.s3.endpoint),
        things: [],
        ...options,
      });
      restarted = current;
      world.stack = current;
    },
    close: async () => {
      iot.destroy();
      s3.destroy();
      if (!restarted) return close();
      await restarted.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return world;
}

/** Files a terminal outcome must not leave in a download dir: partials, sidecars, temp files. */
export function debris(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true })
    .map(String)
    .filter((n) => /\.(part|part\.json|tmp)$/.test(n));
}

/**
 * A directory nothing can be created in, also for root (which ignores mode bits): a read-only dir for
 * other users; for root, a sysfs directory, which refuses new entries to everyone.
 */
export function unwritableDir(path: string): string {
  if (process.getuid?.() !== 0) {
    mkdirSync(path, { recursive: true });
    chmodSync(path, 0o555);
    return path;
  }
  return '/sys/kernel';
}

export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export async function putFirmware(w: World, key: string, size: number): Promise<Buffer> {
  const body = randomBytes(size);
  await w.s3.send(new PutObjectCommand({ Bucket: w.bucket, Key: key, Body: body }));
  return body;
}

export async function createJob(
  w: World,
  thing: string,
  jobId: string,
  document: unknown,
  extra: Record<string, unknown> = {},
) {
  const t = await w.iot.send(new DescribeThingCommand({ thingName: thing }));
  await w.iot.send(
    new CreateJobCommand({
      jobId,
      targets: [t.thingArn as string],
      document: typeof document === 'string' ? document : JSON.stringify(document),
      ...extra,
    }),
  );
}

export async function cancelJob(w: World, jobId: string) {
  await w.iot.send(new CancelJobCommand({ jobId, force: true }));
}

export async function describeExecution(w: World, thing: string, jobId: string) {
  const r = await w.iot.send(new DescribeJobExecutionCommand({ jobId, thingName: thing }));
  return r.execution;
}

export function sink(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  return { stream, text: () => chunks.join('') };
}

export async function agentConfig(
  w: World,
  thing: string,
  flags: Record<string, unknown> = {},
): Promise<AgentConfig> {
  await w.stack.ensureThing(thing);
  return resolveAgentConfig({
    flags: {
      local: w.stack.dataDir,
      thingName: thing,
      downloadDir: join(w.dir, `dl-${thing}`),
      currentVersion: '41811019',
      progressIntervalMs: 20,
      statusDetailsIntervalMs: 50,
      tz: 'America/Chicago',
      requestTimeoutMs: 5000,
      ...flags,
    },
    env: {},
  });
}

export function runAgent(config: AgentConfig, onEvent?: (e: AgentEvent) => void) {
  const out = sink();
  const events: AgentEvent[] = [];
  const handle = startAgent({
    config,
    output: out.stream,
    onEvent: (e) => {
      events.push(e);
      onEvent?.(e);
    },
  });
  return { handle, out, events, done: handle.done as Promise<AgentSummary> };
}

/** Resolves when `pred` holds over the events so far (checked on each event). */
export function waitFor(
  events: AgentEvent[],
  pred: (ev: AgentEvent[]) => boolean,
  timeoutMs = 20_000,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = () => {
      if (pred(events)) return resolve();
      if (Date.now() - t0 > timeoutMs)
        return reject(new Error(`timed out waiting; events: ${events.map((e) => e.type).join(',')}`));
      setTimeout(tick, 10);
    };
    tick();
  });
}

/** The operator's own MQTT connection (mTLS with the operator certificate), watching progress topics. */
export async function operatorSubscriber(
  w: World,
  topic: string,
): Promise<{ messages: string[]; close(): Promise<void> }> {
  const ep = w.stack.endpoints;
  const client: MqttClient = await mqtt.connectAsync({
    host: ep.mqtt.host,
    port: ep.mqtt.port,
    protocol: 'mqtts',
    protocolVersion: 4,
    clientId: `operator-${Math.random().toString(16).slice(2)}`,
    ca: readFileSync(ep.rootCA),
    cert: readFileSync(ep.operator.cert),
    key: readFileSync(ep.operator.key),
    reconnectPeriod: 0,
  });
  const messages: string[] = [];
  client.on('message', (_t, p) => messages.push(p.toString('utf8')));
  await client.subscribeAsync(topic, { qos: 1 });
  return { messages, close: () => client.endAsync() };
}

/**
 * A loopback TCP proxy in front of the S3 store that cuts the first `cuts` upstream→client streams after
 * `cutAfter` bytes, and records each request's head (to see the Range headers).
 */
export async function cuttingProxy(upstream: string, cutAfter: number, cuts: number, delayMs = 0) {
  const up = new URL(upstream);
  const heads: string[] = [];
  let remainingCuts = cuts;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    sockets.add(client);
    const upstreamSock = netConnect(Number(up.port), up.hostname);
    sockets.add(upstreamSock);
    let sent = 0;
    let cutThis = false;
    client.on('data', (d: Buffer) => {
      const s = d.toString('latin1');
      if (/^(GET|HEAD|PUT) /.test(s)) {
        heads.push(s.split('\r\n\r\n')[0] ?? '');
        if (s.startsWith('GET ') && remainingCuts > 0) {
          remainingCuts--;
          cutThis = true;
          sent = 0;
        }
      }
      upstreamSock.write(d);
    });
    upstreamSock.on('data', (d: Buffer) => {
      if (delayMs > 0) {
        // slow link: hold each chunk back (order kept: the upstream is paused meanwhile)
        upstreamSock.pause();
        setTimeout(() => {
          if (!client.destroyed) client.write(d);
          upstreamSock.resume();
        }, delayMs);
        return;
      }
      if (cutThis && sent + d.length > cutAfter) {
        client.write(d.subarray(0, Math.max(0, cutAfter - sent)));
        client.destroy();
        upstreamSock.destroy();
        return;
      }
      sent += d.length;
      client.write(d);
    });
    const end = () => {
      client.destroy();
      upstreamSock.destroy();
    };
    client.on('error', end);
    upstreamSock.on('error', end);
    client.on('close', end);
    upstreamSock.on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    heads,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

export const ORIGINAL_KEY = 'firmware/CV150-C3_0.6.6/cv150_ubifs.img';
export const firmwareDoc = (
  w: World,
  size: number,
  extra: Record<string, unknown> = {},
  key = ORIGINAL_KEY,
) => ({
  firmware: {
    version: '41811020',
    size,
    region: 'us-west-2',
    url: `https://s3.amazonaws.com/${w.bucket}/${key}`,
    ...extra,
  },
});

/**
 * A suite's world with the original's image (`size` bytes at ORIGINAL_KEY) in its store: started before
 * the suite's tests, closed after them. `set` receives both.
 */
export function worldPerSuite(size: number, set: (w: World, firmware: Buffer) => void): void {
  let world: World | undefined;
  before(async () => {
    world = await startWorld();
    set(world, await putFirmware(world, ORIGINAL_KEY, size));
  });
  after(async () => {
    await world?.close();
  });
}

/** The flags `ota agent` takes to run as `thing` against the world's local stack (before any others). */
export function agentFlags(
  w: World,
  thing: string,
  o: { currentVersion: string; downloadDir?: string; stateDir?: string; logLevel?: string },
): string[] {
  return [
    '--local',
    w.stack.dataDir,
    '-n',
    thing,
    '--current-version',
    o.currentVersion,
    ...(o.downloadDir !== undefined ? ['--download-dir', o.downloadDir] : []),
    ...(o.stateDir !== undefined ? ['--state-dir', o.stateDir] : []),
    ...(o.logLevel !== undefined ? ['--log-level', o.logLevel] : []),
  ];
}
