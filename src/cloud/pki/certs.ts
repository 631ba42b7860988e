/**
 * The key and certificate primitives of the local CA (pki.ts): EC P-256 keys and ECDSA-SHA256
 * certificates made with WebCrypto and @peculiar/x509, with the extensions OpenSSL's strict mode wants
 * (see pki.ts). Nothing here touches the disk.
 */
// @peculiar/x509 uses tsyringe, which needs a Reflect metadata polyfill loaded first.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';

// The webcrypto object of Node satisfies the WebCrypto `Crypto` interface @peculiar/x509 expects; the
// cast bridges @types/node's `webcrypto.Crypto` and the DOM-less global `Crypto` type.
const crypto = webcrypto as unknown as Crypto;
x509.cryptoProvider.set(crypto);

const EC_ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING_ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
export const DAY_MS = 24 * 60 * 60 * 1000;
export const CA_VALIDITY_DAYS = 3650;
export const LEAF_VALIDITY_DAYS = 730;
/** A certificate this close to expiry is treated as invalid and reissued. */
export const RENEW_MARGIN_MS = 7 * DAY_MS;
/** Backdate notBefore a little so a peer whose clock is slightly behind still accepts the certificate. */
export const BACKDATE_MS = 5 * 60 * 1000;

export const DEFAULT_SERVER_HOSTS = ['localhost', '127.0.0.1'];

export interface CaMaterial {
  cert: x509.X509Certificate;
  key: CryptoKey;
  certPem: string;
}

export interface Pair {
  cert: x509.X509Certificate;
  certPem: string;
  keyPem: string;
}

// ---------------------------------------------------------------------------------------------------------
// Key and certificate primitives

export async function generateKeyPair(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(EC_ALG, true, ['sign', 'verify']);
}

export async function exportKeyPem(key: CryptoKey): Promise<string> {
  const der = await crypto.subtle.exportKey('pkcs8', key);
  return `${x509.PemConverter.encode(der, 'PRIVATE KEY')}\n`;
}

export async function importKeyPem(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(pem);
  return crypto.subtle.importKey('pkcs8', der, EC_ALG, true, ['sign']);
}

export function certToPem(cert: x509.X509Certificate): string {
  return `${cert.toString('pem')}\n`;
}

/** A positive 128-bit serial (RFC 5280 §4.1.2.2: positive, ≤ 20 octets, unique per CA). */
export function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return Buffer.from(bytes).toString('hex');
}

/** Whether the private key in `keyPem` is the one whose public half `cert` carries. */
export async function keyMatchesCert(keyPem: string, cert: x509.X509Certificate): Promise<boolean> {
  const priv = await crypto.subtle.exportKey('jwk', await importKeyPem(keyPem));
  const pub = await crypto.subtle.exportKey('jwk', await cert.publicKey.export(EC_ALG, ['verify'], crypto));
  return priv.crv === pub.crv && priv.x === pub.x && priv.y === pub.y;
}

export function commonNameOf(cert: x509.X509Certificate): string | undefined {
  return cert.subjectName.getField('CN')[0];
}

// Certificate validity is on the wall clock, never an injected one: TLS peers (OpenSSL) check notBefore
// and notAfter against the system time.
export function notExpiringSoon(cert: x509.X509Certificate, now = Date.now()): boolean {
  return cert.notBefore.getTime() <= now + BACKDATE_MS && cert.notAfter.getTime() > now + RENEW_MARGIN_MS;
}

export async function signedBy(cert: x509.X509Certificate, ca: x509.X509Certificate): Promise<boolean> {
  try {
    return await cert.verify({ publicKey: ca.publicKey, signatureOnly: true }, crypto);
  } catch {
    return false;
  }
}

export function validity(days: number): { notBefore: Date; notAfter: Date } {
  const now = Date.now(); // the wall clock, as above: TLS checks validity against it
  return { notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(now + days * DAY_MS) };
}

export async function createCa(commonName: string): Promise<CaMaterial & { keyPem: string }> {
  const keys = await generateKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerial(),
      name: [{ CN: [commonName] }, { O: ['ota-progress'] }],
      ...validity(CA_VALIDITY_DAYS),
      signingAlgorithm: SIGNING_ALG,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  return {
    cert,
    key: keys.privateKey,
    certPem: certToPem(cert),
    keyPem: await exportKeyPem(keys.privateKey),
  };
}

export type LeafKind = 'server' | 'client';

export async function issueLeaf(
  ca: CaMaterial,
  kind: LeafKind,
  commonName: string,
  sans: string[] = [],
): Promise<Pair & { publicKeyPem: string }> {
  const keys = await generateKeyPair();
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(
      [kind === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth],
      false,
    ),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
    await x509.AuthorityKeyIdentifierExtension.create(ca.cert.publicKey, false, crypto),
  ];
  if (sans.length > 0) {
    extensions.push(
      new x509.SubjectAlternativeNameExtension(
        sans.map((value): x509.JsonGeneralName => ({ type: isIP(value) ? 'ip' : 'dns', value })),
        false,
      ),
    );
  }
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerial(),
      subject: [{ CN: [commonName] }],
      issuer: ca.cert.subjectName,
      ...validity(LEAF_VALIDITY_DAYS),
      signingAlgorithm: SIGNING_ALG,
      publicKey: keys.publicKey,
      signingKey: ca.key,
      extensions,
    },
    crypto,
  );
  const spki = await crypto.subtle.exportKey('spki', keys.publicKey);
  return {
    cert,
    certPem: certToPem(cert),
    keyPem: await exportKeyPem(keys.privateKey),
    publicKeyPem: `${x509.PemConverter.encode(spki, 'PUBLIC KEY')}\n`,
  };
}

/** The SAN entries of a certificate, normalised (DNS names lower-cased). */
export function subjectAltNames(cert: x509.X509Certificate | string): string[] {
  const c = typeof cert === 'string' ? new x509.X509Certificate(cert) : cert;
  const ext = c.getExtension(x509.SubjectAlternativeNameExtension);
  if (!ext) return [];
  return ext.names.toJSON().map((n) => normaliseHost(n.value));
}

export function normaliseHost(host: string): string {
  return isIP(host) ? host : host.toLowerCase();
}
