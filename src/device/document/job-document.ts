import { basename, resolve, sep } from 'node:path';
import { z } from 'zod';
import { ValidationError } from '../../shared/errors.ts';
import { DEVICE_TYPE } from '../../shared/firmware-document.ts';
import { SIGNATURE_ALG } from '../../shared/firmware-signature.ts';
import { isPresignedUrl, parseS3Url } from '../../shared/s3-url.ts';
import { isValidVersion } from './version.ts';

/** 64 GiB: well above any dashcam / Raspberry Pi image, low enough to catch a unit mix-up or garbage. */
export const MAX_FIRMWARE_SIZE = 64 * 1024 ** 3;

/**
 * The job document of the original (docs/original.md), plus two optional fields: `sha256` (integrity, checked
 * after download) and `name` (shown as "Firmware version" in progress messages). Unknown fields are
 * ignored so an operator can add metadata without breaking older agents.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
const CONTROL = /[\u0000-\u001f\u007f]/;

/** zod v4 error map: a missing field says `required`, a wrong one says what it must be. */
const must = (text: string) => (iss: { input?: unknown }) => (iss.input === undefined ? 'required' : text);

const FirmwareSchema = z.object({
  version: z
    .union([z.string(), z.number()], { error: must('must be a string') })
    .transform((v) => String(v).trim())
    .refine((v) => isValidVersion(v), { error: 'must be a version like 41811020, 1.2.10 or 1.0.0-rc.1' }),
  size: z
    .number({ error: must('must be a positive integer') })
    .refine((n) => Number.isSafeInteger(n) && n > 0, { error: 'must be a positive integer' })
    .refine((n) => n <= MAX_FIRMWARE_SIZE, { error: `must be at most ${MAX_FIRMWARE_SIZE} bytes (64 GiB)` }),
  region: z
    .string({ error: must('must be a string') })
    .regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, { error: 'must be an AWS region like us-west-2' }),
  url: z
    .string({ error: must('must be a string') })
    .min(1, { error: 'must not be empty' })
    .max(4096, { error: 'too long (more than 4096 characters)' })
    .refine((u) => !CONTROL.test(u), { error: 'must not contain control characters' })
    .refine((u) => URL.canParse(u.trim()), { error: 'not a valid URL' }),
  sha256: z
    .string({ error: must('must be a string') })
    .regex(/^[0-9a-fA-F]{64}$/, { error: 'must be 64 hex characters' })
    .transform((s) => s.toLowerCase())
    .optional(),
  name: z
    .string({ error: must('must be a string') })
    .min(1)
    .max(256)
    .optional(),
  /** The device type this image is for (checked against `--device-type`). */
  deviceType: z
    .string({ error: must('must be a string') })
    .regex(DEVICE_TYPE, { error: `must match ${DEVICE_TYPE.source}` })
    .optional(),
  /** `ota firmware put --sign-key`: ECDSA P-256 over the image's SHA-256 (src/shared/firmware-signature.ts). */
  signature: z
    .object(
      {
        alg: z.literal(SIGNATURE_ALG, { error: `must be ${SIGNATURE_ALG}` }),
        value: z
          .string({ error: must('must be a string') })
          .regex(/^[A-Za-z0-9+/]{8,200}={0,2}$/, { error: 'must be a base64 DER signature' }),
        keyId: z
          .string({ error: must('must be a string') })
          .regex(/^[0-9a-f]{64}$/, { error: 'must be 64 lowercase hex characters (the key fingerprint)' }),
      },
      { error: must('must be an object {alg, value, keyId}') },
    )
    .optional(),
});

const DocumentSchema = z.object({
  firmware: z.object(FirmwareSchema.shape, { error: must('must be an object') }),
});

export type FirmwareDocument = z.infer<typeof FirmwareSchema>;

/**
 * Deeper than any real document (the original's is 2 levels); a bound so that nothing downstream (the
 * printed sections, the redaction of presigned URLs) recurses without limit on a hostile document.
 */
export const MAX_DOCUMENT_DEPTH = 32;

/**
 * The dotted path (first 3 levels) of a value nested deeper than `max`, or undefined. Iterative: a
 * document 100,000 levels deep must not overflow the stack while being measured.
 */
export function deeperThan(root: unknown, max: number): string | undefined {
  const stack: { v: unknown; depth: number; path: string }[] = [{ v: root, depth: 0, path: '' }];
  while (stack.length > 0) {
    const { v, depth, path } = stack.pop() as { v: unknown; depth: number; path: string };
    if (v === null || typeof v !== 'object') continue;
    if (depth >= max) return path;
    for (const [k, child] of Object.entries(v as Record<string, unknown>)) {
      const p = depth < 3 ? (path ? `${path}.${k}` : k) : path;
      stack.push({ v: child, depth: depth + 1, path: p.slice(0, 200) });
    }
  }
  return undefined;
}

/** Validates a job document; throws ValidationError whose field is the path (`firmware.size`). */
export function parseJobDocument(doc: unknown): FirmwareDocument {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ValidationError('jobDocument', 'must be a JSON object');
  }
  const deep = deeperThan(doc, MAX_DOCUMENT_DEPTH);
  if (deep !== undefined) {
    throw new ValidationError(deep || 'jobDocument', `nested deeper than ${MAX_DOCUMENT_DEPTH} levels`);
  }
  const r = DocumentSchema.safeParse(doc);
  if (!r.success) {
    const issue = r.error.issues[0];
    const path = issue?.path.map(String).join('.') || 'jobDocument';
    throw new ValidationError(path, issue?.message ?? 'invalid');
  }
  return r.data.firmware;
}

export type ResolvedSource =
  | {
      kind: 's3';
      bucket: string;
      key: string;
      region: string;
      url: string;
      fileName: string;
      firmwareName: string;
    }
  | {
      kind: 'http';
      url: URL;
      presigned: boolean;
      /** Known when the URL is an S3 (or local S3) object URL, for the printed sections. */
      bucket?: string;
      key?: string;
      region: string;
      fileName: string;
      firmwareName: string;
    };

export interface ResolveOptions {
  downloadDir: string;
  /** The local S3 endpoint (http://127.0.0.1:port): its path-style URLs are S3 objects too. */
  s3Endpoint?: string;
}

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\]|::1)$/i;

export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK.test(hostname);
}

/**
 * Raw path segments before the WHATWG parser normalises them: `new URL('https://h/b/../etc')` silently
 * becomes `/etc`, which would change the bucket, so `..` must be caught on the raw text. Each segment is
 * percent-decoded strictly: a malformed escape (`%ff`, `%zz`) is refused, not passed on.
 */
function rawPathSegments(input: string): string[] {
  const afterScheme = input.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, '');
  const path = afterScheme.split(/[?#]/)[0] ?? '';
  return path.split('/').map(strictDecode);
}

function strictDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    const bad = /%(?![0-9a-f]{2})..?|%[0-9a-f]{2}/i.exec(s)?.[0] ?? '%';
    throw new ValidationError('firmware.url', `malformed percent-encoding (${bad.slice(0, 3)})`);
  }
}

/**
 * Whether a decoded path escapes: any segment, split on either separator (`/` or `\`, which some servers
 * and file systems treat alike), that is `.` or `..`, also after decoding once or twice more (a
 * double-encoded `%252e%252e` is `..` to a server that decodes again).
 */
function hasDotSegment(decoded: string): boolean {
  for (const seg of decoded.split(/[/\\]/)) {
    let s = seg;
    for (let i = 0; i < 3; i++) {
      if (s === '.' || s === '..') return true;
      let next: string;
      try {
        next = decodeURIComponent(s);
      } catch {
        break;
      }
      if (next === s) break;
      s = next;
    }
  }
  return false;
}

function checkKey(key: string): void {
  if (CONTROL.test(key))
    throw new ValidationError('firmware.url', 'object key must not contain control characters');
  if (key.startsWith('/') || key.startsWith('\\'))
    throw new ValidationError('firmware.url', 'object key must not be absolute (leading "/")');
  if (hasDotSegment(key)) {
    throw new ValidationError('firmware.url', 'object key must not contain "." or ".." segments');
  }
  if (key.length === 0 || key.endsWith('/'))
    throw new ValidationError('firmware.url', 'must name an object, not a folder');
}

/** basename, restricted to a portable character set; never `.`/`..`/empty. */
export function sanitizeFileName(name: string): string {
  const base = basename(name.replace(/\\/g, '/'));
  const clean = base.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 200);
  if (clean === '' || /^\.+$/.test(clean))
    throw new ValidationError('firmware.url', 'does not end in a usable file name');
  return clean;
}

function parentFolder(key: string): string | undefined {
  const parts = key.split('/').filter(Boolean);
  return parts.length >= 2 ? parts[parts.length - 2] : undefined;
}

/** The local path of `fileName` inside `downloadDir`, refusing anything that would land outside it. */
export function localPathFor(downloadDir: string, fileName: string): string {
  const dir = resolve(downloadDir);
  const p = resolve(dir, fileName);
  if (!p.startsWith(dir + sep))
    throw new ValidationError('firmware.url', 'file name escapes the download directory');
  return p;
}

/**
 * Where to fetch the firmware from (the original split the URL into bucket and key for boto3):
 * - `s3://`, path-style and virtual-hosted S3 URLs without a signature → S3 GetObject (device credentials);
 * - presigned URLs (X-Amz-Signature; docs/protocol.md, Presigned URL placeholders) and other https URLs →
 *   plain HTTPS GET;
 * - http only to loopback hosts (the local stack); any other scheme is refused.
 */
export function resolveSource(doc: FirmwareDocument, opts: ResolveOptions): ResolvedSource {
  const raw = doc.url.trim();
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ValidationError('firmware.url', 'not a valid URL');
  }
  if (!['s3:', 'https:', 'http:'].includes(url.protocol)) {
    throw new ValidationError(
      'firmware.url',
      `scheme ${url.protocol.replace(':', '')} is not allowed (s3, https, or http to loopback)`,
    );
  }
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    throw new ValidationError('firmware.url', 'plain http is only allowed to a loopback host; use https');
  }
  if (url.username || url.password) throw new ValidationError('firmware.url', 'must not carry credentials');
  const segs = rawPathSegments(raw);
  if (segs.some((s) => hasDotSegment(s))) {
    throw new ValidationError('firmware.url', 'must not contain "." or ".." path segments');
  }

  let loc = parseS3Url(raw);
  if (!loc && opts.s3Endpoint && url.protocol !== 's3:') {
    // The local stack's S3 endpoint is path-style: http://127.0.0.1:<port>/<bucket>/<key>.
    const ep = new URL(opts.s3Endpoint);
    if (ep.host === url.host) {
      const path = url.pathname.replace(/^\//, '');
      const slash = path.indexOf('/');
      if (slash > 0) {
        loc = {
          bucket: strictDecode(path.slice(0, slash)),
          key: path
            .slice(slash + 1)
            .split('/')
            .map(strictDecode)
            .join('/'),
        };
      }
    }
  }
  const presigned = isPresignedUrl(raw);
  if (loc) {
    checkKey(loc.key);
    const fileName = sanitizeFileName(loc.key);
    localPathFor(opts.downloadDir, fileName);
    const firmwareName = doc.name ?? parentFolder(loc.key) ?? doc.version;
    const region = loc.region ?? doc.region;
    if (presigned) {
      return {
        kind: 'http',
        url,
        presigned,
        bucket: loc.bucket,
        key: loc.key,
        region,
        fileName,
        firmwareName,
      };
    }
    return { kind: 's3', bucket: loc.bucket, key: loc.key, region, url: raw, fileName, firmwareName };
  }
  if (url.protocol === 's3:')
    throw new ValidationError('firmware.url', 's3:// URL must be s3://<bucket>/<key>');
  const path = url.pathname;
  if (path.includes('//')) throw new ValidationError('firmware.url', 'path must not contain empty segments');
  const decoded = segs.join('/');
  checkKey(decoded.replace(/^\//, ''));
  const fileName = sanitizeFileName(decoded);
  localPathFor(opts.downloadDir, fileName);
  return {
    kind: 'http',
    url,
    presigned,
    region: doc.region,
    fileName,
    firmwareName: doc.name ?? parentFolder(decoded) ?? doc.version,
  };
}
