import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ensureLocalCa, type LocalCa } from '../../../../src/cloud/pki/pki.ts';
import {
  type ConnectSubject,
  certificateCn,
  diagnoseConnectError,
  localCertificateMismatch,
} from '../../../../src/device/link/connect-diagnosis.ts';

const subject: ConnectSubject = {
  host: '127.0.0.1',
  port: 8883,
  clientId: 'Cam_1',
  thingName: 'Cam_1',
};
const err = (message: string, code?: string | number) => Object.assign(new Error(message), { code });

describe('the likely cause of a failed connection', () => {
  test('nothing listening: host:port, or the local stack that is not running', () => {
    const p = diagnoseConnectError(err('connect ECONNREFUSED 127.0.0.1:8883', 'ECONNREFUSED'), subject);
    assert.equal(p.kind, 'refused');
    assert.match(p.message, /^nothing listening on 127\.0\.0\.1:8883 \(connection refused\)/);
    assert.equal(p.definitive, false, 'a broker may come up: retry');
    const local = diagnoseConnectError(err('x', 'ECONNREFUSED'), { ...subject, localDataDir: '/d/.ota' });
    assert.match(
      local.message,
      /^the local stack at \/d\/\.ota is not running \(nothing listens on 127\.0\.0\.1:8883;/,
    );
    assert.equal(local.definitive, true);
  });

  test('CONNACK 5: the CN, else the client id, else what the broker requires', () => {
    const refused = err('Connection refused: Not authorized', 5);
    const cn = diagnoseConnectError(refused, { ...subject, certCn: 'Cam_2' });
    assert.equal(cn.kind, 'not-authorized');
    assert.equal(cn.definitive, true);
    assert.match(
      cn.message,
      /CONNACK 5, not authorized\): the certificate's CN is Cam_2 but --thing-name is Cam_1$/,
    );
    const id = diagnoseConnectError(refused, { ...subject, clientId: 'other' });
    assert.match(id.message, /the MQTT client id "other" is not the thing name Cam_1; the broker requires/);
    // AWS's own certificates name no thing: not taken for a mismatch
    const aws = diagnoseConnectError(refused, { ...subject, certCn: 'AWS IoT Certificate' });
    assert.match(aws.message, /requires the client id to be the thing name .* iot:Connect on client\/Cam_1/);
    const unavailable = diagnoseConnectError(err('Connection refused: Server unavailable', 3), subject);
    assert.equal(unavailable.kind, 'connack');
    assert.equal(unavailable.definitive, false);
  });

  test('TLS, DNS, timeouts, a bare close and a lost connection', () => {
    const cases: [Error | undefined, string, boolean][] = [
      [
        err('unable to verify the first certificate', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'),
        'server-certificate',
        true,
      ],
      [err('Hostname/IP does not match', 'ERR_TLS_CERT_ALTNAME_INVALID'), 'server-certificate', true],
      [err('tlsv1 alert unknown ca', 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA'), 'client-certificate', true],
      [err('wrong version number', 'ERR_SSL_WRONG_VERSION_NUMBER'), 'not-tls', true],
      [err('getaddrinfo ENOTFOUND x', 'ENOTFOUND'), 'dns', false],
      [err('connect ETIMEDOUT', 'ETIMEDOUT'), 'unreachable', false],
      [err('connack timeout'), 'timeout', false],
      [err('read ECONNRESET', 'ECONNRESET'), 'closed', false],
      [undefined, 'closed', false],
      [err('something else'), 'other', false],
    ];
    for (const [e, kind, definitive] of cases) {
      const p = diagnoseConnectError(e, subject);
      assert.equal(p.kind, kind, e?.message);
      assert.equal(p.definitive, definitive, e?.message);
      assert.ok(!p.message.includes('\n'), 'one line');
    }
    assert.match(
      diagnoseConnectError(undefined, subject).message,
      /on AWS IoT this is the answer to a CONNECT/,
    );
    const dropped = diagnoseConnectError(err('read ECONNRESET', 'ECONNRESET'), subject, true);
    assert.equal(dropped.kind, 'dropped');
    assert.equal(dropped.message, 'the connection to 127.0.0.1:8883 was lost (read ECONNRESET)');
  });
});

describe("the certificate's CN, checked before connecting", () => {
  let dir: string;
  let ca: LocalCa;
  let other: LocalCa;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ota-diag-'));
    ca = await ensureLocalCa(join(dir, 'a'), { hosts: ['127.0.0.1'] });
    other = await ensureLocalCa(join(dir, 'b'), { hosts: ['127.0.0.1'] });
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('a thing-named certificate of the local stack, for another thing: refused, naming both', async () => {
    const cert = (await ca.issueClientCert('Cam_7')).certPem;
    assert.equal(certificateCn(cert), 'Cam_7');
    assert.equal(
      localCertificateMismatch({ certPem: cert, caPem: ca.caCertPem, thingName: 'Cam_7' }),
      undefined,
    );
    assert.match(
      localCertificateMismatch({ certPem: cert, caPem: ca.caCertPem, thingName: 'Cam_8' }) ?? '',
      /^the certificate's CN is Cam_7 but --thing-name is Cam_8: the local broker takes the CN as the thing name/,
    );
  });

  test('never for an AWS-style certificate, a certificate from another CA, or without a root CA', async () => {
    const aws = (await ca.issueDeviceCertificate()).certificatePem;
    assert.equal(certificateCn(aws), 'AWS IoT Certificate');
    assert.equal(
      localCertificateMismatch({ certPem: aws, caPem: ca.caCertPem, thingName: 'Cam_8' }),
      undefined,
    );
    const foreign = (await other.issueClientCert('Cam_7')).certPem;
    assert.equal(
      localCertificateMismatch({ certPem: foreign, caPem: ca.caCertPem, thingName: 'Cam_8' }),
      undefined,
    );
    const mine = (await ca.issueClientCert('Cam_7')).certPem;
    assert.equal(
      localCertificateMismatch({ certPem: mine, caPem: undefined, thingName: 'Cam_8' }),
      undefined,
    );
    assert.equal(
      localCertificateMismatch({ certPem: 'not a pem', caPem: ca.caCertPem, thingName: 'x' }),
      undefined,
    );
    assert.equal(certificateCn('not a pem'), undefined);
  });
});
