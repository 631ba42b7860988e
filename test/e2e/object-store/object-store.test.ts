import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, type TestContext, test } from 'node:test';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { type RunningObjectStore, startObjectStore } from '../../../src/cloud/object-store/store.ts';
import { ManualClock } from '../../../src/shared/clock.ts';
import { localS3ClientConfig } from '../../../src/shared/s3-client-config.ts';

const REGION = 'us-west-2';
const BUCKET = 'dev-korea-job';
const CREDS = { accessKeyId: 'AKIDOBJECTSTORETEST', secretAccessKey: 'object-store-test-secret' };

/**
 * The store's clock: expiry tests move it past a URL's lifetime instead of waiting it out. It starts on a
 * whole second, as X-Amz-Date counts time, so a URL's last valid millisecond is exact.
 */
const clock = new ManualClock({ start: Math.ceil(Date.now() / 1000) * 1000 });

async function start(directory: string): Promise<RunningObjectStore> {
  return startObjectStore({
    host: '127.0.0.1',
    port: 0,
    directory,
    buckets: [BUCKET, 'other-bucket'],
    region: REGION,
    credentials: CREDS,
    clock,
  });
}

const cleanups = new WeakMap<TestContext, (() => unknown)[]>();

/**
 * Runs `fn` after the test `t`, passed or failed: the last registered first, as nested try/finally blocks
 * would (a store closes before its directory goes; node:test's own `t.after` runs first in, first out).
 */
function defer(t: TestContext, fn: () => unknown): void {
  let fns = cleanups.get(t);
  if (!fns) {
    const registered: (() => unknown)[] = [];
    cleanups.set(t, registered);
    t.after(async () => {
      const failures: unknown[] = [];
      for (const f of registered.reverse()) {
        try {
          await f();
        } catch (err) {
          failures.push(err);
        }
      }
      if (failures.length > 0) throw failures[0];
    });
    fns = registered;
  }
  fns.push(fn);
}

async function expectS3Error(p: Promise<unknown>, name: string, status: number): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof S3ServiceException, `expected S3ServiceException, got ${String(err)}`);
    assert.equal(err.name, name);
    assert.equal(err.$metadata.httpStatusCode, status);
    return true;
  });
}

/** Deterministic pseudo-random bytes, generated one chunk at a time (xorshift32). */
function deterministicStream(total: number, chunkSize = 1 << 20): Readable {
  let produced = 0;
  let state = 0x9e3779b9;
  return new Readable({
    read() {
      if (produced >= total) {
        this.push(null);
        return;
      }
      const n = Math.min(chunkSize, total - produced);
      const buf = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i += 4) {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        state >>>= 0;
        const word = Buffer.alloc(4);
        word.writeUInt32LE(state);
        word.copy(buf, i, 0, Math.min(4, n - i));
      }
      produced += n;
      this.push(buf);
    },
  });
}

/** A raw HTTP request whose path is sent byte for byte (fetch would normalize dot segments). */
function rawRequest(
  endpoint: string,
  method: string,
  path: string,
  body?: string,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${endpoint}${path}`, { method, path }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        text += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function sha256OfStream(stream: AsyncIterable<Uint8Array>): Promise<{ hex: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) {
    h.update(chunk);
    size += chunk.length;
  }
  return { hex: h.digest('hex'), size };
}

describe('object store (s3rver + front layer) with @aws-sdk/client-s3', () => {
  let dir: string;
  let store: RunningObjectStore;
  let s3: S3Client;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ota-object-store-'));
    store = await start(dir);
    s3 = new S3Client(localS3ClientConfig(store.endpoint, CREDS, REGION));
  });
  after(async () => {
    s3.destroy();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('endpoint is http://127.0.0.1:<port>', () => {
    assert.equal(store.endpoint, `http://127.0.0.1:${store.port}`);
    assert.ok(store.port > 0);
  });

  test('put, get, head, list, delete', async () => {
    const key = 'firmware/CV150-C3_0.6.6/cv150 ubifs+1.img';
    const body = Buffer.from('firmware image bytes\n');
    const put = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
    const md5 = createHash('md5').update(body).digest('hex');
    assert.equal(put.ETag, `"${md5}"`);

    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    assert.equal(got.$metadata.httpStatusCode, 200);
    assert.deepEqual(Buffer.from(await got.Body!.transformToByteArray()), body);

    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
    assert.equal(head.ContentLength, body.length);
    assert.equal(head.ETag, `"${md5}"`);
    assert.ok(head.LastModified instanceof Date);
    assert.ok(Math.abs(head.LastModified.getTime() - Date.now()) < 60_000);
    assert.equal(head.AcceptRanges, 'bytes');

    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'firmware/other/x.bin', Body: 'x' }));
    const list = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'firmware/CV150' }));
    assert.deepEqual(
      list.Contents?.map((o) => [o.Key, o.Size, o.ETag]),
      [[key, body.length, `"${md5}"`]],
    );
    const all = await s3.send(
      new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'firmware/', Delimiter: '/' }),
    );
    assert.deepEqual(
      all.CommonPrefixes?.map((p) => p.Prefix),
      ['firmware/CV150-C3_0.6.6/', 'firmware/other/'],
    );

    const del = await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }));
    assert.equal(del.$metadata.httpStatusCode, 204);
    await expectS3Error(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key })), 'NotFound', 404);
    await expectS3Error(s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key })), 'NoSuchKey', 404);
  });

  test('configured buckets exist; others do not', async () => {
    await s3.send(new PutObjectCommand({ Bucket: 'other-bucket', Key: 'k', Body: 'v' }));
    await expectS3Error(
      s3.send(new PutObjectCommand({ Bucket: 'missing-bucket', Key: 'k', Body: 'v' })),
      'NoSuchBucket',
      404,
    );
  });

  test('Range GET answers 206 with Content-Range and exactly the requested bytes', async () => {
    const body = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'range.bin', Body: body }));
    const cases: [string, number, number][] = [
      ['bytes=0-0', 0, 0],
      ['bytes=10-19', 10, 19],
      ['bytes=990-', 990, 999],
      ['bytes=-7', 993, 999],
      ['bytes=500-5000', 500, 999],
    ];
    for (const [range, start, end] of cases) {
      const r = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'range.bin', Range: range }));
      assert.equal(r.$metadata.httpStatusCode, 206, range);
      assert.equal(r.ContentRange, `bytes ${start}-${end}/1000`, range);
      assert.equal(r.ContentLength, end - start + 1, range);
      assert.deepEqual(
        Buffer.from(await r.Body!.transformToByteArray()),
        body.subarray(start, end + 1),
        range,
      );
    }
    await expectS3Error(
      s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'range.bin', Range: 'bytes=1000-1001' })),
      'InvalidRange',
      416,
    );
  });

  test('a 100 MB object streams in and out byte-identical', async () => {
    const size = 100 * 1024 * 1024;
    const expected = await sha256OfStream(deterministicStream(size));
    const put = await s3.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: 'big/firmware.img',
        Body: deterministicStream(size),
        ContentLength: size,
      }),
    );
    assert.match(put.ETag ?? '', /^"[0-9a-f]{32}"$/);
    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'big/firmware.img' }));
    assert.equal(head.ContentLength, size);
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'big/firmware.img' }));
    const actual = await sha256OfStream(got.Body as Readable);
    assert.equal(actual.size, size);
    assert.equal(actual.hex, expected.hex);
    // A range in the middle of the big object, as a resuming device would ask for.
    const tail = await s3.send(
      new GetObjectCommand({ Bucket: BUCKET, Key: 'big/firmware.img', Range: `bytes=${size - 5}-` }),
    );
    assert.equal(tail.ContentRange, `bytes ${size - 5}-${size - 1}/${size}`);
    assert.equal((await tail.Body!.transformToByteArray()).length, 5);
  });

  test('a client with default (flexible) checksums sends aws-chunked; the object holds only the payload', async (t) => {
    const sent: Record<string, string>[] = [];
    const defaults = new S3Client({
      endpoint: store.endpoint,
      region: REGION,
      credentials: CREDS,
      forcePathStyle: true,
    });
    defer(t, () => defaults.destroy());
    defaults.middlewareStack.add(
      (next) => async (args) => {
        sent.push({ ...(args.request as { headers: Record<string, string> }).headers });
        return next(args);
      },
      { step: 'deserialize' },
    );
    const body = 'payload that must not carry chunk framing';
    // A stream body: for a Buffer/string the SDK sends a plain body with an x-amz-checksum-* header.
    await defaults.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: 'chunked.txt',
        Body: Readable.from([Buffer.from(body)]),
        ContentLength: Buffer.byteLength(body),
      }),
    );
    assert.match(JSON.stringify(sent), /aws-chunked/, 'the SDK default should have used aws-chunked');
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'chunked.txt' }));
    assert.equal(await got.Body!.transformToString(), body);
    assert.equal(got.ContentLength, Buffer.byteLength(body));
    assert.equal(got.ContentEncoding, undefined);
  });

  test('localS3ClientConfig sends plain bodies (no aws-chunked)', async (t) => {
    const sent: Record<string, string>[] = [];
    const plain = new S3Client(localS3ClientConfig(store.endpoint, CREDS, REGION));
    defer(t, () => plain.destroy());
    plain.middlewareStack.add(
      (next) => async (args) => {
        sent.push({ ...(args.request as { headers: Record<string, string> }).headers });
        return next(args);
      },
      { step: 'deserialize' },
    );
    await plain.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'plain.txt', Body: 'plain' }));
    assert.equal(sent.length, 1);
    assert.doesNotMatch(JSON.stringify(sent[0]), /aws-chunked/);
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'plain.txt' }));
    assert.equal(await got.Body!.transformToString(), 'plain');
  });

  test('presigned GET works with plain fetch, including Range', async () => {
    await s3.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: 'dir/presigned file.bin', Body: 'abcdefghij' }),
    );
    const url = await store.presignGetUrl(BUCKET, 'dir/presigned file.bin', 60);
    assert.ok(url.startsWith(`${store.endpoint}/${BUCKET}/dir/presigned%20file.bin?`), url);
    assert.match(url, /X-Amz-Signature=[0-9a-f]{64}/);
    const r = await fetch(url);
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'abcdefghij');
    const part = await fetch(url, { headers: { Range: 'bytes=3-5' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), 'bytes 3-5/10');
    assert.equal(await part.text(), 'def');
  });

  test('a URL presigned for 1 s is refused with 403 AccessDenied after it expires', async () => {
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'expiring.bin', Body: 'soon gone' }));
    const url = await store.presignGetUrl(BUCKET, 'expiring.bin', 1);
    assert.equal((await fetch(url)).status, 200);
    await clock.advance(1000);
    assert.equal((await fetch(url)).status, 200, 'valid through its last second');
    await clock.advance(1);
    const r = await fetch(url);
    assert.equal(r.status, 403);
    const text = await r.text();
    assert.match(text, /<Code>AccessDenied<\/Code>/);
    assert.match(text, /Request has expired/);
  });

  test('presigned URLs from the SDK presigner directly also expire', async () => {
    const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: BUCKET, Key: 'expiring.bin' }), {
      expiresIn: 1,
      signingDate: new Date(clock.now()),
    });
    assert.equal((await fetch(url)).status, 200);
    await clock.advance(1001);
    assert.equal((await fetch(url)).status, 403);
  });

  test('a URL dated more than 15 minutes ahead of the store is refused as not yet valid, as S3 does', async () => {
    const at = (ms: number) =>
      getSignedUrl(s3, new GetObjectCommand({ Bucket: BUCKET, Key: 'expiring.bin' }), {
        expiresIn: 3600,
        signingDate: new Date(clock.now() + ms),
      });
    assert.equal((await fetch(await at(14 * 60_000))).status, 200, 'within the 15 minutes S3 allows');
    const r = await fetch(await at(20 * 60_000));
    assert.equal(r.status, 403);
    const text = await r.text();
    assert.match(text, /<Code>AccessDenied<\/Code>/);
    assert.match(text, /Request is not yet valid/);
    assert.match(text, /<ServerTime>/);
  });

  test('a tampered presigned URL (longer X-Amz-Expires) is refused', async () => {
    const url = await store.presignGetUrl(BUCKET, 'expiring.bin', 60);
    const r = await fetch(url.replace('X-Amz-Expires=60', 'X-Amz-Expires=3600'));
    assert.equal(r.status, 403);
    assert.match(await r.text(), /SignatureDoesNotMatch/);
  });

  test('a presigned URL dated on a day that does not exist (month 13) is refused as malformed', async () => {
    const url = await store.presignGetUrl(BUCKET, 'expiring.bin', 60);
    const r = await fetch(url.replace(/X-Amz-Date=\d{8}T/, 'X-Amz-Date=20261301T'));
    assert.equal(r.status, 400);
    assert.match(await r.text(), /AuthorizationQueryParametersError/);
  });

  test('paths that would leave the store directory are refused', async () => {
    for (const path of [
      `/${BUCKET}/%2E%2E/%2E%2E/escape.txt`,
      `/${BUCKET}/a%2F..%2F..%2F..%2Fescape.txt`,
      `/${BUCKET}/../escape.txt`,
    ]) {
      const r = await rawRequest(store.endpoint, 'PUT', path, 'x');
      assert.equal(r.status, 400, path);
      assert.match(r.text, /InvalidArgument/, path);
    }
    const badBucket = await rawRequest(store.endpoint, 'PUT', '/%2E%2E/escape.txt', 'x');
    assert.equal(badBucket.status, 400);
    assert.match(badBucket.text, /InvalidBucketName/);
    const upload = await rawRequest(store.endpoint, 'POST', `/${BUCKET}/k?uploadId=..%2F..%2Fx`, '');
    assert.equal(upload.status, 404);
    assert.match(upload.text, /NoSuchUpload/);
    await assert.rejects(access(join(dir, 'escape.txt')));
    await assert.rejects(access(join(dir, '..', 'escape.txt')));
    // The SDK sends a key's ".." segment as is; it is refused too.
    await expectS3Error(
      s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: '../escape.txt', Body: 'x' })),
      'InvalidArgument',
      400,
    );
  });

  test('anonymous requests, unknown keys and wrong secrets are refused', async (t) => {
    const anon = await fetch(`${store.endpoint}/${BUCKET}/expiring.bin`);
    assert.equal(anon.status, 403);
    assert.match(await anon.text(), /AccessDenied/);

    const wrongKey = new S3Client(
      localS3ClientConfig(store.endpoint, { ...CREDS, accessKeyId: 'S3RVER' }, REGION),
    );
    const wrongSecret = new S3Client(
      localS3ClientConfig(store.endpoint, { ...CREDS, secretAccessKey: 'nope' }, REGION),
    );
    defer(t, () => {
      wrongKey.destroy();
      wrongSecret.destroy();
    });
    await expectS3Error(
      wrongKey.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'expiring.bin' })),
      'InvalidAccessKeyId',
      403,
    );
    await expectS3Error(
      wrongSecret.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'x', Body: 'x' })),
      'SignatureDoesNotMatch',
      403,
    );
  });
});

describe('object store persistence', () => {
  test('objects survive close and restart on the same directory', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'ota-object-store-persist-'));
    defer(t, () => rm(dir, { recursive: true, force: true }));
    const first = await start(dir);
    const c1 = new S3Client(localS3ClientConfig(first.endpoint, CREDS, REGION));
    await c1.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'firmware/a/a.img', Body: 'persist me' }));
    const etag = (await c1.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'firmware/a/a.img' }))).ETag;
    c1.destroy();
    await first.close();

    const second = await start(dir);
    defer(t, () => second.close());
    const c2 = new S3Client(localS3ClientConfig(second.endpoint, CREDS, REGION));
    defer(t, () => c2.destroy());
    const got = await c2.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'firmware/a/a.img' }));
    assert.equal(await got.Body!.transformToString(), 'persist me');
    assert.equal(got.ETag, etag);
    const list = await c2.send(new ListObjectsV2Command({ Bucket: BUCKET }));
    assert.deepEqual(
      list.Contents?.map((o) => o.Key),
      ['firmware/a/a.img'],
    );
  });

  test('bad options are refused with a ValidationError naming the field', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'ota-object-store-bad-'));
    defer(t, () => rm(dir, { recursive: true, force: true }));
    await assert.rejects(
      startObjectStore({
        host: '127.0.0.1',
        port: 0,
        directory: dir,
        buckets: ['Bad_Bucket'],
        region: REGION,
        credentials: CREDS,
      }),
      { code: 'OTA_VALIDATION', field: 'buckets' },
    );
    const s = await start(dir);
    defer(t, () => s.close());
    await assert.rejects(s.presignGetUrl(BUCKET, 'k', 0), {
      code: 'OTA_VALIDATION',
      field: 'expiresInSec',
    });
  });
});
