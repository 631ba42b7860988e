/**
 * Job documents: the limits checked at CreateJob (docs/protocol.md, Limits) and the rendering at
 * delivery, where `${aws:iot:s3-presigned-url:<url>}` placeholders become fresh presigned URLs
 * (docs/protocol.md, Presigned URL placeholders).
 *
 * A document is kept and sent as JSON text. Rendering rewrites only the string tokens that hold a
 * placeholder and never turns the document into an object, so neither rendering nor sending recurses
 * into it: no document, however deep, can throw a RangeError here.
 */
import { errorMessage } from '../../shared/errors.ts';
import type { JobRecord } from './types.ts';

/** The document placeholder (docs/protocol.md, Presigned URL placeholders). */
export const PRESIGNED_PLACEHOLDER = /\$\{aws:iot:s3-presigned-url:([^}]+)\}/g;
const PLACEHOLDER_MARK = 'aws:iot:s3-presigned-url:';

/** Job document limit (docs/protocol.md, Limits): 32 KB. */
export const MAX_DOCUMENT_BYTES = 32 * 1024;
/**
 * Deepest nesting of objects and arrays a document may have. AWS documents none; 32 KB of `[` is 32,768
 * levels, deep enough to overflow any recursive JSON code downstream (a device's parser included), while
 * real job documents (AWS's managed templates, the firmware document) nest fewer than ten.
 */
export const MAX_DOCUMENT_DEPTH = 100;

/** Returns the problem with a CreateJob document, or undefined when it is acceptable. */
export function documentProblem(document: unknown, field = 'document'): string | undefined {
  if (typeof document !== 'string') return `${field} must be a string of JSON`;
  const bytes = Buffer.byteLength(document, 'utf8');
  if (bytes > MAX_DOCUMENT_BYTES) {
    return `${field} is ${bytes} bytes; the job document limit is ${MAX_DOCUMENT_BYTES} bytes (32 KB)`;
  }
  // Depth first: JSON.parse copes with any depth, but the answer to a deep document should say so.
  const depth = jsonDepth(document);
  if (depth > MAX_DOCUMENT_DEPTH) {
    return `${field} nests objects and arrays ${depth} levels deep; at most ${MAX_DOCUMENT_DEPTH} are allowed`;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(document);
  } catch (err) {
    return `${field} is not valid JSON: ${errorMessage(err)}`;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return `${field} must be a JSON object`;
  }
  return undefined;
}

/** The deepest nesting of `{` and `[` outside strings, by one pass over the text (no recursion). */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) i = stringEnd(text, i);
    else if (c === 0x7b /* { */ || c === 0x5b /* [ */) max = Math.max(max, ++depth);
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) depth--;
  }
  return max;
}

/** Index of the closing quote of the string token that opens at `start` (or the text's end). */
function stringEnd(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c /* \ */) i++;
    else if (c === 0x22) return i;
  }
  return text.length;
}

export type Presign = (s3Url: string, expiresInSec: number) => Promise<string>;

/**
 * The document as a device receives it (JSON text): every placeholder in a string value is replaced with
 * a fresh presigned URL. Keys are left alone, as before.
 */
export async function renderDocument(job: JobRecord, presign: Presign): Promise<string> {
  const text = job.document;
  const tokens: { start: number; end: number; value: string }[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) !== 0x22) continue;
    const end = stringEnd(text, i);
    const raw = text.slice(i, end + 1);
    const start = i;
    i = end;
    if (!raw.includes(PLACEHOLDER_MARK) && !raw.includes('\\')) continue;
    if (isKey(text, end + 1)) continue;
    const value = JSON.parse(raw) as string;
    if (value.includes(PLACEHOLDER_MARK)) tokens.push({ start, end, value });
  }
  if (tokens.length === 0) return text;
  const expires = job.presignedUrlConfig?.expiresInSec ?? 3600;
  const signed = new Map<string, string>();
  for (const t of tokens) {
    for (const m of t.value.matchAll(PRESIGNED_PLACEHOLDER)) {
      const url = m[1] ?? '';
      if (!signed.has(url)) signed.set(url, await presign(url, expires));
    }
  }
  let out = '';
  let from = 0;
  for (const t of tokens) {
    const replaced = t.value.replace(PRESIGNED_PLACEHOLDER, (_all, url: string) => signed.get(url) ?? '');
    out += text.slice(from, t.start) + JSON.stringify(replaced);
    from = t.end + 1;
  }
  return out + text.slice(from);
}

/** Whether the string token that ended just before `i` is an object key (a `:` follows it). */
function isKey(text: string, i: number): boolean {
  let j = i;
  while (j < text.length && /\s/.test(text[j] ?? '')) j++;
  return text[j] === ':';
}
