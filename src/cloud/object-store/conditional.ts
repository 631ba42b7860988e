import type { ServerResponse } from 'node:http';

/**
 * Conditional GET/HEAD of an object (RFC 9110 §13; AWS S3 API Reference, GetObject / HeadObject,
 * "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"). s3rver 3.7.1 checks only
 * If-None-Match (one exact value or `*`) and If-Modified-Since, after the range (so 416 wins over 304),
 * sends no ETag with its 304, and ignores If-Match, If-Unmodified-Since and If-Range; the front layer
 * evaluates all of them here and strips them before s3rver sees the request.
 */

/** The current validators of an object, as s3rver's FilesystemStore.getMetadata reports them. */
export interface ObjectValidators {
  /** Quoted hex MD5, e.g. `"9e107d9d372bb6826bd81d3542a419d6"`. */
  etag: string;
  /** Last-Modified as sent (IMF-fixdate, whole seconds), e.g. `Tue, 04 Mar 2025 10:00:00 GMT`. */
  lastModified: string;
}

export type PreconditionOutcome =
  | { status: 412; condition: 'If-Match' | 'If-Unmodified-Since' }
  | { status: 304 }
  | null;

interface EntityTag {
  weak: boolean;
  /** The opaque tag without quotes. */
  opaque: string;
}

/**
 * An If-Match / If-None-Match field value: `*` or a comma-separated list of entity tags (RFC 9110
 * §13.1.1, §13.1.2; Node joins repeated fields with ", "). S3 also takes an ETag without its quotes
 * (clients often pass the hex MD5 bare), so an unquoted member is read as a strong tag.
 */
export function parseEntityTags(value: string): '*' | EntityTag[] {
  if (value.trim() === '*') return '*';
  const tags: EntityTag[] = [];
  for (const m of value.matchAll(/(W\/)?"([^"]*)"|([^,\s"]+)/g)) {
    if (m[2] !== undefined) tags.push({ weak: m[1] !== undefined, opaque: m[2] });
    else if (m[3] !== undefined) tags.push({ weak: false, opaque: m[3] });
  }
  return tags;
}

function opaqueOf(etag: string): string {
  return etag.replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
}

/** Strong comparison (RFC 9110 §8.8.3.2): both tags strong and equal. S3's ETags are always strong. */
function strongMatch(tag: EntityTag, current: string): boolean {
  return !tag.weak && !current.startsWith('W/') && tag.opaque === opaqueOf(current);
}

/** Weak comparison (RFC 9110 §8.8.3.2): opaque tags equal, weakness ignored. */
function weakMatch(tag: EntityTag, current: string): boolean {
  return tag.opaque === opaqueOf(current);
}

/**
 * An HTTP-date (RFC 9110 §5.6.7: IMF-fixdate, or the obsolete RFC 850 / asctime forms, which Date.parse
 * reads) as epoch milliseconds, or NaN. A field with several members is invalid (RFC 9110 §13.1.3).
 */
export function parseHttpDate(value: string): number {
  const v = value.trim();
  // Only IMF-fixdate carries a comma after the weekday; a second comma means a list.
  if ((v.match(/,/g)?.length ?? 0) > 1) return Number.NaN;
  if (!/^[A-Za-z]{3}/.test(v)) return Number.NaN;
  return Date.parse(v);
}

type Headers = Record<string, string | string[] | undefined>;

function single(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

/**
 * Evaluates the preconditions of a GET or HEAD of an existing object in RFC 9110 §13.2.2 order, which is
 * also S3's documented precedence:
 * 1. If-Match false → 412 (`*` matches any existing object; strong comparison). If-Match present and
 *    true → If-Unmodified-Since is not evaluated (S3: "If-Match evaluates to true, and If-Unmodified-Since
 *    evaluates to false; then, S3 returns 200 OK").
 * 2. Otherwise If-Unmodified-Since: modified after the date → 412. An invalid date is ignored.
 * 3. If-None-Match true (a tag matches, weak comparison) → 304. When present, If-Modified-Since is not
 *    evaluated (S3: "If-None-Match evaluates to false, and If-Modified-Since evaluates to true; then, S3
 *    returns 304").
 * 4. Otherwise If-Modified-Since: not modified since the date → 304. An invalid date is ignored.
 * Dates compare at whole seconds, the resolution of Last-Modified.
 */
export function evaluatePreconditions(headers: Headers, current: ObjectValidators): PreconditionOutcome {
  const lastModified = Date.parse(current.lastModified);
  const ifMatch = single(headers, 'if-match');
  if (ifMatch !== undefined) {
    const tags = parseEntityTags(ifMatch);
    if (tags !== '*' && !tags.some((t) => strongMatch(t, current.etag))) {
      return { status: 412, condition: 'If-Match' };
    }
  } else {
    const ius = single(headers, 'if-unmodified-since');
    const date = ius === undefined ? Number.NaN : parseHttpDate(ius);
    if (!Number.isNaN(date) && !Number.isNaN(lastModified) && lastModified > date) {
      return { status: 412, condition: 'If-Unmodified-Since' };
    }
  }

  const ifNoneMatch = single(headers, 'if-none-match');
  if (ifNoneMatch !== undefined) {
    const tags = parseEntityTags(ifNoneMatch);
    if (tags === '*' || tags.some((t) => weakMatch(t, current.etag))) return { status: 304 };
  } else {
    const ims = single(headers, 'if-modified-since');
    const date = ims === undefined ? Number.NaN : parseHttpDate(ims);
    if (!Number.isNaN(date) && !Number.isNaN(lastModified) && lastModified <= date) return { status: 304 };
  }
  return null;
}

/**
 * Whether an If-Range validator still holds (RFC 9110 §13.1.5): an entity tag must match strongly; a date
 * must equal Last-Modified exactly. Anything else (weak tag, invalid date, a list) does not hold, and the
 * Range is then ignored: the whole current object is sent with 200.
 */
export function ifRangeHolds(value: string, current: ObjectValidators): boolean {
  const v = value.trim();
  if (v.startsWith('"') || v.startsWith('W/')) {
    const tags = parseEntityTags(v);
    return tags !== '*' && tags.length === 1 && tags[0] !== undefined && strongMatch(tags[0], current.etag);
  }
  const date = parseHttpDate(v);
  const lastModified = Date.parse(current.lastModified);
  return !Number.isNaN(date) && date === lastModified;
}

/** The request headers this module evaluates; removed before s3rver sees the request. */
export const CONDITIONAL_HEADERS = [
  'if-match',
  'if-none-match',
  'if-modified-since',
  'if-unmodified-since',
  'if-range',
] as const;

/**
 * Makes `res` drop the connection instead of sending a 200/206 whose ETag is not `etag` (the front layer's
 * guard against an object replaced between its precondition check and s3rver's read).
 * Koa flushes headers through res.writeHead (ServerResponse._implicitHeader calls it too).
 */
export function guardServedEtag(res: ServerResponse, etag: string): void {
  // writeHead is overloaded; the guard passes its arguments through untouched.
  const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse;
  res.writeHead = ((...args: unknown[]) => {
    const served = res.getHeader('etag');
    const serving = res.statusCode === 200 || res.statusCode === 206;
    if (serving && served !== undefined && String(served) !== etag) {
      res.destroy();
      return res;
    }
    return writeHead(...args);
  }) as typeof res.writeHead;
}
