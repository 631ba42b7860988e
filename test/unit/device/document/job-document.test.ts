import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  MAX_FIRMWARE_SIZE,
  parseJobDocument,
  resolveSource,
} from '../../../../src/device/document/job-document.ts';
import { ValidationError } from '../../../../src/shared/errors.ts';

const ORIGINAL = {
  firmware: {
    version: '41811020',
    size: 87232512,
    region: 'us-west-2',
    url: 'https://s3.amazonaws.com/dev-korea-job/firmware/CV150-C3_0.6.6/cv150_ubifs.img',
  },
};

const withFw = (patch: Record<string, unknown>) => ({ firmware: { ...ORIGINAL.firmware, ...patch } });

function rejects(doc: unknown, field: string, re?: RegExp) {
  assert.throws(
    () => parseJobDocument(doc),
    (e: unknown) => {
      assert.ok(e instanceof ValidationError, String(e));
      assert.equal(e.field, field, e.message);
      assert.ok(e.message.startsWith(`${field}: `));
      if (re) assert.match(e.message, re);
      return true;
    },
  );
}

describe('parseJobDocument', () => {
  test("the original's document is valid; unknown fields ignored; numeric version coerced", () => {
    const d = parseJobDocument({ ...withFw({ version: 41811020, extra: 'x' }), other: 1 });
    assert.equal(d.version, '41811020');
    assert.equal(d.size, 87232512);
    assert.equal((d as Record<string, unknown>).extra, undefined);
  });
  test('each bad field is named', () => {
    rejects(null, 'jobDocument');
    rejects([], 'jobDocument');
    rejects({}, 'firmware', /required/);
    rejects({ firmware: 'x' }, 'firmware');
    rejects(withFw({ version: undefined }), 'firmware.version', /required/);
    rejects(withFw({ version: 'abc' }), 'firmware.version');
    rejects(withFw({ version: true }), 'firmware.version');
    rejects(withFw({ size: undefined }), 'firmware.size', /required/);
    rejects(withFw({ size: 0 }), 'firmware.size', /positive integer/);
    rejects(withFw({ size: -5 }), 'firmware.size', /positive integer/);
    rejects(withFw({ size: 1.5 }), 'firmware.size', /positive integer/);
    rejects(withFw({ size: '87232512' }), 'firmware.size', /positive integer/);
    rejects(withFw({ size: MAX_FIRMWARE_SIZE + 1 }), 'firmware.size', /64 GiB/);
    rejects(withFw({ size: 2 ** 60 }), 'firmware.size');
    rejects(withFw({ region: undefined }), 'firmware.region', /required/);
    rejects(withFw({ region: 'mars' }), 'firmware.region');
    rejects(withFw({ url: undefined }), 'firmware.url', /required/);
    rejects(withFw({ url: '' }), 'firmware.url');
    rejects(withFw({ sha256: 'abc' }), 'firmware.sha256', /64 hex/);
    rejects(withFw({ name: 5 }), 'firmware.name');
  });
  test('a url that is not a URL, or carries a control character, is refused at validation', () => {
    rejects(withFw({ url: '::::' }), 'firmware.url', /not a valid URL/);
    rejects(withFw({ url: 'https://s3.amazonaws.com/b/fw\u0000.img' }), 'firmware.url', /control/);
    rejects(withFw({ url: 'https://s3.amazonaws.com/b/fw.img\n' }), 'firmware.url', /control/);
  });
  test('a document nested 2,000 levels deep is refused naming the depth, without recursion', () => {
    let deep: Record<string, unknown> = { leaf: 1 };
    for (let i = 0; i < 2000; i++) deep = { x: deep };
    rejects({ ...withFw({}), extra: deep }, 'extra.x.x', /nested deeper than 32 levels/);
    let deeper: unknown = [];
    for (let i = 0; i < 100_000; i++) deeper = [deeper];
    rejects({ ...withFw({}), a: deeper }, 'a.0.0', /nested deeper/);
  });
  test('sha256 is normalised to lower case', () => {
    assert.equal(parseJobDocument(withFw({ sha256: 'A'.repeat(64) })).sha256, 'a'.repeat(64));
  });
});

describe('resolveSource', () => {
  const opts = { downloadDir: '/tmp/ota-dl', s3Endpoint: 'http://127.0.0.1:4567' };
  const resolve = (url: string, extra: Record<string, unknown> = {}) =>
    resolveSource(parseJobDocument(withFw({ url, ...extra })), opts);
  const bad = (url: string, re: RegExp) =>
    assert.throws(
      () => resolve(url),
      (e: unknown) => e instanceof ValidationError && e.field === 'firmware.url' && re.test(e.message),
      url,
    );

  test("the original's path-style URL → S3 GetObject with bucket/key/file and folder name", () => {
    const s = resolve(ORIGINAL.firmware.url);
    assert.equal(s.kind, 's3');
    assert.equal(s.kind === 's3' && s.bucket, 'dev-korea-job');
    assert.equal(s.kind === 's3' && s.key, 'firmware/CV150-C3_0.6.6/cv150_ubifs.img');
    assert.equal(s.fileName, 'cv150_ubifs.img');
    assert.equal(s.firmwareName, 'CV150-C3_0.6.6');
    assert.equal(s.region, 'us-west-2');
  });
  test('s3://, regional path-style, virtual-hosted', () => {
    assert.equal(resolve('s3://b/a/fw.bin').kind, 's3');
    const r = resolve('https://s3.eu-west-1.amazonaws.com/b/x/fw.bin');
    assert.equal(r.region, 'eu-west-1');
    const v = resolve('https://my-bucket.s3.us-east-2.amazonaws.com/dir/fw.bin');
    assert.equal(v.kind === 's3' && v.bucket, 'my-bucket');
    assert.equal(v.kind === 's3' && v.key, 'dir/fw.bin');
  });
  test('presigned URL → plain HTTPS GET, bucket/key still known', () => {
    const s = resolve('https://s3.us-west-2.amazonaws.com/b/dir/fw.bin?X-Amz-Signature=abc&X-Amz-Expires=60');
    assert.equal(s.kind, 'http');
    assert.equal(s.kind === 'http' && s.presigned, true);
    assert.equal(s.kind === 'http' && s.bucket, 'b');
  });
  test('local S3 endpoint URLs are S3 objects; other loopback http is plain GET', () => {
    assert.equal(resolve('http://127.0.0.1:4567/b/dir/fw.bin').kind, 's3');
    const h = resolve('http://localhost:9/dir/fw.bin');
    assert.equal(h.kind, 'http');
    assert.equal(h.firmwareName, 'dir');
    assert.equal(resolve('https://cdn.example.com/fw.bin').kind, 'http');
    assert.equal(resolve('https://cdn.example.com/fw.bin', { name: 'Nice' }).firmwareName, 'Nice');
  });
  test('refused: .. segments, absolute key, bad scheme, http to a non-loopback host, folder', () => {
    bad('https://s3.amazonaws.com/bucket//etc/passwd', /absolute/);
    bad('https://s3.amazonaws.com/bucket/a/../../etc/passwd', /\.\./);
    bad('https://s3.amazonaws.com/bucket/a/%2e%2e/passwd', /\.\./);
    bad('s3://bucket/a/../b', /\.\./);
    bad('ftp://example.com/fw.bin', /scheme ftp/);
    bad('file:///etc/passwd', /scheme file/);
    bad('http://example.com/fw.bin', /loopback/);
    bad('http://10.0.0.1/fw.bin', /loopback/);
    bad('https://s3.amazonaws.com/bucket/dir/', /object/);
    bad('https://user:pw@example.com/fw.bin', /credentials/);
    bad('not a url', /valid URL/);
  });
  test('malformed escapes, NUL, backslash and encoded traversal are refused after decoding', () => {
    bad('https://s3.amazonaws.com/bucket/fw%ff.img', /malformed percent-encoding \(%ff\)/);
    bad('https://s3.amazonaws.com/bucket/fw%zz.img', /malformed percent-encoding/);
    bad('http://127.0.0.1:4567/bucket/fw%ff.img', /malformed percent-encoding/);
    bad('https://s3.amazonaws.com/bucket/fw%00.img', /control characters/);
    bad('http://127.0.0.1:4567/bucket/a%00b/fw.img', /control characters/);
    bad('https://s3.amazonaws.com/bucket/a/..\\..\\other/fw.img', /\.\./);
    bad('https://s3.amazonaws.com/bucket/a/..%5c..%5cother/fw.img', /\.\./);
    bad('https://s3.amazonaws.com/bucket/a/%2e%2e%2fother/fw.img', /\.\./);
    bad('https://s3.amazonaws.com/bucket/a/%252e%252e/fw.img', /\.\./);
    bad('http://127.0.0.1:4567/bucket/a/..%5Cb/fw.img', /\.\./);
    bad('https://cdn.example.com/a/..%5c..%5cetc/passwd', /\.\./);
    bad('s3://bucket/a/..\\..\\b/fw.img', /\.\./);
    // a dot inside a name is fine
    assert.equal(resolve('https://s3.amazonaws.com/b/fw..1/x.img').fileName, 'x.img');
  });
  test('file name sanitised and kept inside downloadDir', () => {
    const s = resolve('https://s3.amazonaws.com/b/dir/f%20w%3B%24(x).img');
    assert.equal(s.fileName, 'f_w___x_.img');
  });
});
