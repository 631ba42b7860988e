/**
 * Job documents: the limits checked at CreateJob (reference section 3) and the rendering at delivery,
 * where `${aws:iot:s3-presigned-url:<url>}` placeholders become fresh presigned URLs (reference section 4).
 */
import { errorMessage } from '../../shared/errors.ts';
import type { JobRecord } from './types.ts';
import type { Json } from './wire.ts';

/** The document placeholder of reference section 4. */
export const PRESIGNED_PLACEHOLDER = /\$\{aws:iot:s3-presigned-url:([^}]+)\}/g;

/** Job document limit (reference section 3): 32 KB. */
export const MAX_DOCUMENT_BYTES = 32 * 1024;

/** Returns the problem with a CreateJob document, or undefined when it is acceptable. */
export function documentProblem(document: unknown): string | undefined {
  if (typeof document !== 'string') return 'document must be a string of JSON';
  const bytes = Buffer.byteLength(document, 'utf8');
  if (bytes > MAX_DOCUMENT_BYTES) {
    return `document is ${bytes} bytes; the job document limit is ${MAX_DOCUMENT_BYTES} bytes (32 KB)`;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(document);
  } catch (err) {
    return `document is not valid JSON: ${errorMessage(err)}`;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return 'document must be a JSON object';
  }
  return undefined;
}

export type Presign = (s3Url: string, expiresInSec: number) => Promise<string>;

/** The document as a device receives it: placeholders replaced with fresh presigned URLs. */
export async function renderDocument(job: JobRecord, presign: Presign): Promise<Json> {
  const doc = JSON.parse(job.document) as Json;
  const urls = new Set<string>();
  walkStrings(doc, (s) => {
    for (const m of s.matchAll(PRESIGNED_PLACEHOLDER)) urls.add(m[1] ?? '');
    return s;
  });
  if (urls.size === 0) return doc;
  const expires = job.presignedUrlConfig?.expiresInSec ?? 3600;
  const signed = new Map<string, string>();
  for (const url of urls) signed.set(url, await presign(url, expires));
  return walkStrings(doc, (s) =>
    s.replace(PRESIGNED_PLACEHOLDER, (_all, url: string) => signed.get(url) ?? ''),
  );
}

function walkStrings(v: Json, f: (s: string) => string): Json {
  if (typeof v === 'string') return f(v);
  if (Array.isArray(v)) return v.map((x) => walkStrings(x, f));
  if (v !== null && typeof v === 'object') {
    const o: { [k: string]: Json } = {};
    for (const [k, x] of Object.entries(v)) o[k] = walkStrings(x, f);
    return o;
  }
  return v;
}
