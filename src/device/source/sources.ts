import { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { type Clock, systemClock } from '../../shared/clock.ts';
import { type RawBody, type RawResponse, rawGet } from '../download/http-body.ts';
import { DownloadError } from '../errors.ts';

/**
 * Where firmware bytes come from: one interface (DownloadSource) over S3 GetObject and plain HTTP(S) GET,
 * both read through the hand-written reader in http-body.ts. A source opens the object at an offset
 * (Range, with If-Range / If-Match so a changed object is detected) and maps the status to a
 * DownloadError kind; what to do about that kind is the download loop's table (download.ts).
 */
/** Validators recorded from the first response, sent back on resume so a changed object is detected. */
export interface Validator {
  etag?: string;
  lastModified?: string;
}

export interface OpenRequest {
  /** First byte wanted; 0 = the whole object. */
  offset: number;
  /** End (exclusive) of the bytes wanted; undefined = to the end of the object. */
  end?: number;
  /** Sent with every ranged request (If-Range / If-Match), so a changed object is detected. */
  validator?: Validator;
  signal: AbortSignal;
  /** The reader's reused buffer (smaller under a low `--max-rate`, or for extra connections). */
  readBufferSize?: number;
  /** Socket idle timeout; 0 = none (the download's stall watchdog decides instead). */
  idleTimeoutMs?: number;
}

/** `Range: bytes=a-b` for a request that does not want the whole object, else undefined. */
export function rangeHeader(req: OpenRequest): string | undefined {
  if (req.offset === 0 && req.end === undefined) return undefined;
  return `bytes=${req.offset}-${req.end !== undefined ? req.end - 1 : ''}`;
}

function rawOptions(req: OpenRequest, headers: Record<string, string>, ca: string | Buffer | undefined) {
  return {
    headers,
    signal: req.signal,
    ...(ca ? { ca } : {}),
    ...opt('readBufferSize', req.readBufferSize),
    ...opt('idleTimeoutMs', req.idleTimeoutMs),
  };
}

export interface OpenedBody {
  /** 200 = the whole object from byte 0, 206 = a range starting at `start`. */
  status: 200 | 206;
  body: Readable;
  /**
   * The same body without the stream machinery (src/device/download/http-body.ts); when present, downloadFirmware
   * reads this and never touches `body` (which is then created only on access).
   */
  raw?: RawBody;
  start: number;
  /** End (exclusive) of the bytes this response carries, from Content-Range (206). */
  end?: number;
  /** The object's total size, from Content-Range (206) or Content-Length (200), when the server said. */
  total?: number;
  /** The server said it serves ranges (a 206, or `Accept-Ranges: bytes`): parallel ranges are possible. */
  acceptRanges?: boolean;
  etag?: string;
  lastModified?: string;
}

/** One interface over S3 GetObject and plain HTTP(S) GET. */
export interface DownloadSource {
  /** Stable identity of the object (no query string: presigned URLs change), kept in the sidecar. */
  readonly identity: string;
  /**
   * Presigned URLs expire: a 403 then means "refresh", not "forbidden" (docs/protocol.md, Presigned URL
   * placeholders).
   */
  readonly presigned: boolean;
  open(req: OpenRequest): Promise<OpenedBody>;
}

const CONTENT_RANGE = /^bytes (\d+)-(\d+)\/(\d+|\*)$/;

function parseContentRange(
  v: string | undefined,
): { start: number; end: number; total?: number } | undefined {
  if (!v) return undefined;
  const m = CONTENT_RANGE.exec(v.trim());
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = Number(m[2]) + 1;
  const total = m[3] !== '*' ? Number(m[3]) : undefined;
  if (!Number.isSafeInteger(end) || end <= start || (total !== undefined && end > total)) return undefined;
  return { start, end, ...opt('total', total) };
}

function statusError(status: number, what: string, presigned: boolean): DownloadError {
  if (status === 412) return new DownloadError('changed', `${what}: 412 precondition failed`, { status });
  if (status === 416) return new DownloadError('range', `${what}: 416 range not satisfiable`, { status });
  if (status === 403 && presigned) {
    return new DownloadError('expired', `${what}: 403 (presigned URL expired?)`, { status });
  }
  // 5xx, 429 Too Many Requests and 408 Request Timeout say "later", not "never".
  const later = status >= 500 || status === 429 || status === 408;
  return new DownloadError(later ? 'unavailable' : 'http', `${what}: HTTP ${status}`, { status });
}

/** Plain HTTP(S) GET: presigned URLs and any other https URL (http only for loopback, checked earlier). */
export class HttpSource implements DownloadSource {
  readonly identity: string;
  readonly presigned: boolean;
  constructor(
    readonly url: URL,
    private readonly tls: { ca?: string | Buffer } = {},
  ) {
    this.presigned = url.searchParams.has('X-Amz-Signature');
    this.identity = `${url.origin}${url.pathname}`;
  }

  async open(req: OpenRequest): Promise<OpenedBody> {
    const headers: Record<string, string> = {};
    const range = rangeHeader(req);
    if (range) {
      headers.range = range;
      // RFC 9110 section 13.1.5: If-Range makes the server send the whole (new) object with 200 when the
      // validator no longer matches, instead of a range of a different object.
      const v =
        req.validator?.etag && !req.validator.etag.startsWith('W/')
          ? req.validator.etag
          : req.validator?.lastModified;
      if (v) headers['if-range'] = v;
    }
    const ca = this.url.protocol === 'https:' ? this.tls.ca : undefined;
    const res = await rawGet(this.url, rawOptions(req, headers, ca));
    return openedFrom(res, `GET ${this.identity}`, this.presigned);
  }
}

/** Maps a raw response to OpenedBody (or a DownloadError for a non-2xx status / bad Content-Range). */
function openedFrom(res: RawResponse, what: string, presigned: boolean): OpenedBody {
  const { status } = res;
  if (status !== 200 && status !== 206) {
    res.body.destroy();
    throw statusError(status, what, presigned);
  }
  const etag = res.headers.get('etag');
  const lastModified = res.headers.get('last-modified');
  let start = 0;
  let end: number | undefined;
  let total: number | undefined;
  if (status === 206) {
    const cr = parseContentRange(res.headers.get('content-range'));
    if (!cr) {
      res.body.destroy();
      throw new DownloadError('network', `${what}: 206 without a valid Content-Range`);
    }
    start = cr.start;
    end = cr.end;
    total = cr.total;
  } else {
    const len = res.headers.get('content-length');
    total = len !== undefined ? Number(len) : undefined;
  }
  const raw = res.body;
  let body: Readable | undefined;
  return {
    status,
    raw,
    get body(): Readable {
      body ??= rawToReadable(raw);
      return body;
    },
    start,
    ...opt('end', end),
    ...opt('total', total),
    acceptRanges: status === 206 || /\bbytes\b/i.test(res.headers.get('accept-ranges') ?? ''),
    ...opt('etag', etag),
    ...opt('lastModified', lastModified),
  };
}

/** A Readable over a RawBody, for callers of DownloadSource.open that want a stream. */
function rawToReadable(raw: RawBody): Readable {
  let started = false;
  const r: Readable = new Readable({
    read() {
      if (started) {
        raw.resume();
        return;
      }
      started = true;
      raw
        .pump((c) => r.push(Buffer.from(c)))
        .then(
          () => r.push(null),
          (err: Error) => r.destroy(err),
        );
    },
    destroy(err, cb) {
      raw.destroy();
      cb(err);
    },
  });
  return r;
}

/** Presigns a GetObject URL (the agent's light SigV4 signer, or the SDK: see src/device/source/factory.ts). */
export interface S3Presigner {
  /** `signingDate`: X-Amz-Date, the device's clock corrected by the skew S3 reported (S3Source). */
  presignGetObject(bucket: string, key: string, expiresIn: number, signingDate: Date): Promise<URL>;
}

/** How far the device's clock is from S3's (ms, S3's minus the device's), learnt from a refused request. */
export interface ClockSkew {
  ms: number;
}

/**
 * A 403 whose `Date` is this far from the time the URL was signed at says the device's clock is wrong:
 * S3 refuses a presigned URL dated more than 15 minutes ahead, or past its X-Amz-Expires (15 minutes
 * here), so 5 minutes is well inside both and well above network delays.
 */
const SKEW_MS = 5 * 60_000;

/** "device clock is 20 min behind S3's" for a skew of +20 min. */
function describeSkew(ms: number): string {
  const min = Math.round(Math.abs(ms) / 60_000);
  return `device clock is ${min} min ${ms > 0 ? 'behind' : 'ahead of'} S3's`;
}

/** S3 GetObject: a presigned GET (credentials: default chain, local stack, or IoT provider). */
export class S3Source implements DownloadSource {
  readonly identity: string;
  readonly presigned = false;
  private readonly signer: S3Presigner;
  private readonly clock: Pick<Clock, 'now'>;
  private readonly skew: ClockSkew;
  constructor(
    client: S3Client | S3Presigner,
    readonly bucket: string,
    readonly key: string,
    private readonly tls: { ca?: string | Buffer } = {},
    /** The agent's clock, and the skew shared by the sources of one agent. */
    o: { clock?: Pick<Clock, 'now'>; skew?: ClockSkew } = {},
  ) {
    this.identity = `s3://${bucket}/${key}`;
    this.signer = 'presignGetObject' in client ? client : sdkPresigner(client);
    this.clock = o.clock ?? systemClock;
    this.skew = o.skew ?? { ms: 0 };
  }

  /**
   * The request is signed as a short-lived presigned GetObject URL; the bytes then go through
   * http-body.ts instead of the SDK's node:http handler, which costs ~3× the CPU per byte (see
   * docs/benchmarks.md). Range and If-Match are sent as plain headers: SigV4 query authentication does not
   * need them signed, and S3 applies them as on a header-signed request (412 when the ETag changed).
   *
   * A 403 whose `Date` is minutes away from the signing time means the device's clock is wrong (a
   * dashcam without RTC battery or NTP yet): the request is signed again once, at S3's time, and the
   * correction is kept for later requests. Still refused, the error names the skew.
   */
  async open(req: OpenRequest): Promise<OpenedBody> {
    const what = `GetObject ${this.identity}`;
    const headers: Record<string, string> = {};
    const range = rangeHeader(req);
    if (range) {
      headers.range = range;
      // S3 answers 412 when the ETag no longer matches: the object changed, restart from 0.
      if (req.validator?.etag) headers['if-match'] = req.validator.etag;
    }
    let corrected = false;
    for (;;) {
      const signedAt = this.clock.now() + this.skew.ms;
      const url = await this.signer.presignGetObject(this.bucket, this.key, 900, new Date(signedAt));
      const res = await rawGet(url, rawOptions(req, headers, this.tls.ca));
      const serverTime = res.status === 403 ? Date.parse(res.headers.get('date') ?? '') : Number.NaN;
      const off = serverTime - signedAt;
      if (corrected && res.status === 403) {
        res.body.destroy();
        const why = `${describeSkew(this.skew.ms)}; still refused when signed at S3's time`;
        throw new DownloadError('http', `${what}: HTTP 403 (${why})`, { status: 403 });
      }
      if (!(Math.abs(off) >= SKEW_MS)) return openedFrom(res, what, false);
      res.body.destroy();
      corrected = true;
      this.skew.ms += off;
    }
  }
}

/**
 * Presigning through an S3Client (its endpoint rules and credential chain). The SDK modules are loaded on
 * first use only: @aws-sdk/client-s3 alone is ~14 MiB of RSS and ~0.1 s of CPU (docs/benchmarks.md).
 */
export function sdkPresigner(client: S3Client): S3Presigner {
  return {
    async presignGetObject(bucket, key, expiresIn, signingDate) {
      const [{ GetObjectCommand }, { getSignedUrl }] = await Promise.all([
        import('@aws-sdk/client-s3'),
        import('@aws-sdk/s3-request-presigner'),
      ]);
      return new URL(
        await getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key: key }), {
          expiresIn,
          signingDate,
        }),
      );
    },
  };
}

/** `{k: v}` when v is defined, else `{}` (exactOptionalPropertyTypes). */
export function opt<K extends string, V>(k: K, v: V | undefined): { [P in K]?: V } {
  return (v === undefined ? {} : { [k]: v }) as { [P in K]?: V };
}
