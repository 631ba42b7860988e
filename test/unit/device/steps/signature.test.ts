import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  keyIdOf,
  privateKeyFromPem,
  publicKeyFromPem,
  signDigest,
  verifyDigest,
} from '../../../../src/shared/firmware-signature.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function p256() {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    pkcs8: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    sec1: privateKey.export({ type: 'sec1', format: 'pem' }) as string,
    pub: publicKey.export({ type: 'spki', format: 'pem' }) as string,
  };
}

describe('firmware signatures (ECDSA P-256 over the image SHA-256 digest)', () => {
  const image = randomBytes(50_000);
  const digest = sha(image);
  const signer = p256();
  const trusted = [publicKeyFromPem(signer.pub)];

  test('PKCS#8 and SEC1 keys sign; the trusted public key verifies; keyId is the SPKI fingerprint', () => {
    for (const pem of [signer.pkcs8, signer.sec1]) {
      const sig = signDigest(digest, privateKeyFromPem(pem));
      assert.equal(sig.alg, 'ECDSA-P256-SHA256');
      assert.match(sig.value, /^[A-Za-z0-9+/]+=*$/);
      assert.equal(sig.keyId, keyIdOf(trusted[0]!));
      assert.equal(sig.keyId.length, 64);
      const r = verifyDigest(digest, sig, trusted);
      assert.deepEqual(r, { ok: true, keyId: sig.keyId });
    }
  });

  test('a tampered image (another digest) does not verify, and the reason says so', () => {
    const sig = signDigest(digest, privateKeyFromPem(signer.pkcs8));
    const tampered = Buffer.from(image);
    tampered[100] = (tampered[100] ?? 0) ^ 1;
    const r = verifyDigest(sha(tampered), sig, trusted);
    assert.equal(r.ok, false);
    assert.match(!r.ok ? r.reason : '', /does not verify with the trusted key [0-9a-f]{16}… \(tampered/);
  });

  test('an image signed by a foreign key does not verify, whatever keyId it claims', () => {
    const foreign = p256();
    const sig = signDigest(digest, privateKeyFromPem(foreign.pkcs8));
    const r = verifyDigest(digest, sig, trusted);
    assert.match(!r.ok ? r.reason : '', /^no trusted key verifies it \(signed by key [0-9a-f]{16}…\)$/);
    // claiming the trusted key's id changes nothing: every key is tried, the id is only a hint
    const liar = { ...sig, keyId: keyIdOf(trusted[0]!) };
    assert.equal(verifyDigest(digest, liar, trusted).ok, false);
    // with both keys trusted it verifies
    assert.equal(verifyDigest(digest, sig, [...trusted, publicKeyFromPem(foreign.pub)]).ok, true);
  });

  test('garbage values and other algorithms are refused, never thrown', () => {
    const sig = signDigest(digest, privateKeyFromPem(signer.pkcs8));
    const cases = [
      { ...sig, value: 'AAAA' },
      { ...sig, value: Buffer.alloc(80, 1).toString('base64') },
      { ...sig, value: `${sig.value.slice(0, -4)}AAAA` },
      { ...sig, alg: 'RSA-SHA256' as 'ECDSA-P256-SHA256' },
    ];
    for (const c of cases) assert.equal(verifyDigest(digest, c, trusted).ok, false, JSON.stringify(c));
  });

  test('a trusted key may be a certificate; a private key is refused (it must never reach devices)', () => {
    assert.throws(() => publicKeyFromPem(signer.pkcs8), /not a private key/);
    assert.throws(() => publicKeyFromPem(signer.sec1), /not a private key/);
  });

  test('keys that are not P-256 are refused with a reason', () => {
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    assert.throws(
      () => publicKeyFromPem(p384.publicKey.export({ type: 'spki', format: 'pem' }) as string),
      /must be an EC P-256 key, got ec secp384r1/,
    );
    assert.throws(
      () => privateKeyFromPem(rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string),
      /the signing key must be an EC P-256 key, got rsa/,
    );
  });
});
