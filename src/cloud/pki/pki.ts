// @peculiar/x509 uses tsyringe, which needs a Reflect metadata polyfill loaded first.
import 'reflect-metadata';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { OtaError, ValidationError } from '../../shared/errors.ts';
import { THING_NAME_PATTERN } from '../../shared/topics.ts';
import {
  type CaMaterial,
  commonNameOf,
  createCa,
  DEFAULT_SERVER_HOSTS,
  importKeyPem,
  issueLeaf,
  keyMatchesCert,
  normaliseHost,
  notExpiringSoon,
  type Pair,
  randomSerial,
  signedBy,
  subjectAltNames,
} from './certs.ts';

export { subjectAltNames } from './certs.ts';

/**
 * A local certificate authority for the embedded AWS IoT stack. AWS IoT authenticates devices by X.509
 * client certificates over mutual TLS (one certificate per thing); this CA plays Amazon's role for the
 * local broker: it signs the broker's server certificate and one client certificate per thing (CN = thing
 * name) plus one for the operator.
 *
 * Everything is EC P-256 / ECDSA-SHA256 made with WebCrypto (no `openssl` subprocess). Private keys are
 * written as unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), the one format Node tls, MQTT.js,
 * mosquitto and Python's ssl all load. Certificates carry the extensions that OpenSSL's strict mode
 * (Python 3.13's default VERIFY_X509_STRICT) insists on: critical basicConstraints and keyUsage on the CA,
 * subject/authority key identifiers, and an EKU on every leaf.
 */

export interface IssuedCert {
  certPath: string;
  keyPath: string;
  certPem: string;
  keyPem: string;
}

export interface LocalCa {
  dir: string;
  caCertPath: string;
  caCertPem: string;
  serverCertPath: string;
  serverKeyPath: string;
  serverCertPem: string;
  serverKeyPem: string;
  /**
   * Returns `<dir>/clients/<cn>.cert.pem` / `<cn>.key.pem`, issuing them on first use (or when the stored
   * pair is unreadable, expired, not from this CA, or mismatched). `commonName` is a thing name or the
   * operator name and must match AWS's thing-name pattern (it also becomes a file name).
   */
  issueClientCert(commonName: string): Promise<IssuedCert>;
  /**
   * A device certificate as AWS's CreateKeysAndCertificate makes one: subject CN `AWS IoT Certificate`
   * (so the CN names no thing; the registry ties it to things), a fresh key pair, nothing written to disk.
   */
  issueDeviceCertificate(): Promise<DeviceCertificate>;
}

export interface DeviceCertificate {
  certificatePem: string;
  /** SPKI PEM. */
  publicKeyPem: string;
  /** PKCS#8 PEM; never stored by the stack. */
  privateKeyPem: string;
}

/** The subject CN AWS IoT gives certificates it creates (CreateKeysAndCertificate). */
export const DEVICE_CERTIFICATE_CN = 'AWS IoT Certificate';

export interface EphemeralCa {
  caCertPem: string;
  issueClientCert(commonName: string): Promise<{ certPem: string; keyPem: string }>;
}

export class PkiError extends OtaError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('OTA_PKI', message, options);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Files

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new PkiError(`cannot read ${path}`, { cause: err });
  }
}

/** Write via a temp file and rename so a crash never leaves a half-written PEM behind. */
async function writeAtomic(path: string, contents: string, mode: number): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomSerial().slice(0, 8)}.tmp`;
  await writeFile(tmp, contents, { mode });
  await chmod(tmp, mode);
  await rename(tmp, path);
}

const KEY_MODE = 0o600;
const CERT_MODE = 0o644;

async function writePair(certPath: string, keyPath: string, pair: { certPem: string; keyPem: string }) {
  await writeAtomic(keyPath, pair.keyPem, KEY_MODE);
  await writeAtomic(certPath, pair.certPem, CERT_MODE);
}

/** Loads a cert/key pair; undefined when absent or unparsable (the caller then reissues). */
async function loadPair(certPath: string, keyPath: string): Promise<Pair | undefined> {
  const [certPem, keyPem] = await Promise.all([readIfExists(certPath), readIfExists(keyPath)]);
  if (certPem === undefined || keyPem === undefined) return undefined;
  try {
    const cert = new x509.X509Certificate(certPem);
    if (!(await keyMatchesCert(keyPem, cert))) return undefined;
    return { cert, certPem, keyPem };
  } catch {
    return undefined;
  }
}

async function loadCa(certPath: string, keyPath: string): Promise<CaMaterial | undefined> {
  const pair = await loadPair(certPath, keyPath);
  if (!pair) return undefined;
  const bc = pair.cert.getExtension(x509.BasicConstraintsExtension);
  if (!bc?.ca || !notExpiringSoon(pair.cert) || !(await signedBy(pair.cert, pair.cert))) return undefined;
  return { cert: pair.cert, certPem: pair.certPem, key: await importKeyPem(pair.keyPem) };
}

function assertCommonName(commonName: string): void {
  // The CN becomes a file name and a topic level; AWS's thing-name pattern keeps both safe.
  if (!THING_NAME_PATTERN.test(commonName)) {
    throw new ValidationError(
      'commonName',
      `must match ${THING_NAME_PATTERN} (got ${JSON.stringify(commonName)})`,
    );
  }
}

// ---------------------------------------------------------------------------------------------------------
// Public API

/**
 * Creates (first call) or loads (later calls) the CA under `dir`: `ca.pem`/`ca.key`, `server.pem`/
 * `server.key` (SANs localhost, 127.0.0.1 and `hosts`), and `clients/`. Idempotent: an existing valid CA is
 * reused; the server certificate is reissued only when it is invalid or lacks a requested host (keeping the
 * hosts it already had, so alternating callers do not flap). A CA that is missing or broken is replaced,
 * which invalidates every certificate it signed (they get reissued on demand).
 */
export async function ensureLocalCa(dir: string, opts: { hosts?: string[] } = {}): Promise<LocalCa> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await mkdir(join(dir, 'clients'), { recursive: true, mode: 0o700 });

  const caCertPath = join(dir, 'ca.pem');
  const caKeyPath = join(dir, 'ca.key');
  const serverCertPath = join(dir, 'server.pem');
  const serverKeyPath = join(dir, 'server.key');

  let ca = await loadCa(caCertPath, caKeyPath);
  if (!ca) {
    const created = await createCa('ota-progress local CA');
    await writePair(caCertPath, caKeyPath, created);
    ca = created;
  }
  const caMaterial: CaMaterial = ca;

  const wanted = [...new Set([...DEFAULT_SERVER_HOSTS, ...(opts.hosts ?? [])].map(normaliseHost))];
  let server = await loadPair(serverCertPath, serverKeyPath);
  let serverValid = false;
  if (server && notExpiringSoon(server.cert) && (await signedBy(server.cert, caMaterial.cert))) {
    const have = new Set(subjectAltNames(server.cert));
    serverValid = wanted.every((h) => have.has(h));
    if (!serverValid) for (const h of have) if (!wanted.includes(h)) wanted.push(h);
  }
  if (!server || !serverValid) {
    server = await issueLeaf(caMaterial, 'server', 'localhost', wanted);
    await writePair(serverCertPath, serverKeyPath, server);
  }

  const inFlight = new Map<string, Promise<IssuedCert>>();
  const issue = async (commonName: string): Promise<IssuedCert> => {
    const certPath = join(dir, 'clients', `${commonName}.cert.pem`);
    const keyPath = join(dir, 'clients', `${commonName}.key.pem`);
    const existing = await loadPair(certPath, keyPath);
    if (
      existing &&
      commonNameOf(existing.cert) === commonName &&
      notExpiringSoon(existing.cert) &&
      (await signedBy(existing.cert, caMaterial.cert))
    ) {
      return { certPath, keyPath, certPem: existing.certPem, keyPem: existing.keyPem };
    }
    const pair = await issueLeaf(caMaterial, 'client', commonName);
    await writePair(certPath, keyPath, pair);
    return { certPath, keyPath, certPem: pair.certPem, keyPem: pair.keyPem };
  };

  return {
    dir,
    caCertPath,
    caCertPem: caMaterial.certPem,
    serverCertPath,
    serverKeyPath,
    serverCertPem: server.certPem,
    serverKeyPem: server.keyPem,
    issueClientCert(commonName: string): Promise<IssuedCert> {
      try {
        assertCommonName(commonName);
      } catch (err) {
        return Promise.reject(err);
      }
      // Concurrent requests for one CN share a single issuance instead of racing on the files.
      let p = inFlight.get(commonName);
      if (!p) {
        p = issue(commonName).finally(() => inFlight.delete(commonName));
        inFlight.set(commonName, p);
      }
      return p;
    },
    async issueDeviceCertificate(): Promise<DeviceCertificate> {
      const pair = await issueLeaf(caMaterial, 'client', DEVICE_CERTIFICATE_CN);
      return { certificatePem: pair.certPem, publicKeyPem: pair.publicKeyPem, privateKeyPem: pair.keyPem };
    },
  };
}

/** An in-memory CA (nothing on disk): tests use it to make certificates the local CA never signed. */
export async function createEphemeralCa(commonName: string): Promise<EphemeralCa> {
  const ca = await createCa(commonName);
  return {
    caCertPem: ca.certPem,
    async issueClientCert(cn: string) {
      assertCommonName(cn);
      const pair = await issueLeaf(ca, 'client', cn);
      return { certPem: pair.certPem, keyPem: pair.keyPem };
    },
  };
}
