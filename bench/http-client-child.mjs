// One GET of a (presigned) URL into a null sink with one HTTP client, for the client comparison of the
// benchmarks (docs/benchmarks.md, "HTTPS and the HTTP clients"). Plain JS, its own process, so each
// client's memory and CPU are its own. Prints one JSON line: bytes, the transfer's wall and CPU time
// (process.cpuUsage around the GET, module loading excluded), the loading cost, and VmHWM.
//
// Clients: raw = the agent's reader (dist/device/download/http-body.js); undici-request = undici's request() with
// an Agent; undici-dispatch = Agent.dispatch() with a handler (no stream); node-http = http(s).get.
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';

const args = JSON.parse(process.argv[2] ?? '{}');
const url = new URL(args.url);
const ca = args.caFile ? readFileSync(args.caFile, 'utf8') : undefined;
const https = url.protocol === 'https:';

const load0 = process.cpuUsage();
const loadT0 = performance.now();
let get;
if (args.client === 'raw') {
  const { rawGet } = await import('../dist/device/download/http-body.js');
  get = async (headers = {}) => {
    const res = await rawGet(url, { headers, ...(ca ? { ca } : {}) });
    let n = 0;
    await res.body.pump((c) => {
      n += c.length;
      return true;
    });
    return { status: res.status, n };
  };
} else if (args.client === 'undici-request' || args.client === 'undici-dispatch') {
  const { Agent, request } = await import('undici');
  const dispatcher = new Agent(ca ? { connect: { ca: [...rootCertificates, ca] } } : {});
  if (args.client === 'undici-request') {
    get = async (headers = {}) => {
      const res = await request(url, { dispatcher, headers });
      let n = 0;
      for await (const c of res.body) n += c.length;
      return { status: res.statusCode, n };
    };
  } else {
    get = (headers = {}) =>
      new Promise((resolve, reject) => {
        let n = 0;
        let status = 0;
        dispatcher.dispatch(
          { origin: url.origin, path: `${url.pathname}${url.search}`, method: 'GET', headers },
          {
            onRequestStart() {},
            onResponseStart(_c, statusCode) {
              status = statusCode;
            },
            onResponseData(_c, chunk) {
              n += chunk.length;
            },
            onResponseEnd() {
              resolve({ status, n });
            },
            onResponseError(_c, err) {
              reject(err);
            },
          },
        );
      });
  }
} else if (args.client === 'node-http') {
  const mod = await import(https ? 'node:https' : 'node:http');
  const agent = new mod.Agent(ca ? { ca: [...rootCertificates, ca] } : {});
  get = (headers = {}) =>
    new Promise((resolve, reject) => {
      mod
        .get(url, { agent, headers }, (res) => {
          let n = 0;
          res.on('data', (c) => {
            n += c.length;
          });
          res.on('end', () => resolve({ status: res.statusCode, n }));
          res.on('error', reject);
        })
        .on('error', reject);
    });
} else {
  throw new Error(`unknown client ${args.client}`);
}
// One small GET first (the first KiB): one-time costs (undici compiles its llhttp WebAssembly on first
// use, TLS contexts, lazy code) are counted as loading, not as transfer.
await get({ range: 'bytes=0-1023' });
const load = process.cpuUsage(load0);
const loadMs = performance.now() - loadT0;

const c0 = process.cpuUsage();
const t0 = performance.now();
const r = await get();
const wall = (performance.now() - t0) / 1000;
const c = process.cpuUsage(c0);
const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
process.stdout.write(
  `${JSON.stringify({
    client: args.client,
    status: r.status,
    bytes: r.n,
    wallSec: wall,
    cpuSec: (c.user + c.system) / 1e6,
    loadCpuSec: (load.user + load.system) / 1e6,
    loadMs,
    vmHWMKiB: hwm ? Number(hwm[1]) : null,
  })}\n`,
);
process.exit(0);
