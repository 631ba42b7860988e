/**
 * Parallel ranged GETs on a long, capped link, and `--max-rate`.
 *
 * The link is src/operator/paced-link.ts (the same proxy the tests use) in front of the stack's S3
 * endpoint: `rttMs` of round trip (plus one more at connect, the TCP handshake), each connection capped at
 * `perConnection` bytes/s, all of them together at 8× that. One stream can therefore get 1/8 of the link;
 * the agent (library child, `--connections auto`) must reach ≥ 90 % of it. The download phase (first
 * request → file renamed, after sha256 and fsync) is the clock, so start-up of the connections, the
 * adaptive probing and the tail all count.
 *
 * `--max-rate`: the achieved rate (image / download phase) against the cap, on loopback (one connection
 * would go far faster) and through the link with 8 connections sharing the bucket.
 */

import { startLink } from '../../src/operator/paced-link.ts';
import { type Dist, dist, f, fd, log, MiB, mib } from '../lib/measure.ts';
import { type AgentRun, runAgentChild } from '../lib/runners.ts';
import { type Image, type Stack, uploadImage } from '../lib/stack.ts';
import type { Params } from './params.ts';

interface LinkRun {
  run: AgentRun;
  /** Most connections the link saw at once. */
  connections: number;
}

export async function ranges(stack: Stack, thing: string, scratch: string, P: Params) {
  const R = P.ranges;
  const total = 8 * R.perConnection;
  log(
    `ranges: link ${R.rttMs} ms RTT, ${R.perConnection} B/s per connection, ${total} B/s in total; ` +
      `${R.size} bytes × ${R.runs} (auto), ${R.singleSize} bytes (1 connection)`,
  );
  const throughLink = async (img: Image, flags: Record<string, unknown>): Promise<LinkRun> => {
    const link = await startLink({
      upstream: stack.endpoints.s3.endpoint,
      rttMs: R.rttMs,
      perConnectionBytesPerSec: R.perConnection,
      totalBytesPerSec: total,
    });
    try {
      const run = await runAgentChild(stack, thing, img, scratch, { s3Endpoint: link.endpoint, ...flags });
      return { run, connections: link.stats().maxConcurrent };
    } finally {
      await link.close();
    }
  };
  const img = await uploadImage(stack, scratch, R.size);
  const single = await uploadImage(stack, scratch, R.singleSize);
  const auto: LinkRun[] = [];
  for (let i = 0; i < R.runs; i++) auto.push(await throughLink(img, {}));
  const one = await throughLink(single, { connections: 1 });
  const eight = await throughLink(img, { connections: 8 });
  const onLink = (runs: LinkRun[], size: number) => ({
    downloadSec: dist(runs.map((x) => x.run.downloadSec)),
    MiBps: dist(runs.map((x) => size / x.run.downloadSec / MiB)),
    ofLink: dist(runs.map((x) => size / x.run.downloadSec / total)),
    connections: dist(runs.map((x) => x.connections)),
    /** The library child's peak RSS (not the CLI's: no launcher V8 flags, docs/benchmarks.md). */
    peakRssMiB: dist(runs.map((x) => x.run.maxRssKiB / 1024)),
  });

  log(`ranges: --max-rate ${R.rate} B/s on loopback (${R.rateSize} bytes × ${R.runs})`);
  const rateImg = await uploadImage(stack, scratch, R.rateSize);
  const rateRuns: AgentRun[] = [];
  for (let i = 0; i < R.runs; i++)
    rateRuns.push(await runAgentChild(stack, thing, rateImg, scratch, { maxRate: R.rate }));
  log(`ranges: --max-rate ${R.linkRate} B/s through the link with --connections 8 (${R.linkRateSize} bytes)`);
  const linkRateImg = await uploadImage(stack, scratch, R.linkRateSize);
  const linkRate = await throughLink(linkRateImg, { connections: 8, maxRate: R.linkRate });
  const achieved = (runs: AgentRun[], size: number, cap: number) => ({
    cap,
    bytesPerSec: dist(runs.map((r) => size / r.downloadSec)),
    ofCap: dist(runs.map((r) => size / r.downloadSec / cap)),
  });
  return {
    link: { rttMs: R.rttMs, perConnectionBytesPerSec: R.perConnection, totalBytesPerSec: total },
    size: R.size,
    singleSize: R.singleSize,
    auto: onLink(auto, R.size),
    single: onLink([one], R.singleSize),
    fixed8: onLink([eight], R.size),
    maxRate: {
      loopback: { size: R.rateSize, ...achieved(rateRuns, R.rateSize, R.rate) },
      link8: { size: R.linkRateSize, ...achieved([linkRate.run], R.linkRateSize, R.linkRate) },
    },
  };
}

type Row = [string, string, string, string];

/** The section's rows of the bench table. */
export function rangesRows(x: unknown, quick: boolean): Row[] {
  if (!x) return [];
  const r = x as {
    link: { rttMs: number; perConnectionBytesPerSec: number; totalBytesPerSec: number };
    size: number;
    singleSize: number;
    auto: Record<string, Dist>;
    single: Record<string, Dist>;
    fixed8: Record<string, Dist>;
    maxRate: Record<'loopback' | 'link8', { size: number; cap: number; bytesPerSec: Dist; ofCap: Dist }>;
  };
  const ok = (b: boolean) => (quick ? '(quick)' : b ? 'met' : '**missed**');
  const kib = (n: number) => `${f(n / 1024, 0)} KiB/s`;
  const pct = (x: Dist) => `${f(x.median * 100, 1)} % (${f(x.min * 100, 1)}–${f(x.max * 100, 1)})`;
  const L = r.link;
  const linkName = `link ${L.rttMs} ms RTT, ${kib(L.perConnectionBytesPerSec)} per connection, ${kib(L.totalBytesPerSec)} in all`;
  const row = (what: string, size: number, v: Record<string, Dist>, target: string, result: string): Row => [
    `${what}, ${mib(size)}, ${linkName}: download phase · MiB/s · share of the link · connections · peak RSS (library child)`,
    `${fd(v.downloadSec as Dist, 1)} s · ${f((v.MiBps as Dist).median)} · ${pct(v.ofLink as Dist)} · ${f((v.connections as Dist).median, 0)} · ${f((v.peakRssMiB as Dist).median, 1)} MiB`,
    target,
    result,
  ];
  const rate = (what: string, v: { size: number; cap: number; bytesPerSec: Dist; ofCap: Dist }): Row => [
    `--max-rate ${kib(v.cap)}, ${what}, ${mib(v.size)}: achieved · / cap`,
    `${kib(v.bytesPerSec.median)} · ${fd(v.ofCap, 3)}`,
    'within 5 %',
    ok(Math.abs(v.ofCap.median - 1) <= 0.05),
  ];
  return [
    row('Ranges auto', r.size, r.auto, '≥ 90 % of the link', ok((r.auto.ofLink as Dist).median >= 0.9)),
    row('One connection', r.singleSize, r.single, '(info: 1/8 = 12.5 %)', ''),
    row('--connections 8', r.size, r.fixed8, '(info: the ceiling)', ''),
    rate('loopback', r.maxRate.loopback),
    rate('through the link, --connections 8', r.maxRate.link8),
  ];
}
