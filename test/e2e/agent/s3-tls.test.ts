import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { IoTClient } from '@aws-sdk/client-iot';
import type { S3Client } from '@aws-sdk/client-s3';
import { s3ClientFor } from '../../../src/operator/clients.ts';
import { putFirmware as putFirmwareFile } from '../../../src/operator/firmware.ts';
import { startTestStack } from '../../helpers/stack.ts';
import {
  agentConfig,
  createJob,
  firmwareDoc,
  ORIGINAL_KEY,
  putFirmware,
  runAgent,
  sha256,
  type World,
} from './helpers.ts';

/**
 * `ota dev --s3-tls`: S3 over HTTPS like real S3. The agent (`--local`) trusts the stack's CA for it and
 * reads through the same TLS path it uses against AWS; operator tools trust it too.
 */
describe('device agent against a local stack serving S3 over HTTPS', () => {
  let w: World;
  let firmware: Buffer;
  const SIZE = 1024 * 1024 + 3;
  before(async () => {
    const { dir, stack, close } = await startTestStack('ota-e2e-s3tls', { things: [], s3Tls: true });
    const ep = stack.endpoints;
    const iot = new IoTClient({
      endpoint: ep.iot.endpoint,
      region: ep.region,
      credentials: { accessKeyId: ep.iot.accessKeyId, secretAccessKey: ep.iot.secretAccessKey },
    });
    const s3: S3Client = s3ClientFor({ kind: 'local', endpoints: ep });
    w = {
      dir,
      stack,
      iot,
      s3,
      bucket: ep.s3.bucket,
      close: async () => {
        iot.destroy();
        s3.destroy();
        await close();
      },
    };
    firmware = await putFirmware(w, ORIGINAL_KEY, SIZE);
  });
  after(async () => {
    await w.close();
  });

  test('endpoints.json says https; GetObject over TLS → SUCCEEDED, identical file', async () => {
    assert.match(w.stack.endpoints.s3.endpoint, /^https:\/\/127\.0\.0\.1:\d+$/);
    const onDisk = JSON.parse(readFileSync(join(w.stack.dataDir, 'endpoints.json'), 'utf8'));
    assert.equal(onDisk.s3.endpoint, w.stack.endpoints.s3.endpoint);
    const thing = 'Cam_tls';
    const config = await agentConfig(w, thing, { once: true });
    await createJob(w, thing, 'tls-job', firmwareDoc(w, SIZE, { sha256: sha256(firmware) }));
    const job = (await runAgent(config).done).jobs[0];
    assert.equal(job?.status, 'SUCCEEDED', job?.reason);
    assert.equal(job?.sourceKind, 's3');
    assert.equal(sha256(readFileSync(join(config.downloadDir, 'cv150_ubifs.img'))), sha256(firmware));
  });

  test('operator upload of a file (a streaming PutObject) over https trusts the local CA', async () => {
    // A streaming body over 2 MB (the SDK sends it with Expect: 100-continue) takes another path in the
    // SDK's handler: with https.Agent options instead of an Agent it ignored `ca` there ("unable to
    // verify the first certificate").
    const file = join(w.dir, 'upload.img');
    const big = Buffer.concat([firmware, firmware, firmware]);
    writeFileSync(file, big);
    const put = await putFirmwareFile({
      file,
      key: 'firmware/tls/upload.img',
      version: '2',
      bucket: w.bucket,
      region: w.stack.endpoints.region,
      s3: w.s3,
    });
    assert.equal(put.document.firmware.sha256, sha256(big));
  });

  test('presigned URL placeholder → an https presigned URL, SUCCEEDED', async () => {
    const thing = 'Cam_tls_presigned';
    const config = await agentConfig(w, thing, { once: true });
    const placeholder = `\${aws:iot:s3-presigned-url:https://s3.us-west-2.amazonaws.com/${w.bucket}/${ORIGINAL_KEY}}`;
    await createJob(w, thing, 'tls-presigned', firmwareDoc(w, SIZE, { url: placeholder }), {
      presignedUrlConfig: { expiresInSec: 600 },
    });
    const job = (await runAgent(config).done).jobs[0];
    assert.equal(job?.status, 'SUCCEEDED', job?.reason);
    assert.equal(job?.sourceKind, 'http');
  });

  test('an agent that is not told the local CA refuses the certificate (FAILED, no file)', async () => {
    const thing = 'Cam_tls_untrusted';
    // Same endpoints, but not `--local`: the agent trusts only Node's roots for S3, as against AWS.
    const local = await agentConfig(w, thing, { once: true });
    const config = { ...local, local: undefined };
    await createJob(w, thing, 'tls-untrusted', firmwareDoc(w, SIZE));
    const job = (await runAgent(config).done).jobs[0];
    assert.equal(job?.status, 'FAILED');
    assert.match(job?.reason ?? '', /certificate|self[- ]signed|issuer/i);
  });
});
