import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { encodeS3Key, formatS3HttpsUrl, isPresignedUrl, parseS3Url } from '../../../src/shared/s3-url.ts';

describe('parseS3Url', () => {
  const ORIGINAL = 'https://s3.amazonaws.com/dev-korea-job/firmware/CV150-C3_0.6.6/cv150_ubifs.img';

  test("the original document's URL (path-style, global endpoint, no region)", () => {
    assert.deepEqual(parseS3Url(ORIGINAL), {
      bucket: 'dev-korea-job',
      key: 'firmware/CV150-C3_0.6.6/cv150_ubifs.img',
    });
  });

  const cases: [string, { bucket: string; key: string; region?: string } | null][] = [
    ['s3://dev-korea-job/firmware/a/b.img', { bucket: 'dev-korea-job', key: 'firmware/a/b.img' }],
    ['s3://bucket/100% literal+key.bin', { bucket: 'bucket', key: '100% literal+key.bin' }],
    [
      'https://s3.us-west-2.amazonaws.com/b-1/k/x.bin',
      { bucket: 'b-1', key: 'k/x.bin', region: 'us-west-2' },
    ],
    [
      'https://s3-ap-northeast-2.amazonaws.com/b-1/x.bin',
      { bucket: 'b-1', key: 'x.bin', region: 'ap-northeast-2' },
    ],
    [
      'https://s3.dualstack.eu-central-1.amazonaws.com/b-1/x',
      { bucket: 'b-1', key: 'x', region: 'eu-central-1' },
    ],
    ['https://s3-external-1.amazonaws.com/b-1/x', { bucket: 'b-1', key: 'x', region: 'us-east-1' }],
    [
      'https://dev-korea-job.s3.amazonaws.com/rasp-ota-job-docs.json',
      { bucket: 'dev-korea-job', key: 'rasp-ota-job-docs.json' },
    ],
    [
      'https://dev-korea-job.s3.ap-northeast-2.amazonaws.com/rasp-ota-job-docs.json',
      { bucket: 'dev-korea-job', key: 'rasp-ota-job-docs.json', region: 'ap-northeast-2' },
    ],
    [
      'https://my.dotted.bucket.s3-us-gov-west-1.amazonaws.com/a/b',
      { bucket: 'my.dotted.bucket', key: 'a/b', region: 'us-gov-west-1' },
    ],
    ['http://s3.cn-north-1.amazonaws.com.cn/b-1/k', { bucket: 'b-1', key: 'k', region: 'cn-north-1' }],
    // Percent-decoding per segment; %2F inside a segment is a literal slash in the key.
    ['https://s3.amazonaws.com/b-1/dir/a%20b%2Bc%2Fd.bin', { bucket: 'b-1', key: 'dir/a b+c/d.bin' }],
    // S3 reads a literal + in the path as a space (the console's "Object URL" form).
    ['https://b-1.s3.amazonaws.com/my+file.bin', { bucket: 'b-1', key: 'my file.bin' }],
    ['https://b-1.s3.amazonaws.com/%E2%9C%93.bin', { bucket: 'b-1', key: '\u2713.bin' }],
    // Query strings (presigned URLs) do not change the location.
    [
      'https://s3.us-west-2.amazonaws.com/b-1/k.bin?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc',
      { bucket: 'b-1', key: 'k.bin', region: 'us-west-2' },
    ],
    // Not S3 object URLs.
    ['http://127.0.0.1:9000/b-1/k.bin', null],
    ['https://example.com/b-1/k.bin', null],
    ['https://s3.amazonaws.com.evil.example/b-1/k', null],
    ['https://s3.amazonaws.com/b-1', null],
    ['https://s3.amazonaws.com/b-1/', null],
    ['https://b-1.s3.amazonaws.com/', null],
    ['https://b-1.s3-website-us-east-1.amazonaws.com/k', null],
    ['https://iot.us-west-2.amazonaws.com/jobs/x', null],
    ['https://s3.amazonaws.com/b-1/bad%E0%A4%A.bin', null],
    ['s3://bucket', null],
    ['ftp://s3.amazonaws.com/b/k', null],
    ['not a url', null],
    ['', null],
  ];
  for (const [input, expected] of cases) {
    test(`${input || '(empty)'} -> ${JSON.stringify(expected)}`, () => {
      assert.deepEqual(parseS3Url(input), expected);
    });
  }
});

describe('isPresignedUrl', () => {
  test('true with X-Amz-Signature (any case) or a SigV2 Signature+AWSAccessKeyId', () => {
    assert.equal(isPresignedUrl('http://127.0.0.1:1/b/k?X-Amz-Date=1&X-Amz-Signature=ab'), true);
    assert.equal(isPresignedUrl('https://s3.amazonaws.com/b/k?x-amz-signature=ab'), true);
    assert.equal(isPresignedUrl('https://s3.amazonaws.com/b/k?AWSAccessKeyId=A&Expires=1&Signature=x'), true);
  });
  test('false without a signature, or for non-URLs', () => {
    assert.equal(isPresignedUrl('https://s3.amazonaws.com/b/k'), false);
    assert.equal(isPresignedUrl('https://s3.amazonaws.com/b/k?X-Amz-Date=1'), false);
    assert.equal(isPresignedUrl('https://s3.amazonaws.com/b/X-Amz-Signature'), false);
    assert.equal(isPresignedUrl('nope'), false);
  });
});

describe('formatS3HttpsUrl / encodeS3Key', () => {
  test('writes the original document form and round-trips through parseS3Url', () => {
    assert.equal(
      formatS3HttpsUrl('dev-korea-job', 'firmware/CV150-C3_0.6.6/cv150_ubifs.img'),
      'https://s3.amazonaws.com/dev-korea-job/firmware/CV150-C3_0.6.6/cv150_ubifs.img',
    );
    for (const key of ['a b+c.bin', "it's (1)!*.img", 'dir/\u2713/x~y.bin', 'percent%20.bin']) {
      assert.deepEqual(parseS3Url(formatS3HttpsUrl('b-1', key)), { bucket: 'b-1', key });
    }
    assert.equal(encodeS3Key('a b/c+d'), 'a%20b/c%2Bd');
  });
});
