import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { putFirmware } from '../../../src/operator/firmware.ts';
import {
  agentConfig,
  createJob,
  debris,
  describeExecution,
  runAgent,
  sha256,
  startWorld,
  type World,
} from './helpers.ts';

function p256() {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    key: privateKey.export({ type: 'sec1', format: 'pem' }) as string,
    pub: publicKey.export({ type: 'spki', format: 'pem' }) as string,
  };
}

/** Signed images and device types, through `putFirmware` and the real stack. */
describe('signed images and device types', () => {
  let w: World;
  const signer = p256();
  const foreign = p256();
  let pubFile: string;
  before(async () => {
    w = await startWorld();
    pubFile = join(w.dir, 'trusted.pub.pem');
    writeFileSync(pubFile, signer.pub);
  });
  after(async () => {
    await w.close();
  });

  const upload = async (
    name: string,
    version: string,
    signKey?: string,
    extra: { deviceType?: string } = {},
  ) => {
    const file = join(w.dir, `${name}.img`);
    writeFileSync(file, randomBytes(300_000));
    const out = await putFirmware({
      file,
      bucket: w.bucket,
      key: `firmware/${name}/${name}.img`,
      version,
      region: 'us-west-2',
      s3: w.s3,
      ...(signKey ? { signKey } : {}),
      ...extra,
    });
    return out;
  };

  test('signed by a trusted key → SUCCEEDED; unsigned → REJECTED; foreign-signed → FAILED "signature", nothing downloaded', async () => {
    const thing = 'Cam_signed';
    const config = await agentConfig(w, thing, { once: true, trustedKeys: [pubFile] });
    const good = await upload('good', '41811020', signer.key);
    assert.equal(good.document.firmware.signature?.alg, 'ECDSA-P256-SHA256');
    const unsigned = await upload('unsigned', '41811021');
    const alien = await upload('alien', '41811022', foreign.key);
    await createJob(w, thing, 'signed-good', good.document);
    await createJob(w, thing, 'signed-none', unsigned.document);
    await createJob(w, thing, 'signed-alien', alien.document);
    const summary = await runAgent(config).done;
    assert.deepEqual(
      summary.jobs.map((j) => [j.jobId, j.status]),
      [
        ['signed-good', 'SUCCEEDED'],
        ['signed-none', 'REJECTED'],
        ['signed-alien', 'FAILED'],
      ],
    );
    const none = await describeExecution(w, thing, 'signed-none');
    assert.equal(
      none?.statusDetails?.detailsMap?.reason,
      'firmware.signature: required (this device installs signed images only)',
    );
    const a = await describeExecution(w, thing, 'signed-alien');
    assert.match(
      a?.statusDetails?.detailsMap?.reason ?? '',
      /^signature: no trusted key verifies it \(signed by key [0-9a-f]{16}…\)$/,
    );
    assert.equal(existsSync(join(config.downloadDir, 'alien.img')), false);
    assert.equal(summary.currentVersion, '41811020');
  });

  test('a tampered image: refused before download when the document sha256 was changed to match, and after it when there is none', async () => {
    const thing = 'Cam_tamper';
    const config = await agentConfig(w, thing, { once: true, trustedKeys: [pubFile] });
    const signed = await upload('tamper', '41811020', signer.key);
    // The attacker replaces the object in the bucket...
    const evil = randomBytes(signed.document.firmware.size);
    await w.s3.send(new PutObjectCommand({ Bucket: w.bucket, Key: signed.key, Body: evil }));
    // ...and either rewrites the document's digest to match (the signature still covers the old one)
    const doc1 = { firmware: { ...signed.document.firmware, sha256: sha256(evil) } };
    // ...or drops the digest, so that only the bytes received can be checked
    const { sha256: _gone, ...noDigest } = signed.document.firmware;
    const doc2 = { firmware: { ...noDigest, version: '41811021' } };
    await createJob(w, thing, 'tamper-digest', doc1);
    await createJob(w, thing, 'tamper-nodigest', doc2);
    const run = runAgent(config);
    const summary = await run.done;
    assert.deepEqual(
      summary.jobs.map((j) => [j.jobId, j.status]),
      [
        ['tamper-digest', 'FAILED'],
        ['tamper-nodigest', 'FAILED'],
      ],
    );
    for (const id of ['tamper-digest', 'tamper-nodigest']) {
      const e = await describeExecution(w, thing, id);
      assert.match(
        e?.statusDetails?.detailsMap?.reason ?? '',
        /^signature: it does not verify with the trusted key/,
        id,
      );
    }
    // the first never downloaded; the second downloaded, failed, and removed the file
    const downloads = run.events.filter((e) => e.type === 'step-start' && e.step === 'download').length;
    assert.equal(downloads, 1);
    assert.deepEqual(
      existsSync(config.downloadDir) ? readdirSync(config.downloadDir).filter((n) => !n.startsWith('.')) : [],
      [],
    );
    assert.deepEqual(debris(config.downloadDir), []);
    assert.equal(summary.currentVersion, '41811019');
  });

  test('firmware.deviceType: another type → REJECTED naming both; the same type → SUCCEEDED', async () => {
    const thing = 'Cam_type';
    const config = await agentConfig(w, thing, { once: true, deviceType: 'CV150-C3' });
    const other = await upload('typed-other', '41811020', undefined, { deviceType: 'CV200' });
    const same = await upload('typed-same', '41811021', undefined, { deviceType: 'CV150-C3' });
    await createJob(w, thing, 'type-other', other.document);
    await createJob(w, thing, 'type-same', same.document);
    const summary = await runAgent(config).done;
    assert.deepEqual(
      summary.jobs.map((j) => [j.jobId, j.status]),
      [
        ['type-other', 'REJECTED'],
        ['type-same', 'SUCCEEDED'],
      ],
    );
    const e = await describeExecution(w, thing, 'type-other');
    assert.equal(
      e?.statusDetails?.detailsMap?.reason,
      'firmware.deviceType: the image is for "CV200", this device is "CV150-C3"',
    );
  });
});
