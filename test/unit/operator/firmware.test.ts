import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { type RunningObjectStore, startObjectStore } from '../../../src/cloud/object-store/store.ts';
import { defaultFirmwareKey, putFirmware } from '../../../src/operator/firmware.ts';
import { localS3ClientConfig } from '../../../src/shared/s3-client-config.ts';
import { parseS3Url } from '../../../src/shared/s3-url.ts';

const CREDS = { accessKeyId: 'AKIDFIRMWARETEST', secretAccessKey: 'firmware-test-secret' };
const BUCKET = 'dev-korea-job';

describe('putFirmware against the real local object store', () => {
  let dir: string;
  let store: RunningObjectStore;
  let s3: S3Client;
  let image: string;
  let content: Buffer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ota-firmware-'));
    store = await startObjectStore({
      host: '127.0.0.1',
      port: 0,
      directory: join(dir, 'store'),
      buckets: [BUCKET],
      region: 'us-west-2',
      credentials: CREDS,
    });
    s3 = new S3Client(localS3ClientConfig(store.endpoint, CREDS, 'us-west-2'));
    // 3 MB + 7 bytes: more than one read-stream chunk, not a multiple of anything.
    content = Buffer.alloc(3 * 1024 * 1024 + 7);
    for (let i = 0; i < content.length; i++) content[i] = (i * 7 + (i >> 11)) & 0xff;
    image = join(dir, 'cv150_ubifs.img');
    await writeFile(image, content);
  });
  after(async () => {
    s3.destroy();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('uploads the file and returns the job document (key order, sha256, url form)', async () => {
    const r = await putFirmware({
      file: image,
      bucket: BUCKET,
      version: '41811020',
      region: 'us-west-2',
      s3,
      name: 'CV150-C3_0.6.6',
    });
    const sha256 = createHash('sha256').update(content).digest('hex');
    assert.equal(r.bucket, BUCKET);
    assert.equal(r.key, 'firmware/CV150-C3_0.6.6/cv150_ubifs.img');
    assert.deepEqual(r.document, {
      firmware: {
        version: '41811020',
        size: content.length,
        region: 'us-west-2',
        url: 'https://s3.amazonaws.com/dev-korea-job/firmware/CV150-C3_0.6.6/cv150_ubifs.img',
        sha256,
      },
    });
    assert.deepEqual(Object.keys(r.document), ['firmware']);
    assert.deepEqual(Object.keys(r.document.firmware), ['version', 'size', 'region', 'url', 'sha256']);
    assert.equal(r.etag, `"${createHash('md5').update(content).digest('hex')}"`);

    // The object is what was uploaded, at the place the url names.
    const loc = parseS3Url(r.document.firmware.url);
    assert.deepEqual(loc, { bucket: BUCKET, key: r.key });
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: r.key }));
    const bytes = Buffer.from(await got.Body!.transformToByteArray());
    assert.equal(createHash('sha256').update(bytes).digest('hex'), sha256);
  });

  test('default key is firmware/<file name without extension>/<file name>', async () => {
    assert.equal(defaultFirmwareKey('/x/y/cv150_ubifs.img'), 'firmware/cv150_ubifs/cv150_ubifs.img');
    assert.equal(defaultFirmwareKey('/x/y/cv150_ubifs.img', 'N'), 'firmware/N/cv150_ubifs.img');
    assert.equal(defaultFirmwareKey('noext'), 'firmware/noext/noext');
    const r = await putFirmware({ file: image, bucket: BUCKET, version: '0.6.6', region: 'us-west-2', s3 });
    assert.equal(r.key, 'firmware/cv150_ubifs/cv150_ubifs.img');
    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: r.key }));
    assert.equal(head.ContentLength, content.length);
  });

  test('an explicit key is used as given, and encoded in the url', async () => {
    const r = await putFirmware({
      file: image,
      bucket: BUCKET,
      key: 'custom/with space+plus.img',
      version: '1.2.3-rc.1+build.5',
      region: 'ap-northeast-2',
      s3,
    });
    assert.equal(r.key, 'custom/with space+plus.img');
    assert.equal(
      r.document.firmware.url,
      'https://s3.amazonaws.com/dev-korea-job/custom/with%20space%2Bplus.img',
    );
    assert.equal(r.document.firmware.version, '1.2.3-rc.1+build.5');
    assert.equal(r.document.firmware.region, 'ap-northeast-2');
  });

  test('a bad version is refused with a ValidationError naming `version`', async () => {
    for (const version of ['', 'latest', '1..2', '.1', 'v1.2.3', '1.2.3-', ' 1']) {
      await assert.rejects(
        putFirmware({ file: image, bucket: BUCKET, version, region: 'us-west-2', s3 }),
        (err: unknown) => {
          assert.equal((err as { code?: string }).code, 'OTA_VALIDATION', version);
          assert.equal((err as { field?: string }).field, 'version', version);
          return true;
        },
      );
    }
  });

  test('a missing file is refused naming `file`', async () => {
    await assert.rejects(
      putFirmware({ file: join(dir, 'nope.img'), bucket: BUCKET, version: '1', region: 'us-west-2', s3 }),
      { code: 'OTA_VALIDATION', field: 'file' },
    );
  });
});
