import type { AddressInfo, Server, Socket } from 'node:net';
import type { TestContext } from 'node:test';

/**
 * A loopback server (plain TCP or TLS, made by `create`) that answers every request with
 * `respond(socket, requestHead)`, the head being everything up to the blank line. It closes after the
 * test `t`, passed or failed; closing destroys the open sockets first, so a test that left a response
 * hanging still ends.
 */
export async function rawHeadServer<S extends Socket>(
  t: TestContext,
  create: (onSocket: (s: S) => void) => Server,
  respond: (s: S, head: string) => void,
): Promise<{ port: number }> {
  const sockets = new Set<S>();
  const server = create((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end !== -1) {
        const head = buf.slice(0, end);
        buf = '';
        respond(s, head);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  t.after(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return { port };
}
