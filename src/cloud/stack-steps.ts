import { join } from 'node:path';
import type { Clock } from '../shared/clock.ts';
import type { Endpoints } from '../shared/endpoints.ts';
import { OtaError } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import { parseS3Url } from '../shared/s3-url.ts';
import { DEFAULT_PROGRESS_PREFIX } from '../shared/topics.ts';
import { getRequestIdentity, startBroker, WS_PATH } from './broker/broker.ts';
import type { RunningBroker } from './broker/types.ts';
import { type ControlPlaneServer, startControlPlane } from './control-plane/server.ts';
import { createCredentialsHandler } from './credentials/provider.ts';
import type { SessionTokens } from './credentials/session-tokens.ts';
import { createJobsService, type JobsService } from './jobs/service.ts';
import { type RunningObjectStore, startObjectStore } from './object-store/store.ts';
import type { LocalCa } from './pki/pki.ts';
import { openSecurityRegistry, type SecurityRegistry } from './security/registry.ts';
import type { LocalStackOptions } from './stack.ts';

/**
 * The named steps `startLocalStack` (stack.ts) runs in order: each starts one part of the local stack
 * and registers how to close it, so a failure part-way closes what was opened, newest first.
 */

export const OPERATOR_IDENTITY = 'operator';
export const LOCAL_ACCOUNT_ID = '000000000000';
export const LOCAL_ROLE_ALIAS = 'ota-firmware-download';

export interface LocalCredentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/** What every step reads: the options with their defaults applied, and the list of closers. */
export interface StackContext {
  readonly options: LocalStackOptions;
  readonly dataDir: string;
  readonly host: string;
  readonly region: string;
  readonly bucket: string;
  readonly logger: Logger;
  /** Every part's clock (LocalStackOptions.clock). */
  readonly clock: Clock;
  readonly closers: Closers;
}

/** Close routines of the parts started so far; `closeAll` runs them newest first, logging failures. */
export interface Closers {
  add(close: () => Promise<void> | void): void;
  closeAll(): Promise<void>;
}

export function createClosers(logger: Logger): Closers {
  const opened: Array<() => Promise<void> | void> = [];
  return {
    add: (close) => {
      opened.push(close);
    },
    closeAll: async () => {
      for (const close of opened.reverse()) {
        try {
          await close();
        } catch (err) {
          logger.warn({ err }, 'error while closing the local stack');
        }
      }
    },
  };
}

export async function startStackObjectStore(
  ctx: StackContext,
  ca: LocalCa,
  credentials: LocalCredentials,
): Promise<RunningObjectStore> {
  const { options, host, region, bucket, logger } = ctx;
  const objectStore = await startObjectStore({
    host,
    port: options.s3Port ?? 0,
    directory: join(ctx.dataDir, 's3'),
    buckets: [bucket],
    region,
    credentials,
    ...(options.s3Tls ? { tls: { cert: ca.serverCertPem, key: ca.serverKeyPem } } : {}),
    clock: ctx.clock,
    logger: logger.child({ component: 'object-store' }),
  });
  ctx.closers.add(() => objectStore.close());
  return objectStore;
}

/** Parts the Jobs service calls back into that start after it (the broker and the security registry). */
export interface LaterParts {
  broker?: RunningBroker;
  security?: SecurityRegistry;
}

export function createStackJobs(
  ctx: StackContext,
  objectStore: RunningObjectStore,
  later: LaterParts,
): JobsService {
  const { options, region, logger } = ctx;
  const jobs = createJobsService({
    dbPath: join(ctx.dataDir, 'jobs.sqlite'),
    region,
    accountId: LOCAL_ACCOUNT_ID,
    minuteMs: options.minuteMs,
    clock: ctx.clock,
    allowRejectFromInProgress: options.allowRejectFromInProgress,
    requestsPerSecondPerThing: options.jobsRequestsPerSecondPerThing,
    // DeleteThing: the thing's certificates lose their attachments, and its open MQTT and HTTPS
    // connections are dropped (a registered thing is checked only once per connection).
    onThingDeleted: (thingName) => {
      later.security?.onThingDeleted(thingName);
      later.broker?.disconnectThing(thingName);
    },
    logger: logger.child({ component: 'jobs' }),
    publish: (topic, payload, qos) => {
      if (!later.broker) throw new OtaError('OTA_NOT_READY', 'broker not started');
      return later.broker.publish(topic, payload, qos);
    },
    // `${aws:iot:s3-presigned-url:<url>}` (docs/protocol.md, Presigned URL placeholders): the placeholder
    // names an S3 object; the local store signs a fresh GET for it on each delivery.
    presign: async (s3Url, expiresInSec) => {
      const loc = parseS3Url(s3Url);
      if (!loc) throw new OtaError('OTA_PRESIGN', `not an S3 URL: ${s3Url}`);
      const scale = (options.minuteMs ?? 60_000) / 60_000;
      return objectStore.presignGetUrl(loc.bucket, loc.key, Math.max(1, Math.round(expiresInSec * scale)));
    },
  });
  ctx.closers.add(() => jobs.close());
  return jobs;
}

/** Whether the Jobs service knows `thingName` (DescribeThing succeeds). */
export function registeredThingCheck(jobs: JobsService): (thingName: string) => boolean {
  return (thingName) => {
    try {
      jobs.controlPlane.describeThing(thingName);
      return true;
    } catch {
      return false;
    }
  };
}

/**
 * Provisioned devices (CreateKeysAndCertificate + AttachPolicy + AttachThingPrincipal) are authorized by
 * their attached policies; temporary credentials carry session tokens the stack checks.
 */
export function openStackSecurity(
  ctx: StackContext,
  ca: LocalCa,
  isRegisteredThing: (thingName: string) => boolean,
): SecurityRegistry {
  const security = openSecurityRegistry({
    dbPath: join(ctx.dataDir, 'security.sqlite'),
    region: ctx.region,
    accountId: LOCAL_ACCOUNT_ID,
    issueCertificate: () => ca.issueDeviceCertificate(),
    thingExists: isRegisteredThing,
    clock: ctx.clock,
  });
  ctx.closers.add(() => security.close());
  return security;
}

/** The parts the broker and the control plane are wired to. */
export interface StackParts {
  ca: LocalCa;
  credentials: LocalCredentials;
  jobs: JobsService;
  security: SecurityRegistry;
  sessionTokens: SessionTokens;
  isRegisteredThing: (thingName: string) => boolean;
}

export async function startStackBroker(ctx: StackContext, parts: StackParts): Promise<RunningBroker> {
  const { options, host, region, logger } = ctx;
  const { ca, credentials, security, sessionTokens } = parts;
  const broker = await startBroker({
    host,
    mqttPort: options.mqttPort ?? 0,
    wsPort: options.wsPort ?? 0,
    wssPort: options.wssPort ?? 0,
    clientIds: options.clientIds ?? 'thing-name',
    anonymousPort: options.anonymousPort,
    tls: { ca: ca.caCertPem, cert: ca.serverCertPem, key: ca.serverKeyPem },
    progressPrefix: options.progressPrefix ?? DEFAULT_PROGRESS_PREFIX,
    operatorName: OPERATOR_IDENTITY,
    isRegisteredThing: parts.isRegisteredThing,
    certificates: security,
    wsCredentials: { ...credentials, region, checkSessionToken: sessionTokens.check },
    clock: ctx.clock,
    services: [parts.jobs.topicService],
    // The IoT credentials provider (docs/protocol.md, Credentials provider) shares the mTLS port, chosen
    // by ALPN.
    httpsHandler: createCredentialsHandler({
      roleAliases: { [LOCAL_ROLE_ALIAS]: { ...credentials, durationSeconds: 3600 } },
      getIdentity: getRequestIdentity,
      registry: security,
      registryCredentials: credentials,
      sessionTokens,
      clock: ctx.clock,
    }),
    logger: logger.child({ component: 'broker' }),
  });
  ctx.closers.add(() => broker.close());
  return broker;
}

export async function startStackControlPlane(
  ctx: StackContext,
  parts: StackParts,
): Promise<ControlPlaneServer> {
  const { host, region, logger } = ctx;
  const controlPlane = await startControlPlane({
    host,
    port: ctx.options.iotPort ?? 0,
    controlPlane: parts.jobs.controlPlane,
    credentials: parts.credentials,
    region,
    // DescribeEndpoint: AWS answers host names only; locally MQTT and the credentials provider share
    // the mTLS port, which endpoints.json names.
    iotEndpointAddress: host,
    credentialsEndpointAddress: host,
    security: parts.security,
    checkSessionToken: parts.sessionTokens.check,
    clock: ctx.clock,
    logger: logger.child({ component: 'control-plane' }),
  });
  ctx.closers.add(() => controlPlane.close());
  return controlPlane;
}

/** endpoints.json's content (`things` filled in later), with the operator's certificate issued. */
export async function buildEndpoints(
  ctx: StackContext,
  parts: { ca: LocalCa; credentials: LocalCredentials; broker: RunningBroker },
  controlPlane: ControlPlaneServer,
  objectStore: RunningObjectStore,
): Promise<Endpoints> {
  const { host, region } = ctx;
  const { ca, credentials, broker } = parts;
  const operator = await ca.issueClientCert(OPERATOR_IDENTITY);
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    region,
    mqtt: { host, port: broker.mqttPort },
    ws: { url: `ws://${urlHost}:${broker.wsPort}${WS_PATH}` },
    wss: { url: `wss://${urlHost}:${broker.wssPort}${WS_PATH}` },
    iot: { endpoint: controlPlane.endpoint, ...credentials },
    s3: { endpoint: objectStore.endpoint, ...credentials, bucket: ctx.bucket },
    rootCA: ca.caCertPath,
    things: {},
    operator: { cert: operator.certPath, key: operator.keyPath },
  };
}

/** Starts the fleet dashboard when `dashboardPort` is set and adds its URL to `endpoints`. */
export async function startStackDashboard(ctx: StackContext, endpoints: Endpoints): Promise<void> {
  const { options } = ctx;
  if (options.dashboardPort === undefined) return;
  // Loaded only when asked for: the dashboard reads the stack over its public endpoints, like AWS.
  const { startLocalDashboard } = await import('../dashboard/serve.ts');
  const dashboard = await startLocalDashboard(endpoints, {
    host: ctx.host,
    port: options.dashboardPort,
    progressPrefix: options.progressPrefix,
    logger: ctx.logger.child({ component: 'dashboard' }),
  });
  ctx.closers.add(() => dashboard.close());
  await dashboard.feedReady;
  endpoints.dashboard = { url: dashboard.url };
}
