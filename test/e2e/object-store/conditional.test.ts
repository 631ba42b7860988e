import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { guardServedEtag } from '../../../src/cloud/object-store/conditional.ts';
import { type RunningObjectStore, startObjectStore } from '../../../src/cloud/object-store/store.ts';
import { localS3ClientConfig } from '../../../src/shared/s3-client-config.ts';

const REGION = 'us-west-2';
const BUCKET = 'dev-korea-job';
const CREDS = { accessKeyId: 'AKIDCONDITIONALTEST', secretAccessKey: 'conditional-test-secret' };
const KEY = 'firmware/CV150-C3_0.6.6/cv150_ubifs.img';
const BODY = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz');
const ETAG = `"${createHash('md5').update(BODY).digest('hex')}"`;
const STALE = '"00000000000000000000000000000000"';
const PAST = new Date('2001-01-01T00:00:00Z');
const FUTURE = new Date(Date.now() + 24 * 3600_000);

async function expectStatus(p: Promise<unknown>, status: number, name?: string): Promise<S3ServiceException> {
  let caught: unknown;
  await assert.rejects(p, (err: unknown) => {
    caught = err;
    return true;
  });
  assert.ok(caught instanceof S3ServiceException, `expected S3ServiceException, got ${String(caught)}`);
  assert.equal(caught.$metadata.httpStatusCode, status);
  if (name !== undefined) assert.equal(caught.name, name);
  return caught;
}

describe('object store: conditional GetObject / HeadObject (RFC 9110 §13, S3 GetObject)', () => {
  let dir: string;
  let store: RunningObjectStore;
  let s3: S3Client;
  let lastModified: Date;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ota-object-store-cond-'));
    store = await startObjectStore({
      host: '127.0.0.1',
      port: 0,
      directory: dir,
      buckets: [BUCKET],
      region: REGION,
      credentials: CREDS,
    });
    s3 = new S3Client(localS3ClientConfig(store.endpoint, CREDS, REGION));
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: KEY, Body: BODY }));
    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: KEY }));
    assert.equal(head.ETag, ETAG);
    assert.ok(head.LastModified instanceof Date);
    lastModified = head.LastModified;
  });
  after(async () => {
    s3.destroy();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  const get = (extra: Partial<ConstructorParameters<typeof GetObjectCommand>[0]>) =>
    s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: KEY, ...extra }));
  const head = (extra: Partial<ConstructorParameters<typeof HeadObjectCommand>[0]>) =>
    s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: KEY, ...extra }));

  test('GetObject If-Match current ETag → 200 with the object', async () => {
    const res = await get({ IfMatch: ETAG });
    assert.equal(res.$metadata.httpStatusCode, 200);
    assert.deepEqual(Buffer.from(await res.Body!.transformToByteArray()), BODY);
  });

  test('GetObject If-Match: a list containing the ETag, `*`, and the bare MD5 all match', async () => {
    for (const IfMatch of [`${STALE}, ${ETAG}`, '*', ETAG.slice(1, -1)]) {
      const res = await get({ IfMatch });
      assert.equal(res.$metadata.httpStatusCode, 200, IfMatch);
      await res.Body!.transformToByteArray();
    }
  });

  test('GetObject If-Match stale ETag → 412 PreconditionFailed (Condition If-Match)', async () => {
    const err = await expectStatus(get({ IfMatch: STALE }), 412, 'PreconditionFailed');
    assert.equal((err as S3ServiceException & { Condition?: string }).Condition, 'If-Match');
  });

  test('GetObject If-Match with a weak tag never matches (strong comparison)', async () => {
    await expectStatus(get({ IfMatch: `W/${ETAG}` }), 412, 'PreconditionFailed');
  });

  test('GetObject Range + If-Match current → 206; Range + If-Match stale → 412', async () => {
    const res = await get({ Range: 'bytes=10-', IfMatch: ETAG });
    assert.equal(res.$metadata.httpStatusCode, 206);
    assert.equal(res.ContentRange, `bytes 10-${BODY.length - 1}/${BODY.length}`);
    assert.deepEqual(Buffer.from(await res.Body!.transformToByteArray()), BODY.subarray(10));
    await expectStatus(get({ Range: 'bytes=10-', IfMatch: STALE }), 412, 'PreconditionFailed');
  });

  test('a failed precondition wins over an unsatisfiable range (412, not 416)', async () => {
    await expectStatus(get({ Range: 'bytes=1000-', IfMatch: STALE }), 412, 'PreconditionFailed');
  });

  test('GetObject If-None-Match current → 304 with the ETag; stale → 200', async () => {
    // A 304 has no body (RFC 9110 §15.4.5), as from AWS, so the SDK has no error code to name the
    // exception by (it reports "Unknown"); the status is what a caller checks.
    await expectStatus(get({ IfNoneMatch: ETAG }), 304);
    await expectStatus(get({ IfNoneMatch: '*' }), 304);
    await expectStatus(get({ IfNoneMatch: `W/${ETAG}` }), 304); // weak comparison (RFC 9110 §13.1.2)
    const res = await get({ IfNoneMatch: STALE });
    assert.equal(res.$metadata.httpStatusCode, 200);
    await res.Body!.transformToByteArray();
  });

  test('GetObject If-Modified-Since future → 304; past → 200', async () => {
    await expectStatus(get({ IfModifiedSince: FUTURE }), 304);
    await expectStatus(get({ IfModifiedSince: lastModified }), 304);
    const res = await get({ IfModifiedSince: PAST });
    assert.equal(res.$metadata.httpStatusCode, 200);
    await res.Body!.transformToByteArray();
  });

  test('GetObject If-Unmodified-Since past → 412 (Condition If-Unmodified-Since); future → 200', async () => {
    const err = await expectStatus(get({ IfUnmodifiedSince: PAST }), 412, 'PreconditionFailed');
    assert.equal((err as S3ServiceException & { Condition?: string }).Condition, 'If-Unmodified-Since');
    const res = await get({ IfUnmodifiedSince: FUTURE });
    assert.equal(res.$metadata.httpStatusCode, 200);
    await res.Body!.transformToByteArray();
  });

  test('S3 precedence: If-Match true + If-Unmodified-Since false → 200', async () => {
    const res = await get({ IfMatch: ETAG, IfUnmodifiedSince: PAST });
    assert.equal(res.$metadata.httpStatusCode, 200);
    await res.Body!.transformToByteArray();
  });

  test('S3 precedence: If-None-Match decides over If-Modified-Since', async () => {
    // If-None-Match false (ETag matches) + If-Modified-Since true → 304.
    await expectStatus(get({ IfNoneMatch: ETAG, IfModifiedSince: PAST }), 304);
    // If-None-Match true (no match) + If-Modified-Since false → If-Modified-Since ignored → 200.
    const res = await get({ IfNoneMatch: STALE, IfModifiedSince: FUTURE });
    assert.equal(res.$metadata.httpStatusCode, 200);
    await res.Body!.transformToByteArray();
  });

  test('If-Match is checked before If-None-Match (412 wins over 304)', async () => {
    await expectStatus(get({ IfMatch: STALE, IfNoneMatch: ETAG }), 412, 'PreconditionFailed');
  });

  test('a conditional GET of a missing key is 404 NoSuchKey', async () => {
    await expectStatus(
      s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'missing.img', IfMatch: ETAG })),
      404,
      'NoSuchKey',
    );
  });

  test('HeadObject: If-Match current → 200, stale → 412; If-None-Match current → 304', async () => {
    const ok = await head({ IfMatch: ETAG });
    assert.equal(ok.$metadata.httpStatusCode, 200);
    assert.equal(ok.ETag, ETAG);
    await expectStatus(head({ IfMatch: STALE }), 412);
    await expectStatus(head({ IfNoneMatch: ETAG }), 304);
    await expectStatus(head({ IfModifiedSince: FUTURE }), 304);
    await expectStatus(head({ IfUnmodifiedSince: PAST }), 412);
    const mod = await head({ IfModifiedSince: PAST, IfUnmodifiedSince: FUTURE });
    assert.equal(mod.$metadata.httpStatusCode, 200);
  });

  test('raw 412 body is S3 XML with Code, Message and Condition; 304 has no body', async () => {
    const url = await store.presignGetUrl(BUCKET, KEY, 60);
    const r412 = await fetch(url, { headers: { 'if-match': STALE } });
    assert.equal(r412.status, 412);
    const xml = await r412.text();
    assert.match(xml, /<Error><Code>PreconditionFailed<\/Code>/);
    assert.match(xml, /<Message>At least one of the pre-conditions you specified did not hold<\/Message>/);
    assert.match(xml, /<Condition>If-Match<\/Condition>/);

    const r304 = await fetch(url, { headers: { 'if-none-match': ETAG } });
    assert.equal(r304.status, 304);
    assert.equal(r304.headers.get('etag'), ETAG);
    assert.equal(r304.headers.get('last-modified'), lastModified.toUTCString());
    assert.equal(await r304.text(), '');
  });

  test('If-Range: stale ETag → 200 whole object; current ETag → 206', async () => {
    const url = await store.presignGetUrl(BUCKET, KEY, 60);
    const stale = await fetch(url, { headers: { range: 'bytes=5-', 'if-range': STALE } });
    assert.equal(stale.status, 200);
    assert.equal(stale.headers.get('content-range'), null);
    assert.deepEqual(Buffer.from(await stale.arrayBuffer()), BODY);

    const current = await fetch(url, { headers: { range: 'bytes=5-', 'if-range': ETAG } });
    assert.equal(current.status, 206);
    assert.equal(current.headers.get('content-range'), `bytes 5-${BODY.length - 1}/${BODY.length}`);
    assert.deepEqual(Buffer.from(await current.arrayBuffer()), BODY.subarray(5));

    // A weak tag never satisfies If-Range (RFC 9110 §13.1.5).
    const weak = await fetch(url, { headers: { range: 'bytes=5-', 'if-range': `W/${ETAG}` } });
    assert.equal(weak.status, 200);
    await weak.arrayBuffer();
  });

  test('If-Range with a date: Last-Modified exactly → 206; another date → 200', async () => {
    const url = await store.presignGetUrl(BUCKET, KEY, 60);
    const same = await fetch(url, { headers: { range: 'bytes=-4', 'if-range': lastModified.toUTCString() } });
    assert.equal(same.status, 206);
    assert.deepEqual(Buffer.from(await same.arrayBuffer()), BODY.subarray(-4));
    const other = await fetch(url, { headers: { range: 'bytes=-4', 'if-range': PAST.toUTCString() } });
    assert.equal(other.status, 200);
    assert.deepEqual(Buffer.from(await other.arrayBuffer()), BODY);
  });

  test('after the object is replaced, the old ETag fails If-Match and the new one passes', async () => {
    const key = 'firmware/replaced.img';
    const first = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: 'version one' }));
    const second = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: 'version two!' }));
    assert.notEqual(first.ETag, second.ETag);
    await expectStatus(
      s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, Range: 'bytes=3-', IfMatch: first.ETag })),
      412,
      'PreconditionFailed',
    );
    const res = await s3.send(
      new GetObjectCommand({ Bucket: BUCKET, Key: key, Range: 'bytes=3-', IfMatch: second.ETag }),
    );
    assert.equal(res.$metadata.httpStatusCode, 206);
    assert.equal(await res.Body!.transformToString(), 'sion two!');
  });
});

describe('guardServedEtag (object replaced between the precondition check and the read)', () => {
  test('a 200/206 with another ETag drops the connection; the checked ETag or a non-2xx passes', async () => {
    const server = createServer((req, res) => {
      const [status = '200', served = ''] = (req.url ?? '').slice(1).split('/');
      guardServedEtag(res, '"checked"');
      res.statusCode = Number(status);
      res.setHeader('ETag', `"${served}"`);
      res.end('body');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      await assert.rejects(fetch(`${base}/206/replaced`), TypeError);
      await assert.rejects(fetch(`${base}/200/replaced`), TypeError);
      const same = await fetch(`${base}/206/checked`);
      assert.equal(same.status, 206);
      assert.equal(await same.text(), 'body');
      const notFound = await fetch(`${base}/404/replaced`);
      assert.equal(notFound.status, 404);
      await notFound.text();
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
