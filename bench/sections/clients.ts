/**
 * HTTPS and the HTTP clients: the agent over `ota dev --s3-tls` against curl over the same HTTPS, and the
 * agent's hand-written reader (src/device/http-body.ts) against undici (request() with an Agent, and
 * Agent.dispatch() with a handler) and node:http(s), over both transports, each GET in its own process
 * into a null sink, interleaved.
 */
import { join } from 'node:path';
import { dist, GiB, interleave, log, type Measured, MiB, measure, problems, ROOT } from '../lib/measure.ts';
import { type Image, presignedUrl, type Stack, uploadImage } from '../lib/stack.ts';
import type { Params } from './params.ts';

export const CLIENTS = ['raw', 'undici-request', 'undici-dispatch', 'node-http'] as const;
type Client = (typeof CLIENTS)[number];

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
    JSON.stringify({ client, url, ...(stack.tls ? { caFile: stack.endpoints.rootCA } : {}) }),
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
    const runs = await interleave(
      P.clientRuns,
      CLIENTS.map((c) => () => runClient(stack, img, c)),
    );
    const g = P.throughputSize / GiB;
    out[transport] = Object.fromEntries(
      CLIENTS.map((c, i) => {
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
  return out;
}
