import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { type RunningObjectStore, startObjectStore } from '../../../../src/cloud/object-store/store.ts';
import { downloadFirmware, type S3Presigner, S3Source } from '../../../../src/device/download/download.ts';
import { DownloadError } from '../../../../src/device/errors.ts';
import { pathStyleObjectUrl, presignGet } from '../../../../src/device/source/presign.ts';
import { localS3ClientConfig } from '../../../../src/shared/s3-client-config.ts';

const CREDS = { accessKeyId: 'AKIDS3SOURCETEST', secretAccessKey: 's3-source-test-secret' };
const BUCKET = 'dev-korea-job';
const KEY = 'fw/cam era+1.bin';

function lightSigner(endpoint: string, secret: string): S3Presigner {
  return {
    presignGetObject: async (bucket, key, expiresIn, signingDate) =>
      presignGet({
        url: pathStyleObjectUrl(endpoint, bucket, key),
        region: 'us-west-2',
        credentials: { ...CREDS, secretAccessKey: secret },
        expiresIn,
        date: signingDate,
        query: { 'x-id': 'GetObject' },
      }),
  };
}

describe('S3Source against the real local object store: light SigV4 signer and SDK client', () => {
  let dir: string;
  let store: RunningObjectStore;
  let s3: S3Client;
  const content = Buffer.alloc(2 * 1024 * 1024 + 13);
  for (let i = 0; i < content.length; i++) content[i] = (i * 31 + (i >> 9)) & 0xff;
  const sha = createHash('sha256').update(content).digest('hex');

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ota-s3source-'));
    store = await startObjectStore({
      host: '127.0.0.1',
      port: 0,
      directory: join(dir, 'store'),
      buckets: [BUCKET],
      region: 'us-west-2',
      credentials: CREDS,
    });
    s3 = new S3Client(localS3ClientConfig(store.endpoint, CREDS, 'us-west-2'));
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: KEY, Body: content }));
  });
  after(async () => {
    s3.destroy();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  for (const kind of ['light signer', 'S3Client'] as const) {
    test(`${kind}: the whole object, sha256 checked`, async () => {
      const source = new S3Source(
        kind === 'S3Client' ? s3 : lightSigner(store.endpoint, CREDS.secretAccessKey),
        BUCKET,
        KEY,
      );
      const out = join(dir, kind.replace(' ', '-'));
      const r = await downloadFirmware({
        source,
        dir: out,
        fileName: 'fw.bin',
        expectedSize: content.length,
        sha256: sha,
      });
      assert.equal(r.sha256, sha);
      assert.deepEqual(await readFile(r.path), content);
    });
  }

  test('light signer with a wrong secret: the store refuses it (403)', async () => {
    const source = new S3Source(lightSigner(store.endpoint, 'not-the-secret'), BUCKET, KEY);
    await assert.rejects(
      downloadFirmware({
        source,
        dir: join(dir, 'bad'),
        fileName: 'fw.bin',
        expectedSize: content.length,
        retries: 0,
      }),
      (err: unknown) => err instanceof DownloadError && err.status === 403,
    );
  });

  for (const [how, offMin] of [
    ['20 min behind', -20],
    ['20 min ahead', 20],
  ] as const) {
    test(`a device clock ${how}: the 403 is answered by signing at S3's time, once`, async () => {
      const clock = { now: () => Date.now() + offMin * 60_000 };
      const skew = { ms: 0 };
      const source = new S3Source(
        lightSigner(store.endpoint, CREDS.secretAccessKey),
        BUCKET,
        KEY,
        {},
        { clock, skew },
      );
      const r = await downloadFirmware({
        source,
        dir: join(dir, `skew${offMin}`),
        fileName: 'fw.bin',
        expectedSize: content.length,
        sha256: sha,
        retries: 0,
      });
      assert.equal(r.sha256, sha);
      assert.ok(Math.abs(skew.ms + offMin * 60_000) < 60_000, `learnt skew ${skew.ms} ms`);
    });
  }

  test('still refused after the correction: the reason names the device clock', async () => {
    const clock = { now: () => Date.now() - 20 * 60_000 };
    const source = new S3Source(lightSigner(store.endpoint, 'not-the-secret'), BUCKET, KEY, {}, { clock });
    await assert.rejects(
      downloadFirmware({
        source,
        dir: join(dir, 'skew-bad'),
        fileName: 'fw.bin',
        expectedSize: content.length,
        retries: 0,
      }),
      (err: unknown) =>
        err instanceof DownloadError &&
        err.status === 403 &&
        /: HTTP 403 \(device clock is 20 min behind S3's; still refused when signed at S3's time\)$/.test(
          err.message,
        ),
    );
  });
});
