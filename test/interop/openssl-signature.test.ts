import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  type FirmwareSignature,
  keyIdOf,
  privateKeyFromPem,
  publicKeyFromPem,
  signDigest,
  verifyDigest,
} from '../../src/shared/firmware-signature.ts';
import { requireTool } from './helpers.ts';

/**
 * docs/agent.md ("Signed images") promises that openssl makes the keys, reproduces the signature and its
 * keyId, and verifies what `ota firmware put --sign-key` signs. These are those exact commands.
 */
describe('firmware signatures interoperate with openssl', () => {
  const openssl = requireTool('openssl', 'openssl');
  const dir = mkdtempSync(join(tmpdir(), 'ota-openssl-'));
  const run = (...args: string[]) => execFileSync(openssl, args, { cwd: dir });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const image = join(dir, 'cv150_ubifs.img');
  writeFileSync(image, randomBytes(300_000));

  test('keys made by openssl (SEC1 and PKCS#8) sign; openssl verifies our signature', () => {
    run('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'sec1.pem');
    run('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'pkcs8.pem');
    run('dgst', '-sha256', '-binary', '-out', 'image.sha256', image);
    const digestHex = readFileSync(join(dir, 'image.sha256')).toString('hex');
    for (const key of ['sec1.pem', 'pkcs8.pem']) {
      run('pkey', '-in', key, '-pubout', '-out', `${key}.pub`);
      const sig = signDigest(digestHex, privateKeyFromPem(readFileSync(join(dir, key), 'utf8')));
      writeFileSync(join(dir, 'ours.sig'), Buffer.from(sig.value, 'base64'));
      const out = run('dgst', '-sha256', '-verify', `${key}.pub`, '-signature', 'ours.sig', 'image.sha256');
      assert.match(out.toString(), /Verified OK/);
      // keyId = SHA-256 of the DER SubjectPublicKeyInfo
      const pipe = `${openssl} pkey -in ${key} -pubout -outform DER | ${openssl} dgst -sha256 -r`;
      const fp = execFileSync('sh', ['-c', pipe], { cwd: dir });
      assert.equal(fp.toString().split(' ')[0], sig.keyId);
    }
  });

  test('a signature made by openssl verifies in the agent; another key does not', () => {
    run('dgst', '-sha256', '-sign', 'pkcs8.pem', '-out', 'theirs.sig', 'image.sha256');
    const digestHex = readFileSync(join(dir, 'image.sha256')).toString('hex');
    const pub = publicKeyFromPem(readFileSync(join(dir, 'pkcs8.pem.pub'), 'utf8'));
    const sig: FirmwareSignature = {
      alg: 'ECDSA-P256-SHA256',
      value: readFileSync(join(dir, 'theirs.sig')).toString('base64'),
      keyId: keyIdOf(pub),
    };
    assert.deepEqual(verifyDigest(digestHex, sig, [pub]), { ok: true, keyId: sig.keyId });
    const other = publicKeyFromPem(readFileSync(join(dir, 'sec1.pem.pub'), 'utf8'));
    assert.equal(verifyDigest(digestHex, sig, [other]).ok, false);
  });
});
