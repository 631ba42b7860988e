import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, before, beforeEach } from 'node:test';

/** A loopback HTTP server for one object, with Range/If-Range, ETag, and scripted cuts and failures. */
export interface FileServer {
  url: string;
  /** What the server serves now (replace to simulate an object change). */
  content: Buffer;
  etag: string;
  requests: { range?: string; ifRange?: string; sent: number }[];
  /** Destroy the socket after this many body bytes, for the next `cuts` requests. */
  cutAfter: number;
  cuts: number;
  /** Destroy the socket right after queueing the bytes (they may arrive partly, mid-write). */
  cutHard?: boolean;
  /** Serve this many bytes while claiming Content-Length = content.length (premature end). */
  onRequest?: (req: IncomingMessage, res: ServerResponse) => boolean;
  close(): Promise<void>;
}

export async function startFileServer(content: Buffer): Promise<FileServer> {
  const fsrv = {
    url: '',
    content,
    etag: `"${createHash('md5').update(content).digest('hex')}"`,
    requests: [] as FileServer['requests'],
    cutAfter: 0,
    cuts: 0,
  } as FileServer;
  const server: Server = createServer((req, res) => {
    const rec = { range: req.headers.range, ifRange: req.headers['if-range'] as string | undefined, sent: 0 };
    fsrv.requests.push(rec);
    if (fsrv.onRequest?.(req, res)) return;
    const body = fsrv.content;
    let start = 0;
    let end = body.length;
    let status = 200;
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (m && (!rec.ifRange || rec.ifRange === fsrv.etag)) {
      start = Number(m[1]);
      if (m[2]) end = Math.min(body.length, Number(m[2]) + 1);
      if (start >= body.length || end <= start) {
        res.writeHead(416, { 'content-range': `bytes */${body.length}` });
        res.end();
        return;
      }
      status = 206;
    }
    const headers: Record<string, string | number> = {
      etag: fsrv.etag,
      'content-length': end - start,
      'accept-ranges': 'bytes',
    };
    if (status === 206) headers['content-range'] = `bytes ${start}-${end - 1}/${body.length}`;
    res.writeHead(status, headers);
    const slice = body.subarray(start, end);
    if (fsrv.cuts > 0) {
      fsrv.cuts--;
      const n = Math.min(fsrv.cutAfter, slice.length);
      rec.sent = n;
      if (fsrv.cutHard) {
        res.write(slice.subarray(0, n));
        setImmediate(() => res.socket?.destroy());
        return;
      }
      res.write(slice.subarray(0, n), () => {
        // give the bytes time to reach the client, then cut the connection mid-body
        setTimeout(() => res.socket?.destroy(), 20);
      });
      return;
    }
    rec.sent = slice.length;
    res.end(slice);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  fsrv.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/bucket/firmware/fw_1.0/fw.img`;
  fsrv.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return fsrv;
}

export interface ServedFile {
  /** The random bytes served (the same for every test of the describe). */
  content: Buffer;
  srv: FileServer;
  /** A fresh download directory. */
  dir: string;
}

/**
 * For each test of the enclosing describe: a file server over `size` random bytes and a fresh download
 * directory, handed to `use` before the test; the server is closed and the directory removed after it.
 */
export function servePerTest(size: number, dirPrefix: string, use: (f: ServedFile) => void): void {
  let content: Buffer;
  let f: ServedFile | undefined;
  before(() => {
    content = randomBytes(size);
  });
  beforeEach(async () => {
    f = { content, srv: await startFileServer(content), dir: await mkdtemp(join(tmpdir(), dirPrefix)) };
    use(f);
  });
  afterEach(async () => {
    await f?.srv.close();
    if (f) await rm(f.dir, { recursive: true, force: true });
    f = undefined;
  });
}
