import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreateKeysAndCertificateCommand,
  CreatePolicyCommand,
  CreateRoleAliasCommand,
  CreateThingCommand,
  DescribeEndpointCommand,
  DescribeRoleAliasCommand,
  DescribeThingCommand,
  GetPolicyCommand,
  type IoTClient,
  ResourceAlreadyExistsException,
  ResourceNotFoundException,
} from '@aws-sdk/client-iot';
import { OtaError, ValidationError } from '../shared/errors.ts';
import { DEFAULT_PROGRESS_PREFIX, THING_NAME_PATTERN } from '../shared/topics.ts';
import type { Target } from './clients.ts';

/**
 * `ota provision`: makes a thing ready to run `ota agent --config <file>`, with the same
 * @aws-sdk/client-iot calls against the local stack and against AWS IoT:
 *
 *   CreateThing → CreateKeysAndCertificate (active) → CreatePolicy (least privilege, thing policy
 *   variables; reused when it exists with the same document) → AttachPolicy → AttachThingPrincipal →
 *   [DescribeRoleAlias / CreateRoleAlias] → DescribeEndpoint (iot:Data-ATS, iot:CredentialProvider)
 *
 * and writes the certificate, its private key (mode 0600, never stored by AWS or the stack) and the
 * agent's JSON config file (src/device/config/agent-config.ts keys). Existing files are never overwritten.
 */

export interface ProvisionOptions {
  target: Target;
  iot: IoTClient;
  thingName: string;
  /** Where the certificate, key and config go; created if missing. */
  outDir: string;
  /**
   * Default `ota-agent` (`ota-agent-<roleAlias>` with a role alias): one policy for every device, the
   * thing comes from the policy variables.
   */
  policyName?: string;
  /** Progress topics are `<prefix>/<thing>`. */
  progressPrefix?: string;
  /** For S3 downloads through the credentials provider: created if missing (needs roleArn then). */
  roleAlias?: string;
  /** IAM role behind a new role alias; locally any role ARN of the local account will do. */
  roleArn?: string;
}

export interface ProvisionResult {
  thingName: string;
  thingArn: string;
  certificateId: string;
  certificateArn: string;
  policyName: string;
  /** False when a policy of that name already existed (with the same document). */
  policyCreated: boolean;
  roleAlias?: string;
  endpoint: string;
  credentialsEndpoint?: string;
  files: { cert: string; key: string; config: string };
}

export const DEFAULT_POLICY_NAME = 'ota-agent';
/** The role behind the local stack's role aliases (the local account; nothing checks it). */
export const LOCAL_ROLE_ARN = 'arn:aws:iam::000000000000:role/ota-firmware-download';
const AWS_MQTT_PORT = 8883;

/**
 * The least-privilege IoT policy of an OTA device (AWS IoT developer guide, "Jobs policy examples" and
 * "Thing policy variables"): connect only as its own thing name with a certificate attached to that
 * thing; publish, subscribe and receive only on its own Jobs topics and progress topic; optionally get
 * credentials for one role alias.
 */
export function devicePolicyDocument(p: {
  region: string;
  accountId: string;
  progressPrefix?: string;
  roleAlias?: string;
}): string {
  const arn = (resource: string) => `arn:aws:iot:${p.region}:${p.accountId}:${resource}`;
  // biome-ignore lint/suspicious/noTemplateCurlyInString: an AWS IoT policy variable, not a JS template.
  const thing = '${iot:Connection.Thing.ThingName}';
  const prefix = p.progressPrefix ?? DEFAULT_PROGRESS_PREFIX;
  const topics = [`$aws/things/${thing}/jobs/*`, `${prefix}/${thing}`];
  const statements: object[] = [
    {
      Effect: 'Allow',
      Action: 'iot:Connect',
      Resource: arn(`client/${thing}`),
      Condition: { Bool: { 'iot:Connection.Thing.IsAttached': 'true' } },
    },
    {
      Effect: 'Allow',
      Action: ['iot:Publish', 'iot:Receive'],
      Resource: topics.map((t) => arn(`topic/${t}`)),
    },
    { Effect: 'Allow', Action: 'iot:Subscribe', Resource: topics.map((t) => arn(`topicfilter/${t}`)) },
  ];
  if (p.roleAlias) {
    statements.push({
      Effect: 'Allow',
      Action: 'iot:AssumeRoleWithCertificate',
      Resource: arn(`rolealias/${p.roleAlias}`),
    });
  }
  return JSON.stringify({ Version: '2012-10-17', Statement: statements }, null, 2);
}

async function ensureThing(iot: IoTClient, thingName: string): Promise<string> {
  try {
    const out = await iot.send(new CreateThingCommand({ thingName }));
    if (out.thingArn) return out.thingArn;
  } catch (err) {
    if (!(err instanceof ResourceAlreadyExistsException)) throw err;
  }
  const described = await iot.send(new DescribeThingCommand({ thingName }));
  if (!described.thingArn) throw new OtaError('OTA_PROVISION', `DescribeThing ${thingName}: no thingArn`);
  return described.thingArn;
}

/** Creates the policy, or checks that the existing one says the same. */
async function ensurePolicy(iot: IoTClient, policyName: string, document: string): Promise<boolean> {
  try {
    await iot.send(new CreatePolicyCommand({ policyName, policyDocument: document }));
    return true;
  } catch (err) {
    if (!(err instanceof ResourceAlreadyExistsException)) throw err;
  }
  const existing = await iot.send(new GetPolicyCommand({ policyName }));
  const same = (a: string | undefined, b: string) => {
    try {
      return JSON.stringify(JSON.parse(a ?? '')) === JSON.stringify(JSON.parse(b));
    } catch {
      return false;
    }
  };
  if (!same(existing.policyDocument, document)) {
    throw new OtaError(
      'OTA_PROVISION',
      `policy ${policyName} exists with another document; choose another --policy-name (or delete that policy)`,
    );
  }
  return false;
}

async function ensureRoleAlias(
  iot: IoTClient,
  roleAlias: string,
  roleArn: string | undefined,
): Promise<void> {
  try {
    await iot.send(new DescribeRoleAliasCommand({ roleAlias }));
    return;
  } catch (err) {
    if (!(err instanceof ResourceNotFoundException)) throw err;
  }
  if (!roleArn) {
    throw new ValidationError(
      'role-arn',
      `role alias ${roleAlias} does not exist; give --role-arn to create it`,
    );
  }
  await iot.send(new CreateRoleAliasCommand({ roleAlias, roleArn, credentialDurationSeconds: 3600 }));
}

async function endpointAddress(iot: IoTClient, endpointType: string): Promise<string> {
  const out = await iot.send(new DescribeEndpointCommand({ endpointType }));
  if (!out.endpointAddress)
    throw new OtaError('OTA_PROVISION', `DescribeEndpoint ${endpointType}: no address`);
  return out.endpointAddress;
}

/** Writes a new file; refuses to replace one (a second run must not lose the first certificate's key). */
async function writeNew(path: string, contents: string, mode: number): Promise<void> {
  try {
    await writeFile(path, contents, { mode, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new ValidationError('out-dir', `${path} exists; choose another --out-dir`, { cause: err });
    }
    throw err;
  }
}

export async function provisionDevice(opts: ProvisionOptions): Promise<ProvisionResult> {
  const { iot, thingName, target } = opts;
  if (!THING_NAME_PATTERN.test(thingName)) {
    throw new ValidationError('thingName', `must match ${THING_NAME_PATTERN.source}`);
  }
  const policyName =
    opts.policyName ?? (opts.roleAlias ? `${DEFAULT_POLICY_NAME}-${opts.roleAlias}` : DEFAULT_POLICY_NAME);
  const outDir = resolve(opts.outDir);
  const files = {
    cert: join(outDir, `${thingName}.cert.pem`),
    key: join(outDir, `${thingName}.private.key`),
    config: join(outDir, `${thingName}.agent.json`),
  };
  await mkdir(outDir, { recursive: true, mode: 0o700 });
  // Checked before any call, so a refused run leaves no orphan certificate behind.
  for (const f of Object.values(files)) {
    if (existsSync(f)) throw new ValidationError('out-dir', `${f} exists; choose another --out-dir`);
  }

  const thingArn = await ensureThing(iot, thingName);
  const [, , , region = '', accountId = ''] = thingArn.split(':');
  const roleArn = opts.roleArn ?? (target.kind === 'local' ? LOCAL_ROLE_ARN : undefined);
  if (opts.roleAlias) await ensureRoleAlias(iot, opts.roleAlias, roleArn);
  const document = devicePolicyDocument({
    region,
    accountId,
    ...(opts.progressPrefix ? { progressPrefix: opts.progressPrefix } : {}),
    ...(opts.roleAlias ? { roleAlias: opts.roleAlias } : {}),
  });
  const policyCreated = await ensurePolicy(iot, policyName, document);

  const cert = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
  const { certificateArn, certificateId, certificatePem } = cert;
  const privateKey = cert.keyPair?.PrivateKey;
  if (!certificateArn || !certificateId || !certificatePem || !privateKey) {
    throw new OtaError('OTA_PROVISION', 'CreateKeysAndCertificate returned no certificate or key');
  }
  // The private key exists nowhere else: write it before anything else can fail.
  await writeNew(files.key, privateKey, 0o600);
  await writeNew(files.cert, certificatePem, 0o644);
  await iot.send(new AttachPolicyCommand({ policyName, target: certificateArn }));
  await iot.send(new AttachThingPrincipalCommand({ thingName, principal: certificateArn }));

  const endpoint = await endpointAddress(iot, 'iot:Data-ATS');
  const credentialsHost = opts.roleAlias ? await endpointAddress(iot, 'iot:CredentialProvider') : undefined;
  const config: Record<string, unknown> = { endpoint, thingName, cert: files.cert, key: files.key, region };
  let credentialsEndpoint: string | undefined;
  if (target.kind === 'local') {
    // Locally MQTT and the credentials provider share the mTLS port of endpoints.json; S3 is the local store.
    const ep = target.endpoints;
    Object.assign(config, { port: ep.mqtt.port, rootCa: ep.rootCA, s3Endpoint: ep.s3.endpoint });
    if (credentialsHost) credentialsEndpoint = `https://${credentialsHost}:${ep.mqtt.port}`;
    else
      Object.assign(config, { s3AccessKeyId: ep.s3.accessKeyId, s3SecretAccessKey: ep.s3.secretAccessKey });
  } else {
    // AWS's ATS endpoint chains to Amazon Root CA 1, which Node's default trust store holds.
    config.port = AWS_MQTT_PORT;
    if (credentialsHost) credentialsEndpoint = `https://${credentialsHost}`;
  }
  if (opts.roleAlias && credentialsEndpoint)
    Object.assign(config, { roleAlias: opts.roleAlias, credentialsEndpoint });
  if (opts.progressPrefix) config.topic = `${opts.progressPrefix}/${thingName}`;
  await writeNew(files.config, `${JSON.stringify(config, null, 2)}\n`, 0o600);

  return {
    thingName,
    thingArn,
    certificateId,
    certificateArn,
    policyName,
    policyCreated,
    ...(opts.roleAlias ? { roleAlias: opts.roleAlias } : {}),
    endpoint,
    ...(credentialsEndpoint ? { credentialsEndpoint } : {}),
    files,
  };
}
