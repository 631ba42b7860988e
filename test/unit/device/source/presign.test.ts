import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { pathStyleObjectUrl, presignGet } from '../../../../src/device/source/presign.ts';
import { localS3ClientConfig } from '../../../../src/shared/s3-client-config.ts';

// The light presigner must produce byte for byte what the SDK's presigner does for the same request.
describe('presignGet (SigV4 query auth) against @aws-sdk/s3-request-presigner', () => {
  const date = new Date('2026-03-04T05:06:07.890Z');
  const cases = [
    { key: 'fw/camera-1.2.3.bin', token: undefined },
    { key: 'dir with spaces/ünïcode+plus(1)*!~.bin', token: 'FwoGZXIvYXdzE/abc+def==' },
  ];
  for (const c of cases) {
    test(`path-style endpoint, key ${JSON.stringify(c.key)}, session token ${c.token ? 'yes' : 'no'}`, async () => {
      const creds = {
        accessKeyId: 'AKIDEXAMPLE',
        secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
        ...(c.token ? { sessionToken: c.token } : {}),
      };
      const client = new S3Client(localS3ClientConfig('http://127.0.0.1:45678', creds, 'eu-west-3'));
      try {
        const sdk = await getSignedUrl(client, new GetObjectCommand({ Bucket: 'firmware', Key: c.key }), {
          expiresIn: 900,
          signingDate: date,
        });
        const sdkUrl = new URL(sdk);
        const base = pathStyleObjectUrl('http://127.0.0.1:45678', 'firmware', c.key);
        assert.equal(base.href, `${sdkUrl.origin}${sdkUrl.pathname}`);
        const mine = presignGet({
          url: base,
          region: 'eu-west-3',
          credentials: creds,
          expiresIn: 900,
          date,
          query: { 'x-id': 'GetObject' },
        });
        // Same parameters, same signature (the SDK may order the query differently: compare as sets).
        const a = Object.fromEntries(sdkUrl.searchParams);
        const b = Object.fromEntries(mine.searchParams);
        assert.deepEqual(b, a);
        assert.equal(mine.pathname, sdkUrl.pathname);
        assert.equal(mine.host, sdkUrl.host);
      } finally {
        client.destroy();
      }
    });
  }
  test('a different secret gives a different signature (the test can fail)', () => {
    const url = new URL('http://127.0.0.1:1/b/k');
    const sign = (secretAccessKey: string) =>
      presignGet({
        url,
        region: 'us-east-1',
        credentials: { accessKeyId: 'A', secretAccessKey },
        expiresIn: 60,
        date,
      });
    const a = sign('x');
    const b = sign('y');
    assert.notEqual(a.searchParams.get('X-Amz-Signature'), b.searchParams.get('X-Amz-Signature'));
  });
});
