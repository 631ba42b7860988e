/**
 * The provisioning operations of the local control plane through @aws-sdk/client-iot: AWS's error types
 * for bad input, and state that survives a restart of the stack.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreateKeysAndCertificateCommand,
  CreatePolicyCommand,
  CreateRoleAliasCommand,
  DeleteCertificateCommand,
  DeletePolicyCommand,
  DescribeCertificateCommand,
  DescribeEndpointCommand,
  DescribeRoleAliasCommand,
  GetPolicyCommand,
  IoTClient,
  ListThingPrincipalsCommand,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';
import mqtt from 'mqtt';
import { type LocalStack, startLocalStack } from '../../../src/cloud/stack.ts';
import { devicePolicyDocument } from '../../../src/operator/provision.ts';
import { FREE_PORTS } from '../../helpers/stack.ts';

const clientFor = (stack: LocalStack) =>
  new IoTClient({
    endpoint: stack.endpoints.iot.endpoint,
    region: stack.endpoints.region,
    maxAttempts: 1,
    credentials: {
      accessKeyId: stack.endpoints.iot.accessKeyId,
      secretAccessKey: stack.endpoints.iot.secretAccessKey,
    },
  });

const rejectsWith = (p: Promise<unknown>, name: string, message?: RegExp) =>
  assert.rejects(p, (err: Error) => {
    assert.equal(err.name, name, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });

test('provisioning operations: AWS error types, and the registry survives a restart', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ota-registry-'));
  const dataDir = join(dir, 'data');
  let stack = await startLocalStack({ dataDir, ...FREE_PORTS, things: ['cam-r'] });
  let iot = clientFor(stack);
  try {
    const policyDocument = devicePolicyDocument({ region: 'us-west-2', accountId: '000000000000' });
    assert.ok(policyDocument.replace(/\s/g, '').length <= 2048, 'the device policy fits AWS’s size limit');
    await iot.send(new CreatePolicyCommand({ policyName: 'dev', policyDocument }));
    await rejectsWith(
      iot.send(new CreatePolicyCommand({ policyName: 'dev', policyDocument })),
      'ResourceAlreadyExistsException',
    );
    await rejectsWith(
      iot.send(
        new CreatePolicyCommand({ policyName: 'bad', policyDocument: '{"Statement":[{"Effect":"Allow"}]}' }),
      ),
      'MalformedPolicyException',
      /Statement\[0\]\.Action/,
    );
    await rejectsWith(iot.send(new GetPolicyCommand({ policyName: 'nope' })), 'ResourceNotFoundException');

    const cert = await iot.send(new CreateKeysAndCertificateCommand({}));
    const arn = cert.certificateArn as string;
    const described = await iot.send(new DescribeCertificateCommand({ certificateId: cert.certificateId }));
    assert.equal(described.certificateDescription?.status, 'INACTIVE', 'AWS default without setAsActive');
    assert.ok(described.certificateDescription?.creationDate instanceof Date);
    await iot.send(new AttachPolicyCommand({ policyName: 'dev', target: arn }));
    await rejectsWith(
      iot.send(
        new AttachPolicyCommand({
          policyName: 'dev',
          target: 'arn:aws:iot:us-west-2:000000000000:thinggroup/g',
        }),
      ),
      'InvalidRequestException',
    );
    await rejectsWith(
      iot.send(new AttachThingPrincipalCommand({ thingName: 'no-such-thing', principal: arn })),
      'ResourceNotFoundException',
    );
    await iot.send(new AttachThingPrincipalCommand({ thingName: 'cam-r', principal: arn }));
    await rejectsWith(iot.send(new DeletePolicyCommand({ policyName: 'dev' })), 'DeleteConflictException');
    await rejectsWith(
      iot.send(new DeleteCertificateCommand({ certificateId: cert.certificateId })),
      'DeleteConflictException',
    );
    await rejectsWith(
      iot.send(new UpdateCertificateCommand({ certificateId: 'f'.repeat(64), newStatus: 'ACTIVE' })),
      'ResourceNotFoundException',
    );
    await iot.send(new UpdateCertificateCommand({ certificateId: cert.certificateId, newStatus: 'ACTIVE' }));
    await rejectsWith(
      iot.send(new CreateRoleAliasCommand({ roleAlias: 'r', roleArn: 'not-an-arn' })),
      'InvalidRequestException',
      /roleArn/,
    );
    await rejectsWith(
      iot.send(
        new CreateRoleAliasCommand({
          roleAlias: 'r',
          roleArn: 'arn:aws:iam::000000000000:role/r',
          credentialDurationSeconds: 60,
        }),
      ),
      'InvalidRequestException',
      /credentialDurationSeconds/,
    );
    await iot.send(
      new CreateRoleAliasCommand({ roleAlias: 'r', roleArn: 'arn:aws:iam::000000000000:role/r' }),
    );
    const creds = await iot.send(new DescribeEndpointCommand({ endpointType: 'iot:CredentialProvider' }));
    assert.equal(creds.endpointAddress, '127.0.0.1');

    // Restart on the same data dir: the certificate still connects as its thing, under its policy.
    iot.destroy();
    await stack.close();
    stack = await startLocalStack({ dataDir, ...FREE_PORTS, things: [] });
    iot = clientFor(stack);
    const principals = await iot.send(new ListThingPrincipalsCommand({ thingName: 'cam-r' }));
    assert.deepEqual(principals.principals, [arn]);
    const alias = await iot.send(new DescribeRoleAliasCommand({ roleAlias: 'r' }));
    assert.equal(alias.roleAliasDescription?.credentialDurationSeconds, 3600);
    const { readFile } = await import('node:fs/promises');
    const client = await mqtt.connectAsync(`mqtts://127.0.0.1:${stack.endpoints.mqtt.port}`, {
      ca: await readFile(stack.endpoints.rootCA, 'utf8'),
      cert: cert.certificatePem,
      key: cert.keyPair?.PrivateKey,
      servername: 'localhost',
      clientId: 'cam-r',
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    await client.endAsync(true);
  } finally {
    iot.destroy();
    await stack.close();
    await rm(dir, { recursive: true, force: true });
  }
});
