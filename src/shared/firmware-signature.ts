import { createHash, createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';

/**
 * Signed firmware images: the wire contract between `ota firmware put --sign-key` (operator) and
 * `ota agent --trusted-key` (device). docs/agent.md, "Signed images", shows every step with openssl.
 *
 * What is signed: the image's SHA-256 digest as 32 raw bytes (the bytes of the document's `sha256`, hex
 * decoded). The signature is ECDSA on NIST P-256 with SHA-256 over those 32 bytes (so the curve signs
 * SHA-256(SHA-256(image))), DER-encoded (RFC 3279 Ecdsa-Sig-Value) and base64 in the document. openssl
 * reproduces it byte for byte in meaning:
 *
 *   openssl dgst -sha256 -binary image.img > image.sha256        # the 32 raw bytes
 *   openssl dgst -sha256 -sign key.pem -out image.sig image.sha256
 *   openssl dgst -sha256 -verify pub.pem -signature image.sig image.sha256
 *
 * Why the digest and not the image: the device verifies from the digest it computed while streaming the
 * download, without reading the image again, and node:crypto has no API to verify a signature made over
 * a prehashed digest. A 32-byte file is also what a remote signer (AWS Signer) signs cheaply.
 *
 * keyId: the lowercase hex SHA-256 of the public key's DER SubjectPublicKeyInfo, the key's fingerprint:
 *
 *   openssl pkey -in key.pem -pubout -outform DER | openssl dgst -sha256
 */
export const SIGNATURE_ALG = 'ECDSA-P256-SHA256';

export interface FirmwareSignature {
  alg: typeof SIGNATURE_ALG;
  /** base64 of the DER-encoded ECDSA signature. */
  value: string;
  /** hex SHA-256 of the signer's DER SubjectPublicKeyInfo. */
  keyId: string;
}

/** A DER ECDSA P-256 signature is at most 72 bytes (two 33-byte INTEGERs and headers). */
export const MAX_SIGNATURE_BYTES = 72;

function requireP256(key: KeyObject, what: string): KeyObject {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType !== 'ec' || curve !== 'prime256v1') {
    throw new Error(
      `${what} must be an EC P-256 key, got ${key.asymmetricKeyType}${curve ? ` ${curve}` : ''}`,
    );
  }
  return key;
}

/** A P-256 public key from PEM (SPKI `PUBLIC KEY`, or an X.509 certificate carrying one). */
export function publicKeyFromPem(pem: string): KeyObject {
  // createPublicKey would derive the public half of a private key; a signing key must never be shipped
  // to devices, so refuse it rather than quietly accept it.
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new Error('a trusted key must be a public key or a certificate, not a private key');
  }
  return requireP256(createPublicKey(pem), 'a trusted key');
}

/** A P-256 private key from PEM: PKCS#8 (`PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`), unencrypted. */
export function privateKeyFromPem(pem: string): KeyObject {
  return requireP256(createPrivateKey(pem), 'the signing key');
}

export function keyIdOf(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return createHash('sha256')
    .update(pub.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

function digestBytes(sha256Hex: string): Buffer {
  if (!/^[0-9a-f]{64}$/i.test(sha256Hex)) throw new Error('the digest must be 64 hex characters');
  return Buffer.from(sha256Hex, 'hex');
}

/** Signs an image's SHA-256 digest (hex). */
export function signDigest(sha256Hex: string, privateKey: KeyObject): FirmwareSignature {
  const value = sign('sha256', digestBytes(sha256Hex), { key: privateKey, dsaEncoding: 'der' });
  return { alg: SIGNATURE_ALG, value: value.toString('base64'), keyId: keyIdOf(privateKey) };
}

export type VerifyResult = { ok: true; keyId: string } | { ok: false; reason: string };

/**
 * Whether one of `keys` verifies `sig` over the digest. Every key is tried (the keyId is a hint for the
 * logs, not trusted to pick the key): a signature is good when any trusted key verifies it.
 */
export function verifyDigest(
  sha256Hex: string,
  sig: FirmwareSignature,
  keys: readonly KeyObject[],
): VerifyResult {
  if (sig.alg !== SIGNATURE_ALG)
    return { ok: false, reason: `algorithm ${JSON.stringify(sig.alg)} is not ${SIGNATURE_ALG}` };
  const der = Buffer.from(sig.value, 'base64');
  if (
    der.length === 0 ||
    der.length > MAX_SIGNATURE_BYTES ||
    der.toString('base64') !== sig.value.replace(/\s/g, '')
  ) {
    return { ok: false, reason: 'the value is not a base64 DER ECDSA signature' };
  }
  const data = digestBytes(sha256Hex);
  for (const key of keys) {
    try {
      if (verify('sha256', data, { key, dsaEncoding: 'der' }, der)) return { ok: true, keyId: keyIdOf(key) };
    } catch {
      // malformed DER: no key verifies it
    }
  }
  const known = keys.some((k) => keyIdOf(k) === sig.keyId);
  return {
    ok: false,
    reason: known
      ? `it does not verify with the trusted key ${sig.keyId.slice(0, 16)}… (tampered image or document?)`
      : `no trusted key verifies it (signed by key ${String(sig.keyId).slice(0, 16)}…)`,
  };
}
