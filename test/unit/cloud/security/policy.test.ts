import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bindPolicies, MalformedPolicyError, parsePolicy } from '../../../../src/cloud/security/policy.ts';

const ARN = 'arn:aws:iot:us-west-2:000000000000:';
const doc = (statements: unknown[]) => JSON.stringify({ Version: '2012-10-17', Statement: statements });

/** The device policy `ota provision` writes, in AWS's recommended shape. */
const DEVICE_POLICY = doc([
  {
    Effect: 'Allow',
    Action: 'iot:Connect',
    Resource: `${ARN}client/\${iot:Connection.Thing.ThingName}`,
    Condition: { Bool: { 'iot:Connection.Thing.IsAttached': 'true' } },
  },
  {
    Effect: 'Allow',
    Action: ['iot:Publish', 'iot:Receive'],
    Resource: [
      `${ARN}topic/$aws/things/\${iot:Connection.Thing.ThingName}/jobs/*`,
      `${ARN}topic/CarVi/test/firmware/\${iot:Connection.Thing.ThingName}`,
    ],
  },
  {
    Effect: 'Allow',
    Action: 'iot:Subscribe',
    Resource: `${ARN}topicfilter/$aws/things/\${iot:Connection.Thing.ThingName}/jobs/*`,
  },
  { Effect: 'Deny', Action: 'iot:Publish', Resource: `${ARN}topic/$aws/things/*/jobs/*/update` },
]);

describe('IoT policy evaluation', () => {
  const policy = parsePolicy(DEVICE_POLICY);
  const cam = bindPolicies([policy], { clientId: 'cam-1', thingName: 'cam-1' });

  test('thing variables: its own topics only', () => {
    assert.equal(cam.isAllowed('iot:Connect', `${ARN}client/cam-1`), true);
    assert.equal(cam.isAllowed('iot:Connect', `${ARN}client/cam-2`), false);
    assert.equal(cam.isAllowed('iot:Publish', `${ARN}topic/$aws/things/cam-1/jobs/start-next`), true);
    assert.equal(cam.isAllowed('iot:Publish', `${ARN}topic/$aws/things/cam-2/jobs/start-next`), false);
    assert.equal(cam.isAllowed('iot:Publish', `${ARN}topic/CarVi/test/firmware/cam-1`), true);
    assert.equal(cam.isAllowed('iot:Publish', `${ARN}topic/CarVi/test/firmware/cam-2`), false);
    assert.equal(cam.isAllowed('iot:Receive', `${ARN}topic/$aws/things/cam-1/jobs/notify-next`), true);
  });

  test('an explicit Deny wins over an Allow', () => {
    assert.equal(cam.isAllowed('iot:Publish', `${ARN}topic/$aws/things/cam-1/jobs/job-1/update`), false);
  });

  test('MQTT + and # are literal in a policy; * in a resource matches across levels', () => {
    assert.equal(
      cam.isAllowed('iot:Subscribe', `${ARN}topicfilter/$aws/things/cam-1/jobs/#`),
      true,
      '* covers #',
    );
    assert.equal(cam.isAllowed('iot:Subscribe', `${ARN}topicfilter/$aws/things/+/jobs/#`), false);
    const literal = bindPolicies(
      [parsePolicy(doc([{ Effect: 'Allow', Action: 'iot:Subscribe', Resource: `${ARN}topicfilter/a/+` }]))],
      {},
    );
    assert.equal(literal.isAllowed('iot:Subscribe', `${ARN}topicfilter/a/+`), true);
    assert.equal(literal.isAllowed('iot:Subscribe', `${ARN}topicfilter/a/b`), false);
  });

  test('a substituted value is literal: a client id with * or ? is no wildcard', () => {
    const p = parsePolicy(
      doc([{ Effect: 'Allow', Action: 'iot:Connect', Resource: `${ARN}client/\${iot:ClientId}-x` }]),
    );
    assert.equal(bindPolicies([p], { clientId: 'a*' }).isAllowed('iot:Connect', `${ARN}client/a*-x`), true);
    assert.equal(
      bindPolicies([p], { clientId: '*' }).isAllowed('iot:Connect', `${ARN}client/anything-x`),
      false,
    );
  });

  test('an unattached certificate resolves no thing variable: IsAttached false, ThingName unresolved', () => {
    const stranger = bindPolicies([policy], { clientId: 'cam-1' });
    assert.equal(stranger.isAllowed('iot:Connect', `${ARN}client/cam-1`), false);
    assert.equal(stranger.isAllowed('iot:Publish', `${ARN}topic/CarVi/test/firmware/cam-1`), false);
  });

  test('action names are case-insensitive and take wildcards; other regions and accounts do not match', () => {
    const p = bindPolicies(
      [parsePolicy(doc([{ Effect: 'Allow', Action: 'iot:*', Resource: `${ARN}topic/t` }]))],
      {},
    );
    assert.equal(p.isAllowed('iot:publish', `${ARN}topic/t`), true);
    assert.equal(p.isAllowed('iot:Publish', 'arn:aws:iot:eu-west-1:000000000000:topic/t'), false);
  });

  test('string conditions: StringLike with a variable, StringNotEquals on a missing key', () => {
    const p = parsePolicy(
      doc([
        {
          Effect: 'Allow',
          Action: 'iot:Connect',
          Resource: '*',
          Condition: { StringLike: { 'iot:ClientId': [`\${iot:Connection.Thing.ThingName}`, 'ops-*'] } },
        },
        {
          Effect: 'Allow',
          Action: 'iot:Publish',
          Resource: '*',
          Condition: { StringNotEquals: { 'iot:Connection.Thing.ThingName': 'blocked' } },
        },
      ]),
    );
    assert.equal(
      bindPolicies([p], { clientId: 'cam', thingName: 'cam' }).isAllowed('iot:Connect', `${ARN}client/cam`),
      true,
    );
    assert.equal(
      bindPolicies([p], { clientId: 'ops-7' }).isAllowed('iot:Connect', `${ARN}client/ops-7`),
      true,
    );
    assert.equal(
      bindPolicies([p], { clientId: 'other' }).isAllowed('iot:Connect', `${ARN}client/other`),
      false,
    );
    assert.equal(
      bindPolicies([p], { clientId: 'x' }).isAllowed('iot:Publish', `${ARN}topic/t`),
      true,
      'missing key',
    );
    assert.equal(
      bindPolicies([p], { clientId: 'b', thingName: 'blocked' }).isAllowed('iot:Publish', `${ARN}topic/t`),
      false,
    );
  });

  test('malformed or unsupported documents are refused by name', () => {
    const cases: [string, RegExp][] = [
      ['{', /not valid JSON/],
      [doc([]), /at least one statement/],
      [doc([{ Effect: 'Maybe', Action: 'iot:Connect', Resource: '*' }]), /Statement\[0\]\.Effect/],
      [doc([{ Effect: 'Allow', Action: 's3:GetObject', Resource: '*' }]), /not an iot: action/],
      [doc([{ Effect: 'Allow', Action: 'iot:Connect' }]), /Statement\[0\]\.Resource/],
      [doc([{ Effect: 'Allow', NotAction: 'iot:Connect', Resource: '*' }]), /NotAction: not supported/],
      [
        doc([{ Effect: 'Allow', Action: 'iot:Connect', Resource: `\${iot:Certificate.Subject.CommonName}` }]),
        /not supported/,
      ],
      [
        doc([
          {
            Effect: 'Allow',
            Action: 'iot:Connect',
            Resource: '*',
            Condition: { IpAddress: { 'aws:SourceIp': '1.2.3.4' } },
          },
        ]),
        /IpAddress/,
      ],
      [
        JSON.stringify({ Statement: { Effect: 'Allow', Action: 'iot:Connect', Resource: 'x'.repeat(2100) } }),
        /2048/,
      ],
    ];
    for (const [text, message] of cases) {
      assert.throws(
        () => parsePolicy(text),
        (err: Error) => err instanceof MalformedPolicyError && message.test(err.message),
        text.slice(0, 80),
      );
    }
  });
});
