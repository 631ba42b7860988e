/**
 * HTTPS and the HTTP clients: the agent over `ota dev --s3-tls` against curl over the same HTTPS, and the
 * agent's hand-written reader (src/device/download/http-body.ts) against undici (request() with an Agent, and
 * Agent.dispatch() with a handler) and node:http(s), over both transports, each GET in its own process
 * into a null sink, interleaved.
 */
import { join } from 'node:path';
import { dist, GiB, interleave, log, type Measured, MiB, measure, problems, ROOT } from '../lib/measure.ts';
import { type Image, presignedUrl, type Stack, uploadImage } from '../lib/stack.ts';
import type { Params } from './params.ts';

export const CLIENTS = ['raw', 'undici-request', 'undici-dispatch', 'node-http'] as const;
type Client = (typeof CLIENTS)[number];

/**
 * The floor of any TLS reader's extra CPU: AES-256-GCM (what TLS 1.3 between Node peers negotiates,
 * TLS_AES_256_GCM_SHA384) over 16 KiB records, from `openssl speed` — the same OpenSSL code, without
 * sockets or framing. (Node's Decipher.update in a loop measured ~10× slower than this: a Buffer per
 * call.) Seconds of CPU per GiB, or undefined without openssl.
 */
async function cipherFloorSecPerGiB(): Promise<number | undefined> {
  const m = await measure([
    'openssl',
    'speed',
    '-evp',
    'aes-256-gcm',
    '-seconds',
    '1',
    '-bytes',
    '16384',
  ]).catch(() => undefined);
  const kBps = /^AES-256-GCM\s+([\d.]+)k/m.exec(m?.stdout ?? '')?.[1];
  return kBps ? GiB / (Number(kBps) * 1000) : undefined;
}

interface ClientRun {
  client: Client;
  status: number;
  bytes: number;
  wallSec: number;
  cpuSec: number;
  loadCpuSec: number;
  vmHWMKiB: number;
}

async function runClient(stack: Stack, image: Image, client: Client): Promise<ClientRun> {
  const url = await presignedUrl(stack, image.key);
  const m: Measured = await measure([
    process.execPath,
    join(ROOT, 'bench/http-client-child.mjs'),
    JSON.stringify({
      client,
      url,
      bytes: image.size,
      ...(stack.tls ? { caFile: stack.endpoints.rootCA } : {}),
    }),
  ]);
  let r: ClientRun | undefined;
  try {
    r = JSON.parse(m.stdout.trim().split('\n').at(-1) ?? '') as ClientRun;
  } catch {}
  if (!r || m.code !== 0 || r.status !== 200 || r.bytes !== image.size) {
    problems.push(
      `client ${client} (${stack.tls ? 'https' : 'http'}): ${r ? `${r.status} ${r.bytes} B` : m.stderr.slice(-300)}`,
    );
    return {
      client,
      status: 0,
      bytes: 0,
      wallSec: Number.NaN,
      cpuSec: Number.NaN,
      loadCpuSec: Number.NaN,
      vmHWMKiB: Number.NaN,
    };
  }
  return r;
}

export async function clients(stacks: Stack[], scratch: string, P: Params) {
  const out: Record<string, Record<string, unknown>> = {};
  for (const stack of stacks) {
    const transport = stack.tls ? 'https' : 'http';
    log(`clients (${transport}): ${P.throughputSize} bytes, ${P.clientRuns} runs each, interleaved`);
    const img = await uploadImage(stack, scratch, P.throughputSize);
    const names: Client[] = [...CLIENTS];
    const runs = await interleave(
      P.clientRuns,
      names.map((c) => () => runClient(stack, img, c)),
    );
    const g = P.throughputSize / GiB;
    out[transport] = Object.fromEntries(
      names.map((c, i) => {
        const rs = runs[i] ?? [];
        return [
          c,
          {
            cpuPerGiB: dist(rs.map((r) => r.cpuSec / g)),
            MiBps: dist(rs.map((r) => P.throughputSize / MiB / r.wallSec)),
            loadCpuMs: dist(rs.map((r) => r.loadCpuSec * 1000)),
            peakRssMiB: dist(rs.map((r) => r.vmHWMKiB / 1024)),
          },
        ];
      }),
    );
  }
  const floor = await cipherFloorSecPerGiB();
  if (floor !== undefined) out.tlsCipherFloor = { cpuPerGiB: floor };
  return out;
}
