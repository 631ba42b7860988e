import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { deriveSigningKey, type SigV4Hashing } from './sigv4.ts';

/**
 * The hashing half of AWS Signature Version 4 on node:crypto, for the Node side: the device's S3
 * presigner (src/shared/sigv4.ts's presignUrl with {@link nodeHashing}) and the cloud verifier's
 * constant-time compare. The browser dashboard's WebSocket signer (src/shared/ws-url.ts) cannot load
 * node:crypto and brings its pure-JS SHA-256; the string pieces both use are in src/shared/sigv4.ts.
 */

/** Lower-case hex SHA-256 of a string (UTF-8) or bytes: the canonical request's and payload's hash. */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** HMAC-SHA256 of a UTF-8 string. */
export function hmacSha256(key: Uint8Array | string, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

/** node:crypto as presignUrl's hashing (src/shared/sigv4.ts). */
export const nodeHashing: SigV4Hashing<Buffer> = {
  sha256Hex,
  hmacSha256,
  hex: (bytes) => bytes.toString('hex'),
};

/** The SigV4 signing key for a credential scope (see {@link deriveSigningKey}). */
export function signingKey(
  secretAccessKey: string,
  dateStamp: string,
  region: string,
  service: string,
): Buffer {
  return deriveSigningKey(hmacSha256, secretAccessKey, dateStamp, region, service);
}

/**
 * Compares two strings in time independent of where they differ (signatures, tokens). Strings of other
 * lengths are unequal; the time then depends only on `b`, the untrusted side's length being public anyway.
 */
export function timingSafeEqualStrings(a: string, b: string): boolean {
  const ab = Buffer.from(a, 'utf8');
  const bb = Buffer.from(b, 'utf8');
  // timingSafeEqual needs equal lengths; comparing `bb` with itself keeps the work the same.
  if (ab.length !== bb.length) {
    timingSafeEqual(bb, bb);
    return false;
  }
  return timingSafeEqual(ab, bb);
}
