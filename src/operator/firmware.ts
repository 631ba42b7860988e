import { createHash, type KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import { Transform } from 'node:stream';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { errorMessage, ValidationError } from '../shared/errors.ts';
import { DEVICE_TYPE } from '../shared/firmware-document.ts';
import { type FirmwareSignature, privateKeyFromPem, signDigest } from '../shared/firmware-signature.ts';
import { formatS3HttpsUrl } from '../shared/s3-url.ts';

/**
 * The job document of the original system (docs/original.md), plus `sha256` so the device can check what it
 * downloaded. Key order is part of the contract: version, size, region, url, sha256.
 */
export interface FirmwareJobDocument {
  firmware: {
    version: string;
    size: number;
    region: string;
    url: string;
    sha256: string;
    deviceType?: string;
    signature?: FirmwareSignature;
  };
}

export interface PutFirmwareOptions {
  /** Local firmware image to upload. */
  file: string;
  bucket: string;
  /** Object key; default `firmware/<name ?? file name without extension>/<file name>`. */
  key?: string;
  /** Firmware version for the job document: digits and dots (`41811020`, `0.6.6`) or semver. */
  version: string;
  /** Region written into the job document (the original writes it next to a region-less URL). */
  region: string;
  s3: S3Client;
  /** Folder name for the default key, e.g. `CV150-C3_0.6.6` in the original document's URL. */
  name?: string;
  /** EC P-256 private key (PKCS#8 or SEC1 PEM text): adds `firmware.signature` over the sha256. */
  signKey?: string;
  /** Written as `firmware.deviceType`; agents with another `--device-type` refuse the image. */
  deviceType?: string;
}

export interface PutFirmwareResult {
  document: FirmwareJobDocument;
  bucket: string;
  key: string;
  etag?: string;
}

/** Digits and dots (`41811020`, `1.2.3.4`), or SemVer 2.0.0 with optional pre-release/build. */
const VERSION =
  /^(?:\d+(?:\.\d+)*|\d+\.\d+\.\d+(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?)$/;

/** The default object key: `firmware/<name ?? file name without extension>/<file name>`. */
export function defaultFirmwareKey(file: string, name?: string): string {
  const base = basename(file);
  const folder = name ?? basename(base, extname(base));
  return `firmware/${folder}/${base}`;
}

/**
 * Uploads a firmware image and returns the job document that points at it.
 *
 * The file is streamed (PutObject with a Readable body and ContentLength; @aws-sdk/lib-storage is not a
 * dependency, and a single PUT is fine up to S3's 5 GB limit), and its sha256 is computed from the same
 * bytes as they go out, so memory use does not grow with the image. If the file changes size while it is
 * read, the upload is refused rather than described wrongly.
 *
 * `url` is written the way the original document does, `https://s3.amazonaws.com/<bucket>/<key>`; the
 * device agent resolves that against its configured S3 endpoint (parseS3Url in src/shared/s3-url.ts).
 */
export async function putFirmware(opts: PutFirmwareOptions): Promise<PutFirmwareResult> {
  if (typeof opts.version !== 'string' || !VERSION.test(opts.version)) {
    throw new ValidationError(
      'version',
      `must be digits and dots or a semantic version, got "${opts.version}"`,
    );
  }
  if (!opts.bucket) throw new ValidationError('bucket', 'must not be empty');
  if (!opts.region) throw new ValidationError('region', 'must not be empty');
  if (opts.name !== undefined && (opts.name === '' || opts.name.includes('/'))) {
    throw new ValidationError('name', 'must be a non-empty folder name without "/"');
  }
  if (opts.deviceType !== undefined && !DEVICE_TYPE.test(opts.deviceType)) {
    throw new ValidationError('device-type', `must match ${DEVICE_TYPE.source}`);
  }
  // The key is checked before the upload: a bad key must not leave an unsigned image behind.
  let signer: KeyObject | undefined;
  if (opts.signKey !== undefined) {
    try {
      signer = privateKeyFromPem(opts.signKey);
    } catch (err) {
      throw new ValidationError('sign-key', errorMessage(err), { cause: err });
    }
  }
  const key = opts.key ?? defaultFirmwareKey(opts.file, opts.name);
  if (key === '' || key.startsWith('/'))
    throw new ValidationError('key', 'must be non-empty, without a leading "/"');

  let size: number;
  try {
    const st = await stat(opts.file);
    if (!st.isFile()) throw new ValidationError('file', `${opts.file} is not a regular file`);
    size = st.size;
  } catch (err) {
    if (err instanceof ValidationError) throw err;
    throw new ValidationError('file', `cannot read ${opts.file}`, { cause: err });
  }

  const hash = createHash('sha256');
  let hashed = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      hashed += chunk.length;
      callback(null, chunk);
    },
  });
  const source = createReadStream(opts.file);
  source.on('error', (err) => tap.destroy(err));
  source.pipe(tap);

  const out = await opts.s3.send(
    new PutObjectCommand({
      Bucket: opts.bucket,
      Key: key,
      Body: tap,
      ContentLength: size,
      ContentType: 'application/octet-stream',
    }),
  );
  if (hashed !== size) {
    throw new ValidationError(
      'file',
      `${opts.file} changed while uploading (${hashed} of ${size} bytes read)`,
    );
  }

  const sha256 = hash.digest('hex');
  const document: FirmwareJobDocument = {
    firmware: {
      version: opts.version,
      size,
      region: opts.region,
      url: formatS3HttpsUrl(opts.bucket, key),
      sha256,
      ...(opts.deviceType !== undefined ? { deviceType: opts.deviceType } : {}),
      ...(signer ? { signature: signDigest(sha256, signer) } : {}),
    },
  };
  return { document, bucket: opts.bucket, key, ...(out.ETag !== undefined ? { etag: out.ETag } : {}) };
}
