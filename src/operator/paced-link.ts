import { connect, createServer, type Server, type Socket } from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';

/**
 * A loopback TCP relay that paces server → client bytes to a given rate: the link of a dashcam on LTE or a
 * Pi on Wi-Fi, in front of the local S3 store. `ota demo` uses it so the live progress is visible (on
 * loopback an 83 MiB image arrives in a quarter of a second). Bytes pass through unchanged, so SigV4
 * signatures (which cover the Host header the client sent) still verify.
 */
export interface PacedLink {
  endpoint: string;
  close(): Promise<void>;
}

class Pacer extends Transform {
  private readonly started = Date.now();
  private sent = 0;
  constructor(private readonly bytesPerSecond: number) {
    super({ highWaterMark: 64 * 1024 });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    // Slices of at most 1/20 s of traffic keep the flow smooth rather than bursty.
    const slice = Math.max(1024, Math.floor(this.bytesPerSecond / 20));
    const pushSlices = (offset: number) => {
      if (offset >= chunk.length) return cb();
      const part = chunk.subarray(offset, offset + slice);
      this.sent += part.length;
      this.push(part);
      const due = this.started + (this.sent / this.bytesPerSecond) * 1000;
      setTimeout(() => pushSlices(offset + part.length), Math.max(0, due - Date.now()));
    };
    pushSlices(0);
  }
}

export async function startPacedLink(
  upstream: string,
  bytesPerSecond: number,
  host = '127.0.0.1',
): Promise<PacedLink> {
  const target = new URL(upstream);
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const up = connect(Number(target.port), target.hostname);
    for (const s of [client, up]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        up.destroy();
      });
    }
    client.pipe(up);
    up.pipe(new Pacer(bytesPerSecond)).pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    endpoint: `${target.protocol}//${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
