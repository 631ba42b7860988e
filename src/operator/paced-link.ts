import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A loopback TCP relay that behaves like a slow, long link in front of the local S3 store: the link of a
 * dashcam on LTE or a Pi on Wi-Fi. `ota demo` uses it so the live progress is visible (on loopback an
 * 83 MiB image arrives in a quarter of a second); the tests and the `ranges` benchmark use it as the
 * latency-and-cap proxy of a long link (netem is not available here). Bytes pass through unchanged, so SigV4
 * signatures (which cover the Host header the client sent) still verify.
 *
 * What it models, server → client: each connection is capped at `perConnectionBytesPerSec` (a TCP window
 * over a long RTT, or a server's per-connection limit), all of them together at `totalBytesPerSec` (the
 * link), and every byte arrives `rttMs / 2` after it was sent. Client → server bytes arrive `rttMs / 2`
 * late too, and the first ones a further `rttMs` late (the TCP handshake): a request's first byte comes
 * 2 RTT after connecting, as on a real link. Per connection at most ~(rate × RTT + 64 KiB) is in flight;
 * beyond that the upstream is not read, so TCP's flow control reaches back to the store.
 *
 * It paces real bytes on real sockets, so it runs on the wall clock and Node's timers, not an injected
 * clock.
 */
export interface LinkOptions {
  /** `http://host:port` (or https: bytes are relayed, not interpreted). */
  upstream: string;
  host?: string;
  rttMs?: number;
  /** Server → client cap per connection, bytes/s (0 or absent: none). */
  perConnectionBytesPerSec?: number;
  /** Server → client cap of all connections together, bytes/s (0 or absent: none). */
  totalBytesPerSec?: number;
}

export interface LinkStats {
  /** Connections accepted. */
  connections: number;
  /** Most connections open at once. */
  maxConcurrent: number;
  /** Server → client bytes delivered. */
  bytes: number;
}

export interface PacedLink {
  endpoint: string;
  close(): Promise<void>;
}

export interface Link extends PacedLink {
  stats(): LinkStats;
  /** Stops delivering server → client bytes on every connection (a dead zone), or resumes. */
  stall(on: boolean): void;
  /** Drops every open connection (a cut). */
  cut(): void;
}

/** Bytes released in order, each no earlier than its time; tracks what is queued for flow control. */
class DelayLine {
  private readonly q: { buf: Buffer; at: number }[] = [];
  private timer: NodeJS.Timeout | undefined;
  queued = 0;
  held = false;
  constructor(
    private readonly out: (b: Buffer) => void,
    private readonly onLow: () => void,
    private readonly low: number,
  ) {}

  push(buf: Buffer, at: number): void {
    this.q.push({ buf, at });
    this.queued += buf.length;
    this.schedule();
  }

  schedule(): void {
    if (this.timer || this.held || this.q.length === 0) return;
    const wait = Math.max(0, (this.q[0] as { at: number }).at - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.drain();
    }, wait);
  }

  private drain(): void {
    const now = Date.now();
    while (!this.held && this.q.length > 0 && (this.q[0] as { at: number }).at <= now) {
      const { buf } = this.q.shift() as { buf: Buffer };
      this.queued -= buf.length;
      this.out(buf);
    }
    if (this.queued <= this.low) this.onLow();
    this.schedule();
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.q.length = 0;
  }
}

export async function startLink(o: LinkOptions): Promise<Link> {
  const host = o.host ?? '127.0.0.1';
  const target = new URL(o.upstream);
  const oneWay = (o.rttMs ?? 0) / 2;
  const perConn = o.perConnectionBytesPerSec ?? 0;
  const total = o.totalBytesPerSec ?? 0;
  const stats: LinkStats = { connections: 0, maxConcurrent: 0, bytes: 0 };
  const lines = new Set<DelayLine>();
  const sockets = new Set<Socket>();
  let open = 0;
  let stalled = false;
  const slice = Math.max(1024, Math.min(16 * 1024, Math.floor((perConn || total || 1 << 30) / 50)));
  const window = Math.max(64 * 1024, Math.round(((perConn || total) * ((o.rttMs ?? 0) + 100)) / 1000));

  const server: Server = createServer((client) => {
    stats.connections++;
    stats.maxConcurrent = Math.max(stats.maxConcurrent, ++open);
    const up = connect(Number(target.port), target.hostname);
    const started = Date.now();
    let connFree = 0;
    const down = new DelayLine(
      (b) => {
        if (client.destroyed) return;
        if (b.length === 0)
          client.end(); // the upstream's end, in order
        else {
          stats.bytes += b.length;
          client.write(b);
        }
      },
      () => up.resume(),
      window / 2,
    );
    down.held = stalled;
    lines.add(down);
    const upLine = new DelayLine(
      (b) => up.write(b),
      () => {},
      0,
    );
    let upAt = 0;
    client.on('data', (d: Buffer) => {
      // Handshake: a byte sent right after connecting reaches the server 1.5 RTT later.
      upAt = Math.max(Date.now() + oneWay, started + 3 * oneWay, upAt);
      upLine.push(d, upAt);
    });
    up.on('data', (d: Buffer) => {
      // Connections share the link fairly (as TCP flows roughly do), each within its own cap.
      const rate = Math.min(
        perConn || Number.POSITIVE_INFINITY,
        total > 0 ? total / open : Number.POSITIVE_INFINITY,
      );
      for (let i = 0; i < d.length; i += slice) {
        const part = d.subarray(i, i + slice);
        const start = Math.max(Date.now(), connFree);
        connFree = Number.isFinite(rate) ? start + (part.length * 1000) / rate : start;
        down.push(part, connFree + oneWay);
      }
      if (down.queued > window) up.pause();
    });
    let upstreamDone = false;
    // The upstream's end (or failure) reaches the client after every byte before it, as on a real link.
    const upstreamEnded = () => {
      if (upstreamDone) return;
      upstreamDone = true;
      down.push(Buffer.alloc(0), Math.max(Date.now(), connFree) + oneWay);
    };
    const end = () => {
      if (!sockets.has(client)) return;
      open--;
      sockets.delete(client);
      sockets.delete(up);
      lines.delete(down);
      down.dispose();
      upLine.dispose();
      client.destroy();
      up.destroy();
    };
    sockets.add(client);
    sockets.add(up);
    client.on('error', end);
    client.on('close', end);
    up.on('error', upstreamEnded);
    up.on('close', upstreamEnded);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    endpoint: `${target.protocol}//${host}:${port}`,
    stats: () => ({ ...stats }),
    stall(on) {
      stalled = on;
      for (const l of lines) {
        l.held = on;
        l.schedule();
      }
    },
    cut() {
      for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * A link of `bytesPerSecond` in all, without latency (`ota demo`: the progress stays visible however many
 * connections the agent opens).
 */
export function startPacedLink(
  upstream: string,
  bytesPerSecond: number,
  host = '127.0.0.1',
): Promise<PacedLink> {
  return startLink({
    upstream,
    host,
    perConnectionBytesPerSec: bytesPerSecond,
    totalBytesPerSec: bytesPerSecond,
  });
}
