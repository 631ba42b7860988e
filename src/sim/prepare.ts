/**
 * Setting a fleet up: the stack (embedded, a running `ota dev`, or AWS), the things with their
 * certificates in one thing group, and the connection settings every agent shares.
 *
 * Bounds (no unbounded fan-out): at most `concurrency` certificates/registrations are in flight at a
 * time.

 * Setup timings are wall-clock measurements of the real run (see fleet.ts).
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  AddThingToThingGroupCommand,
  CreateThingCommand,
  CreateThingGroupCommand,
  DescribeEndpointCommand,
  type IoTClient,
  ListThingsInThingGroupCommand,
} from '@aws-sdk/client-iot';
import { ensureLocalCa } from '../cloud/pki/pki.ts';
import { listThingCertificates, startLocalStack } from '../cloud/stack.ts';
import { iotClientFor, s3ClientFor, type Target } from '../operator/clients.ts';
import { putFirmware } from '../operator/firmware.ts';
import { writeDeterministicImage } from '../operator/image.ts';
import { ENDPOINTS_FILE, type Endpoints, readEndpoints } from '../shared/endpoints.ts';
import { AbortedError, ConfigError, ValidationError } from '../shared/errors.ts';
import { findListeningPid, ownStats, type ProcStats, readProcStats } from './proc.ts';
import type { FleetEvent, FleetOptions, FleetSummary } from './types.ts';

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function mapBounded<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
  signal?: AbortSignal,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      if (signal?.aborted) throw signal.reason ?? new AbortedError('aborted');
      const i = next++;
      out[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export function thingNames(prefix: string, n: number): string[] {
  const width = Math.max(4, String(n).length);
  return Array.from({ length: n }, (_, i) => `${prefix}${String(i + 1).padStart(width, '0')}`);
}

/**
 * The job targets the group, so the group must hold exactly the simulated things: a thing left there by
 * an earlier run (another --devices or --thing-prefix) would get an execution no agent ever takes.
 */
async function checkGroupMembers(iot: IoTClient, groupName: string, names: readonly string[]): Promise<void> {
  const ours = new Set(names);
  let members = 0;
  let stranger: string | undefined;
  let nextToken: string | undefined;
  do {
    const out = await iot.send(
      new ListThingsInThingGroupCommand({ thingGroupName: groupName, maxResults: 250, nextToken }),
    );
    for (const t of out.things ?? []) {
      members++;
      if (!ours.has(t)) stranger ??= t;
    }
    nextToken = out.nextToken;
  } while (nextToken);
  if (stranger !== undefined) {
    throw new ValidationError(
      'group',
      `${groupName} has ${members} things, ${members - names.length} of them not in this simulation (e.g. ${stranger}); ` +
        'the job would wait for them: give another --group',
    );
  }
}

const ignoreExists = (err: unknown) => {
  if ((err as { name?: string }).name !== 'ResourceAlreadyExistsException') throw err;
};

export interface Device {
  thingName: string;
  cert: string;
  key: string;
}

export interface Prepared {
  iot: IoTClient;
  target: Target;
  devices: Device[];
  agentBase: Record<string, unknown>;
  bucket: string;
  region: string;
  certificates: { issued: number; reused: number };
  stackResources: () => ProcStats | undefined;
  stackWhere: 'separate' | 'shared';
  brokerPublishes?: () => number;
  close: () => Promise<void>;
}

function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(tmp, file);
}

/** Registers the things in the local stack and issues (or reuses) their certificates, `limit` at a time. */
async function prepareLocalThings(
  dataDir: string,
  endpoints: Endpoints,
  iot: IoTClient,
  names: string[],
  groupName: string,
  limit: number,
  emit: (e: FleetEvent) => void,
  signal?: AbortSignal,
): Promise<{ devices: Device[]; issued: number; reused: number }> {
  const ca = await ensureLocalCa(join(dataDir, 'certs'));
  await iot.send(new CreateThingGroupCommand({ thingGroupName: groupName })).catch(ignoreExists);
  const before = new Set(Object.keys(listThingCertificates(ca)));
  let done = 0;
  const devices = await mapBounded(
    names,
    limit,
    async (thingName) => {
      await iot.send(new CreateThingCommand({ thingName })).catch(ignoreExists);
      await iot.send(new AddThingToThingGroupCommand({ thingGroupName: groupName, thingName }));
      const issued = await ca.issueClientCert(thingName);
      done++;
      if (done % 50 === 0 || done === names.length) {
        emit({ type: 'setup-progress', phase: 'things', done, total: names.length });
      }
      return { thingName, cert: issued.certPath, key: issued.keyPath };
    },
    signal,
  );
  // endpoints.json lists every thing certificate, so `ota agent --local <dir> -n sim-0001` works too.
  // Written once here rather than once per thing (stack.ts's ensureThing rewrites it on each call).
  const file = join(dataDir, ENDPOINTS_FILE);
  const fresh = JSON.parse(readFileSync(file, 'utf8')) as Endpoints;
  fresh.things = listThingCertificates(ca);
  writeJsonAtomic(file, fresh);
  endpoints.things = fresh.things;
  await checkGroupMembers(iot, groupName, names);
  const reused = names.filter((n) => before.has(n)).length;
  return { devices, issued: names.length - reused, reused };
}

export async function prepare(
  opts: FleetOptions,
  names: string[],
  groupName: string,
  limit: number,
  emit: (e: FleetEvent) => void,
  timing: FleetSummary['setupMs'],
): Promise<Prepared> {
  const target = opts.target ?? { kind: 'embedded' };
  if (target.kind === 'aws') {
    const t: Target = { kind: 'aws', region: target.region, profile: target.profile };
    const iot = iotClientFor(t);
    const region = target.region ?? (await iot.config.region());
    const endpoint =
      target.endpoint ??
      (await iot.send(new DescribeEndpointCommand({ endpointType: 'iot:Data-ATS' }))).endpointAddress;
    if (!endpoint)
      throw new ConfigError('DescribeEndpoint returned no iot:Data-ATS endpoint; pass --endpoint');
    const t0 = Date.now();
    emit({ type: 'phase', phase: 'things', detail: `${names.length} things from ${target.certsDir}` });
    const devices: Device[] = names.map((thingName) => {
      const cert = join(target.certsDir, `${thingName}.cert.pem`);
      const key = join(target.certsDir, `${thingName}.key.pem`);
      if (!existsSync(cert) || !existsSync(key)) {
        throw new ConfigError(
          `${target.certsDir}: no ${thingName}.cert.pem / ${thingName}.key.pem (create the things and their certificates in AWS first, see docs/benchmarks.md)`,
        );
      }
      return { thingName, cert, key };
    });
    await iot.send(new CreateThingGroupCommand({ thingGroupName: groupName })).catch(ignoreExists);
    await mapBounded(devices, Math.min(limit, 10), (d) =>
      iot.send(new AddThingToThingGroupCommand({ thingGroupName: groupName, thingName: d.thingName })),
    );
    await checkGroupMembers(iot, groupName, names);
    timing.things = Date.now() - t0;
    return {
      iot,
      target: t,
      devices,
      bucket: target.bucket,
      region,
      agentBase: {
        endpoint,
        port: 8883,
        ...(target.rootCa ? { rootCa: target.rootCa } : {}),
        ...(target.roleAlias ? { roleAlias: target.roleAlias } : {}),
        ...(target.credentialsEndpoint ? { credentialsEndpoint: target.credentialsEndpoint } : {}),
        region,
      },
      certificates: { issued: 0, reused: devices.length },
      stackResources: () => undefined,
      stackWhere: 'separate',
      close: async () => {
        iot.destroy();
      },
    };
  }

  let t0 = Date.now();
  let dataDir: string;
  let closeStack = async () => {};
  let stackResources: () => ProcStats | undefined;
  let stackWhere: 'separate' | 'shared';
  let brokerPublishes: (() => number) | undefined;
  if (target.kind === 'embedded') {
    emit({ type: 'phase', phase: 'stack', detail: 'starting an embedded local stack' });
    const temp = target.dataDir === undefined;
    dataDir = target.dataDir ? resolve(target.dataDir) : await mkdtemp(join(tmpdir(), 'ota-sim-stack-'));
    const stack = await startLocalStack({
      dataDir,
      things: [],
      logger: opts.logger?.child({ component: 'stack' }),
      ...(target.minuteMs !== undefined ? { minuteMs: target.minuteMs } : {}),
    });
    closeStack = async () => {
      await stack.close();
      if (temp) await rm(dataDir, { recursive: true, force: true });
    };
    stackResources = ownStats;
    stackWhere = 'shared';
    brokerPublishes = () => {
      const s = stack.broker.stats();
      return s.publishesIn + s.publishesOut;
    };
  } else {
    dataDir = resolve(target.dataDir);
    const endpoints = readEndpoints(dataDir);
    const pid = target.stackPid ?? findListeningPid(endpoints.mqtt.port);
    stackResources = () => (pid === undefined ? undefined : readProcStats(pid));
    stackWhere = pid === process.pid ? 'shared' : 'separate';
  }
  timing.stack = Date.now() - t0;
  let iot: IoTClient | undefined;
  try {
    const endpoints = readEndpoints(dataDir);
    const t: Target = { kind: 'local', endpoints };
    iot = iotClientFor(t);
    t0 = Date.now();
    emit({
      type: 'phase',
      phase: 'things',
      detail: `${names.length} things with certificates in group ${groupName}`,
    });
    const { devices, issued, reused } = await prepareLocalThings(
      dataDir,
      endpoints,
      iot,
      names,
      groupName,
      limit,
      emit,
      opts.signal,
    );
    timing.things = Date.now() - t0;
    const client = iot;
    return {
      iot: client,
      target: t,
      devices,
      bucket: endpoints.s3.bucket,
      region: endpoints.region,
      agentBase: {
        endpoint: endpoints.mqtt.host,
        port: endpoints.mqtt.port,
        // PEM text, read once, rather than N reads of the same file.
        rootCa: readFileSync(endpoints.rootCA, 'utf8'),
        region: endpoints.region,
        s3Endpoint: endpoints.s3.endpoint,
        s3AccessKeyId: endpoints.s3.accessKeyId,
        s3SecretAccessKey: endpoints.s3.secretAccessKey,
      },
      certificates: { issued, reused },
      stackResources,
      stackWhere,
      ...(brokerPublishes ? { brokerPublishes } : {}),
      close: async () => {
        client.destroy();
        await closeStack();
      },
    };
  } catch (err) {
    iot?.destroy();
    await closeStack();
    throw err;
  }
}

/** A deterministic image of `size` bytes, uploaded once as `firmware/ota-sim/<name>.bin`; its job document. */
export async function uploadImage(
  prepared: Prepared,
  scratch: string,
  name: string,
  size: number,
  version: string,
) {
  const imagePath = join(scratch, `${name}.image.bin`);
  const image = await writeDeterministicImage(imagePath, size, name);
  const s3 = s3ClientFor(prepared.target);
  try {
    const put = await putFirmware({
      file: imagePath,
      bucket: prepared.bucket,
      key: `firmware/ota-sim/${name}.bin`,
      version,
      region: prepared.region,
      s3,
    });
    return { sha256: image.sha256, document: put.document };
  } finally {
    s3.destroy();
    await rm(imagePath, { force: true });
  }
}
