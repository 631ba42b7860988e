/**
 * A minimal HTTP/1.1 GET client for firmware bodies: one connection per request, the response body
 * delivered by callback as views of ONE reused read buffer (`net.connect({ onread })`), no per-chunk
 * Buffer, no stream machinery.
 *
 * Why not node:http: profiled in docs/benchmarks.md — `http.get` into a null sink costs ~100 ms CPU per
 * 83 MiB on the benchmark machine (a fresh 64 KiB Buffer per socket read, IncomingMessage's Readable
 * machinery, ~32 MiB of off-heap garbage before V8 collects it), versus 13–36 ms for the same bytes read
 * into one reused buffer. On a 2-core device that CPU competes with everything else.
 *
 * Scope (RFC 9112): status line + headers, bodies framed by Content-Length, `Transfer-Encoding: chunked`
 * (section 7.1) or connection close (section 6.3 rule 8); 1xx interim responses are skipped. No
 * redirects, no request body, no connection reuse: the socket is destroyed once the body is complete (no
 * `Connection: close`, so the server never closes first; a relay that drops its tail on the server's close
 * would cut the body). HTTPS goes through the same parser and the same reused buffer (`onread` of
 * tls.connect, Node >= 14.18).
 */
import * as net from 'node:net';
import * as tls from 'node:tls';

export interface RawGetOptions {
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** A CA trusted for https in addition to Node's bundled roots (the local stack's root CA). */
  ca?: string | Buffer;
  /** Size of the reused socket read buffer (default 128 KiB; loopback reads rarely exceed 64 KiB). */
  readBufferSize?: number;
  /** Idle socket timeout in ms (default 60 s; 0 = none): a stalled transfer fails as ETIMEDOUT and is resumed. */
  idleTimeoutMs?: number;
}

export interface RawBody {
  /**
   * Delivers the body: `onData(chunk)` gets a view that is valid only during the call (copy what you
   * keep). Returning false pauses delivery until `resume()`. Resolves when the body is complete, rejects
   * when the connection fails or ends early (code ECONNRESET / ERR_STREAM_PREMATURE_CLOSE) or on abort.
   */
  pump(onData: (chunk: Buffer) => boolean): Promise<void>;
  resume(): void;
  destroy(): void;
}

export interface RawResponse {
  status: number;
  /** Lower-case names; repeated headers keep the first value. */
  headers: Map<string, string>;
  body: RawBody;
}

const MAX_HEAD = 64 * 1024;

/**
 * One TLS context per extra CA, reused by every connection: building one parses the ~140 bundled roots
 * (milliseconds of CPU and ~1 MiB each time). `ca` is trusted IN ADDITION to Node's bundled roots, so an
 * agent pointed at the local stack can still fetch from a public https URL; without `ca` (real S3) the
 * context is Node's default one.
 */
const contexts = new Map<string, tls.SecureContext>();
function secureContextFor(ca: string | Buffer | undefined): tls.SecureContext | undefined {
  if (ca === undefined) return undefined;
  const key = ca.toString();
  let ctx = contexts.get(key);
  if (!ctx) {
    ctx = tls.createSecureContext({ ca: [...tls.rootCertificates, key] });
    contexts.set(key, ctx);
  }
  return ctx;
}

/**
 * The last TLS session ticket per (trusted CAs, host:port), so the next request (a resume after a cut, a
 * refreshed presigned URL) resumes the session instead of a full handshake (RFC 8446 section 2.2).
 * Keyed by the CA too: a resumed session skips certificate verification, so a session made while
 * trusting the extra CA must never be offered by a request that does not trust it. Bounded.
 */
const sessions = new Map<string, Buffer>();
function rememberSession(key: string, session: Buffer): void {
  sessions.delete(key);
  sessions.set(key, session);
  if (sessions.size > 16) sessions.delete(sessions.keys().next().value as string);
}
const CRLFCRLF = Buffer.from('\r\n\r\n');

function netError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

function abortError(signal: AbortSignal): Error {
  return Object.assign(new Error('The operation was aborted', { cause: signal.reason }), {
    name: 'AbortError',
    code: 'ABORT_ERR',
  });
}

type BodyMode =
  | { kind: 'length'; remaining: number }
  | { kind: 'close' }
  | { kind: 'chunked'; state: 'size' | 'data' | 'data-crlf' | 'trailer'; remaining: number; line: string };

/** GET `url`; resolves with the status and headers once the response head has arrived. */
export function rawGet(url: URL, opts: RawGetOptions = {}): Promise<RawResponse> {
  const { signal } = opts;
  if (signal?.aborted) return Promise.reject(abortError(signal));
  const https = url.protocol === 'https:';
  const port = Number(url.port) || (https ? 443 : 80);
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;

  return new Promise<RawResponse>((resolveHead, rejectHead) => {
    let headDone = false;
    let head: Buffer | undefined;
    let mode: BodyMode = { kind: 'close' };
    let finished = false;
    let failed: Error | undefined;
    // Body bytes that arrived before pump() (the tail of the read that carried the head), and pausing.
    let early: Buffer | undefined;
    let onData: ((chunk: Buffer) => boolean) | undefined;
    let settle: { resolve: () => void; reject: (e: Error) => void } | undefined;

    const finish = () => {
      if (finished) return;
      finished = true;
      socket.destroy();
      settle?.resolve();
    };
    const fail = (err: Error) => {
      if (finished || failed) return;
      failed = err;
      socket.destroy();
      if (!headDone) rejectHead(err);
      settle?.reject(err);
    };

    /** Feeds body bytes (framing already removed) to the consumer; false = pause. */
    const deliver = (chunk: Buffer): boolean => {
      if (chunk.length === 0) return true;
      if (!onData) {
        early = early ? Buffer.concat([early, chunk]) : Buffer.from(chunk);
        return false;
      }
      return onData(chunk);
    };

    const badFraming = (err: Error): false => {
      fail(err);
      return false;
    };

    /** Removes the framing of `buf` per `mode`; returns false when the consumer asked to pause. */
    const body = (buf: Buffer): boolean => {
      let keepGoing = true;
      let i = 0;
      while (i < buf.length && !finished && !failed) {
        if (mode.kind === 'close') {
          keepGoing = deliver(buf.subarray(i)) && keepGoing;
          return keepGoing;
        }
        if (mode.kind === 'length') {
          const n = Math.min(mode.remaining, buf.length - i);
          mode.remaining -= n;
          keepGoing = deliver(buf.subarray(i, i + n)) && keepGoing;
          i += n;
          if (mode.remaining === 0) finish();
          continue;
        }
        // chunked (RFC 9112 section 7.1): size [;ext] CRLF data CRLF ... 0 CRLF [trailers] CRLF
        const m = mode;
        if (m.state === 'data') {
          const n = Math.min(m.remaining, buf.length - i);
          m.remaining -= n;
          keepGoing = deliver(buf.subarray(i, i + n)) && keepGoing;
          i += n;
          if (m.remaining === 0) {
            m.state = 'data-crlf';
            m.line = '';
          }
          continue;
        }
        const nl = buf.indexOf(10, i);
        const end = nl === -1 ? buf.length : nl;
        m.line += buf.toString('latin1', i, end);
        if (m.line.length > 4096)
          return badFraming(netError('chunked framing: line too long', 'HPE_INVALID'));
        i = end;
        if (nl === -1) continue;
        i++; // past LF
        const line = m.line.replace(/\r$/, '');
        m.line = '';
        if (m.state === 'data-crlf') {
          if (line !== '') return badFraming(netError('chunked framing: missing CRLF', 'HPE_INVALID'));
          m.state = 'size';
        } else if (m.state === 'size') {
          const size = Number.parseInt(line.split(';')[0]?.trim() ?? '', 16);
          if (!Number.isFinite(size) || size < 0)
            return badFraming(netError('chunked framing: bad chunk size', 'HPE_INVALID'));
          if (size === 0) m.state = 'trailer';
          else {
            m.state = 'data';
            m.remaining = size;
          }
        } else if (line === '') {
          finish(); // end of trailers
        }
      }
      return keepGoing;
    };

    /**
     * Parses the response head(s) in `all`; returns the offset where the body starts, or -1 when the
     * head is incomplete (or the response is malformed: then it has failed).
     */
    const parseHead = (all: Buffer): number => {
      let pos = 0;
      for (;;) {
        const end = all.indexOf(CRLFCRLF, pos);
        if (end === -1) {
          if (all.length - pos > MAX_HEAD) fail(netError('response head too large', 'HPE_HEADER_OVERFLOW'));
          return -1;
        }
        const lines = all.toString('latin1', pos, end).split('\r\n');
        const sm = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
        if (!sm) {
          fail(netError(`bad status line: ${JSON.stringify(lines[0]?.slice(0, 80))}`, 'HPE_INVALID'));
          return -1;
        }
        const status = Number(sm[1]);
        pos = end + 4;
        // Interim response (RFC 9110 section 15.2): the final one follows.
        if (status >= 100 && status < 200) continue;
        const headers = new Map<string, string>();
        for (const l of lines.slice(1)) {
          const c = l.indexOf(':');
          if (c <= 0) continue;
          const k = l.slice(0, c).trim().toLowerCase();
          if (!headers.has(k)) headers.set(k, l.slice(c + 1).trim());
        }
        const te = headers.get('transfer-encoding');
        const cl = headers.get('content-length');
        if (te && /chunked\s*$/i.test(te)) mode = { kind: 'chunked', state: 'size', remaining: 0, line: '' };
        else if (cl !== undefined && /^\d+$/.test(cl)) mode = { kind: 'length', remaining: Number(cl) };
        else mode = { kind: 'close' };
        headDone = true;
        resolveHead({ status, headers, body: api });
        if (mode.kind === 'length' && mode.remaining === 0) finish();
        return pos;
      }
    };

    /** One read from the socket (a view of the reused buffer for plain TCP). false = stop reading. */
    const onBytes = (buf: Buffer): boolean => {
      if (finished || failed) return false;
      if (headDone) return body(buf);
      const all = head ? Buffer.concat([head, buf]) : Buffer.from(buf); // copy: `buf` is reused
      const at = parseHead(all);
      if (at === -1) {
        head = all;
        return !failed;
      }
      head = undefined;
      return body(all.subarray(at)) && !!onData;
    };

    // Both transports read into one reused buffer: `onread` is honoured by tls.connect too (the TLS layer
    // decrypts into it), so HTTPS has the same read path as plain HTTP (docs/benchmarks.md, "HTTPS").
    const onread = {
      buffer: Buffer.allocUnsafe(opts.readBufferSize ?? 128 * 1024),
      callback: (n: number, buf: Uint8Array) => onBytes(Buffer.from(buf.buffer, buf.byteOffset, n)),
    };
    const tlsOptions: tls.ConnectionOptions & { onread: net.OnReadOpts } = {
      host,
      port,
      onread, // documented for tls.connect (Node >= 14.18) but missing from @types/node's ConnectionOptions
    };
    if (!net.isIP(host)) tlsOptions.servername = host;
    const context = secureContextFor(opts.ca);
    if (context) tlsOptions.secureContext = context;
    const sessionKey = `${opts.ca?.toString() ?? ''}|${host}:${port}`;
    const session = sessions.get(sessionKey);
    if (session) tlsOptions.session = session;
    const socket: net.Socket = https ? tls.connect(tlsOptions) : net.connect({ host, port, onread });
    if (https) {
      socket.on('session', (ticket: Buffer) => rememberSession(sessionKey, ticket));
    }
    socket.setNoDelay(true);
    socket.setTimeout(opts.idleTimeoutMs ?? 60_000, () => fail(netError('socket idle timeout', 'ETIMEDOUT')));
    socket.once(https ? 'secureConnect' : 'connect', () => {
      const h: Record<string, string> = {
        host: url.host,
        'user-agent': 'ota-progress-agent',
        accept: '*/*',
        ...opts.headers,
      };
      let req = `GET ${url.pathname}${url.search} HTTP/1.1\r\n`;
      for (const [k, v] of Object.entries(h)) req += `${k}: ${v}\r\n`;
      socket.write(`${req}\r\n`);
    });
    socket.on('error', (err) => fail(err));
    socket.on('end', () => {
      if (mode.kind === 'close' && headDone) finish();
      else fail(netError('connection ended before the response was complete', 'ERR_STREAM_PREMATURE_CLOSE'));
    });
    socket.on('close', () => {
      if (!finished) fail(netError('socket closed before the response was complete', 'ECONNRESET'));
    });
    const onAbort = () => fail(abortError(signal as AbortSignal));
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('close', () => signal?.removeEventListener('abort', onAbort));

    const api: RawBody = {
      pump(cb) {
        return new Promise<void>((resolve, reject) => {
          if (failed) return reject(failed);
          settle = { resolve, reject };
          onData = cb;
          if (early) {
            const e = early;
            early = undefined;
            if (!cb(e)) {
              if (finished) resolve();
              return;
            }
          }
          if (finished) return resolve();
          api.resume();
        });
      },
      resume() {
        if (finished || failed) return;
        // With onread, returning false from the callback stopped reading (readStop); resume() restarts it.
        socket.resume();
      },
      destroy() {
        fail(netError('destroyed', 'ECONNABORTED'));
      },
    };
  });
}
