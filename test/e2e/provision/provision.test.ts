/**
 * `ota provision` then `ota agent --config <written file>` on the local stack, as a user runs them (the
 * CLI in subprocesses): the same @aws-sdk/client-iot calls a first AWS run makes, and a broker that
 * enforces the policy they attach.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  CreateJobCommand,
  CreateRoleAliasCommand,
  DescribeJobExecutionCommand,
  DescribeThingCommand,
  DetachPolicyCommand,
  IoTClient,
  ListAttachedPoliciesCommand,
  ListThingPrincipalsCommand,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { LocalStack } from '../../../src/cloud/stack.ts';
import { localS3ClientConfig } from '../../../src/shared/s3-client-config.ts';
import { connectWithCert } from '../../helpers/mqtt.ts';
import { startTestStack, type TestStack } from '../../helpers/stack.ts';
import { ota } from '../cli/helpers.ts';

const THING = 'cam-provisioned';
const OTHER = 'cam-neighbour';
const ALIAS = 'ota-firmware-s3';
const KEY = 'firmware/CV150-C3_0.6.6/cv150_ubifs.img';

interface Provisioned {
  thingName: string;
  certificateId: string;
  certificateArn: string;
  policyName: string;
  files: { cert: string; key: string; config: string };
}

describe('ota provision → ota agent --config (local stack)', () => {
  let t: TestStack;
  let stack: LocalStack;
  let iot: IoTClient;
  let prov: Provisioned;
  let pem: { ca: string; cert: string; key: string };
  const provisionArgs = () => [
    'provision',
    THING,
    '--data-dir',
    stack.dataDir,
    '--out-dir',
    join(t.dir, 'device'),
    '--role-alias',
    ALIAS,
  ];

  before(async () => {
    t = await startTestStack('ota-provision', { things: [OTHER] });
    stack = t.stack;
    const ep = stack.endpoints;
    iot = new IoTClient({
      endpoint: ep.iot.endpoint,
      region: ep.region,
      credentials: { accessKeyId: ep.iot.accessKeyId, secretAccessKey: ep.iot.secretAccessKey },
    });
    const r = await ota([...provisionArgs(), '--json']);
    assert.equal(r.code, 0, r.stderr);
    prov = JSON.parse(r.stdout) as Provisioned;
    pem = {
      ca: await readFile(ep.rootCA, 'utf8'),
      cert: await readFile(prov.files.cert, 'utf8'),
      key: await readFile(prov.files.key, 'utf8'),
    };
  });

  after(async () => {
    iot.destroy();
    await t.close();
  });

  test('the thing, an active certificate with the policy attached, a role alias and a config file exist', async () => {
    assert.match(prov.certificateId, /^[0-9a-f]{64}$/);
    assert.equal((await stat(prov.files.key)).mode & 0o777, 0o600);
    assert.match(pem.cert, /BEGIN CERTIFICATE/);
    assert.doesNotMatch(pem.cert, /RaspberryPi|cam-/, 'the certificate is not named after the thing');
    const principals = await iot.send(new ListThingPrincipalsCommand({ thingName: THING }));
    assert.deepEqual(principals.principals, [prov.certificateArn]);
    const attached = await iot.send(new ListAttachedPoliciesCommand({ target: prov.certificateArn }));
    assert.deepEqual(
      attached.policies?.map((p) => p.policyName),
      [prov.policyName],
    );
    const config = JSON.parse(await readFile(prov.files.config, 'utf8'));
    assert.equal(config.thingName, THING);
    assert.equal(config.roleAlias, ALIAS);
    assert.equal(config.port, stack.endpoints.mqtt.port);
    assert.equal(config.s3AccessKeyId, undefined, 'S3 through the credentials provider, no static keys');
  });

  test('ota agent --config <file> takes a job, downloads through the credentials provider, SUCCEEDED', async () => {
    const ep = stack.endpoints;
    const image = randomBytes(300_000);
    const s3 = new S3Client(localS3ClientConfig(ep.s3.endpoint, ep.s3, ep.region));
    await s3.send(new PutObjectCommand({ Bucket: ep.s3.bucket, Key: KEY, Body: image }));
    s3.destroy();
    const thing = await iot.send(new DescribeThingCommand({ thingName: THING }));
    const sha256 = createHash('sha256').update(image).digest('hex');
    await iot.send(
      new CreateJobCommand({
        jobId: 'provisioned-ota',
        targets: [thing.thingArn as string],
        document: JSON.stringify({
          firmware: {
            version: '41811020',
            size: image.length,
            region: ep.region,
            url: `https://s3.amazonaws.com/${ep.s3.bucket}/${KEY}`,
            sha256,
          },
        }),
      }),
    );
    const downloads = join(t.dir, 'downloads');
    const run = await ota(
      [
        'agent',
        '--config',
        prov.files.config,
        '--once',
        '--current-version',
        '41811019',
        '--download-dir',
        downloads,
      ],
      { timeoutMs: 90_000 },
    );
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
    const exec = await iot.send(
      new DescribeJobExecutionCommand({ jobId: 'provisioned-ota', thingName: THING }),
    );
    assert.equal(exec.execution?.status, 'SUCCEEDED', JSON.stringify(exec.execution?.statusDetails));
  });

  const connect = (clientId: string) => connectWithCert(stack.endpoints.mqtt.port, pem, clientId);

  test("the policy's denials: another client id, another thing's topics, wildcards", async () => {
    await assert.rejects(connect(OTHER), (err: Error & { code?: number }) => err.code === 5);
    await assert.rejects(connect(`${THING}-2`), (err: Error & { code?: number }) => err.code === 5);

    const c = await connect(THING);
    try {
      const granted = async (filter: string) => {
        try {
          return (await c.subscribeAsync(filter, { qos: 1 }))[0]?.qos;
        } catch (err) {
          return (err as { packet?: { granted?: number[] } }).packet?.granted?.[0];
        }
      };
      assert.equal(await granted(`$aws/things/${THING}/jobs/notify-next`), 1);
      assert.equal(await granted(`CarVi/test/firmware/${THING}`), 1);
      assert.equal(await granted(`$aws/things/${OTHER}/jobs/notify-next`), 128);
      assert.equal(await granted('CarVi/test/firmware/+'), 128);
      assert.equal(await granted('#'), 128);
      await c.publishAsync(`CarVi/test/firmware/${THING}`, '{"Progress":"1.0 %"}', { qos: 1 });
      const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
      c.publish(`CarVi/test/firmware/${OTHER}`, 'spoof', { qos: 1 });
      await closed;
    } finally {
      await c.endAsync(true);
    }
  });

  test('session credentials from the credentials provider work on the control plane; forged tokens do not', async () => {
    const ep = stack.endpoints;
    const { default: https } = await import('node:https');
    const get = (headers: Record<string, string>, alias = ALIAS) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = https.request(
          {
            host: '127.0.0.1',
            port: ep.mqtt.port,
            servername: 'localhost',
            path: `/role-aliases/${alias}/credentials`,
            ca: pem.ca,
            cert: pem.cert,
            key: pem.key,
            headers,
            agent: false,
            ALPNProtocols: ['http/1.1'],
          } as import('node:https').RequestOptions,
          (res) => {
            let body = '';
            res.on('data', (d) => {
              body += d;
            });
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          },
        );
        req.on('error', reject);
        req.end();
      });
    assert.equal((await get({ 'x-amzn-iot-thingname': OTHER })).status, 403, 'a thing not attached');
    await iot.send(
      new CreateRoleAliasCommand({
        roleAlias: 'other-alias',
        roleArn: 'arn:aws:iam::000000000000:role/other',
      }),
    );
    assert.equal((await get({}, 'other-alias')).status, 403, 'an alias the policy does not name');
    assert.equal((await get({}, 'no-such-alias')).status, 404);
    const ok = await get({ 'x-amzn-iot-thingname': THING });
    assert.equal(ok.status, 200, ok.body);
    const { credentials } = JSON.parse(ok.body) as { credentials: Record<string, string> };

    const withToken = (sessionToken: string) =>
      new IoTClient({
        endpoint: ep.iot.endpoint,
        region: ep.region,
        maxAttempts: 1,
        credentials: {
          accessKeyId: credentials.accessKeyId ?? '',
          secretAccessKey: credentials.secretAccessKey ?? '',
          sessionToken,
        },
      });
    const good = withToken(credentials.sessionToken ?? '');
    const thing = await good.send(new DescribeThingCommand({ thingName: THING }));
    assert.equal(thing.thingName, THING);
    good.destroy();
    const forged = withToken(randomBytes(48).toString('base64'));
    await assert.rejects(forged.send(new DescribeThingCommand({ thingName: THING })), (err: Error) => {
      assert.equal(err.name, 'UnrecognizedClientException');
      assert.match(err.message, /security token included in the request is invalid/);
      return true;
    });
    forged.destroy();
  });

  test('detaching the policy or deactivating the certificate shuts the device out', async () => {
    await iot.send(new DetachPolicyCommand({ policyName: prov.policyName, target: prov.certificateArn }));
    await assert.rejects(connect(THING), (err: Error & { code?: number }) => err.code === 5);
    await iot.send(
      new UpdateCertificateCommand({ certificateId: prov.certificateId, newStatus: 'INACTIVE' }),
    );
    await assert.rejects(connect(THING), (err: Error & { code?: number }) => err.code === 5);
  });

  test('a second provision into the same directory refuses to overwrite the key, in one line', async () => {
    const r = await ota(provisionArgs());
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /exists; choose another --out-dir/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  });
});
