/**
 * Download benchmarks: the agent against curl at the original's image size (throughput), memory and
 * message cost (library child), and the 1 GiB whole OTA of `ota agent` against curl, curl + sync and
 * boto3's download_file (gib).
 */

import { cpuSec, dist, GiB, interleave, log, type Measured, MiB, ratios } from '../lib/measure.ts';
import { type AgentRun, haveBoto3, runAgentChild, runBoto3, runCliAgent, runCurl } from '../lib/runners.ts';
import { type Stack, uploadImage } from '../lib/stack.ts';
import type { Params } from './params.ts';

export async function throughput(stack: Stack, thing: string, scratch: string, P: Params) {
  log(
    `throughput${stack.tls ? ' (https)' : ''}: ${P.throughputSize} bytes, ${P.runs} runs each, interleaved`,
  );
  const img = await uploadImage(stack, scratch, P.throughputSize);
  await runCurl(stack, img, scratch); // warm the page cache for every contender
  const [agent = [], curl = [], curlVerified = []] = (await interleave<Measured | AgentRun>(P.runs, [
    () => runAgentChild(stack, thing, img, scratch),
    () => runCurl(stack, img, scratch),
    () => runCurl(stack, img, scratch, { sha256sum: true, sync: true }),
  ])) as [AgentRun[], Measured[], Measured[]];
  const gib = P.throughputSize / GiB;
  const wall = (xs: Measured[]) => xs.map((r) => r.wallSec);
  return {
    runs: agent,
    result: {
      size: P.throughputSize,
      tls: stack.tls,
      curlSec: dist(wall(curl)),
      agentDownloadSec: dist(agent.map((r) => r.downloadSec)),
      agentOtaSec: dist(agent.map((r) => r.otaSec)),
      curlMiBps: P.throughputSize / MiB / dist(wall(curl)).median,
      agentDownloadMiBps: P.throughputSize / MiB / dist(agent.map((r) => r.downloadSec)).median,
      ratioDownload: ratios(
        agent.map((r) => r.downloadSec),
        wall(curl),
      ),
      ratioOta: ratios(
        agent.map((r) => r.otaSec),
        wall(curl),
      ),
      curlVerifiedSec: dist(wall(curlVerified)),
      ratioDownloadVerified: ratios(
        agent.map((r) => r.downloadSec),
        wall(curlVerified),
      ),
      agentCpuPerGiB: dist(agent.map((r) => cpuSec(r) / gib)),
      curlCpuPerGiB: dist(curl.map((r) => cpuSec(r) / gib)),
      ratioCpu: ratios(agent.map(cpuSec), curl.map(cpuSec)),
      agentPeakRssMiB: dist(agent.map((r) => r.maxRssKiB / 1024)),
    },
  };
}

/** Peak RSS and message cost of the library child on a small and a large image (one OTA each). */
export async function memory(stack: Stack, thing: string, scratch: string, P: Params, first?: AgentRun) {
  log(`memory: ${P.memSmall} and ${P.memLarge} bytes`);
  const smallImg = await uploadImage(stack, scratch, P.memSmall);
  const small = await runAgentChild(stack, thing, smallImg, scratch);
  const largeImg = await uploadImage(stack, scratch, P.memLarge);
  const large = await runAgentChild(stack, thing, largeImg, scratch);
  return {
    memory: {
      smallSize: P.memSmall,
      largeSize: P.memLarge,
      smallPeakMiB: small.maxRssKiB / 1024,
      largePeakMiB: large.maxRssKiB / 1024,
      ratio: large.maxRssKiB / small.maxRssKiB,
    },
    messages: {
      ...(first
        ? {
            throughputImage: {
              size: P.throughputSize,
              progressMessages: first.progressMessages,
              jobUpdates: first.jobUpdates,
              downloadSec: first.downloadSec,
            },
          }
        : {}),
      largeImage: {
        size: P.memLarge,
        progressMessages: large.progressMessages,
        jobUpdates: large.jobUpdates,
        downloadSec: large.downloadSec,
      },
    },
  };
}

/**
 * The 1 GiB whole OTA as users run it: `ota agent --once` (whole process: start-up, MQTT, start-next,
 * download + sha256 + fsync + rename, SUCCEEDED) against `curl -o` + `sync` of the same object (the
 * like-for-like baseline: the agent also makes the file durable), plain curl, and boto3's download_file.
 * Peak RSS of the same CLI runs, and of the CLI on the original's image size, are the footprint figures.
 */
export async function gib(stack: Stack, thing: string, scratch: string, P: Params) {
  log(`gib: ${P.gibSize} bytes, ${P.gibRuns} runs each, interleaved (ota agent, curl + sync, curl, boto3)`);
  const img = await uploadImage(stack, scratch, P.gibSize);
  const boto3 = await haveBoto3();
  if (!boto3)
    log('gib: /usr/bin/python3 has no boto3 (apt-get install python3-boto3): boto3 column left out');
  await runCurl(stack, img, scratch); // page cache
  const fns: Array<() => Promise<Measured>> = [
    () => runCliAgent(stack, thing, scratch, { image: img }),
    () => runCurl(stack, img, scratch, { sync: true }),
    () => runCurl(stack, img, scratch),
  ];
  if (boto3) fns.push(() => runBoto3(stack, img, scratch));
  if (P.baseline) fns.push(() => runCliAgent(stack, thing, scratch, { image: img, root: P.baseline }));
  const runs = await interleave(P.gibRuns, fns);
  const [agent = [], curlSync = [], curl = []] = runs;
  const boto = boto3 ? (runs[3] ?? []) : [];
  const base = P.baseline ? (runs.at(-1) ?? []) : [];
  const w = (xs: Measured[]) => xs.map((r) => r.wallSec);
  const g = P.gibSize / GiB;
  log(`footprint: ota agent CLI on ${P.throughputSize} bytes, ${P.runs} runs`);
  const smallImg = await uploadImage(stack, scratch, P.throughputSize);
  const smallFns = [() => runCliAgent(stack, thing, scratch, { image: smallImg })];
  if (P.baseline)
    smallFns.push(() => runCliAgent(stack, thing, scratch, { image: smallImg, root: P.baseline }));
  const [small = [], smallBase = []] = await interleave(P.runs, smallFns);
  return {
    size: P.gibSize,
    agentSec: dist(w(agent)),
    curlSyncSec: dist(w(curlSync)),
    curlSec: dist(w(curl)),
    ...(boto3 ? { boto3Sec: dist(w(boto)), ratioBoto3: ratios(w(agent), w(boto)) } : {}),
    ratioCurlSync: ratios(w(agent), w(curlSync)),
    ratioCurl: ratios(w(agent), w(curl)),
    agentCpuPerGiB: dist(agent.map((r) => cpuSec(r) / g)),
    curlCpuPerGiB: dist(curl.map((r) => cpuSec(r) / g)),
    curlSyncCpuPerGiB: dist(curlSync.map((r) => cpuSec(r) / g)),
    ratioCpu: ratios(agent.map(cpuSec), curl.map(cpuSec)),
    ...(boto3 ? { boto3CpuPerGiB: dist(boto.map((r) => cpuSec(r) / g)) } : {}),
    agentPeakRssMiB: dist(agent.map((r) => r.maxRssKiB / 1024)),
    curlPeakRssMiB: dist(curl.map((r) => r.maxRssKiB / 1024)),
    ...(boto3 ? { boto3PeakRssMiB: dist(boto.map((r) => r.maxRssKiB / 1024)) } : {}),
    smallSize: P.throughputSize,
    smallAgentPeakRssMiB: dist(small.map((r) => r.maxRssKiB / 1024)),
    ...(P.baseline
      ? {
          baselineSec: dist(w(base)),
          baselineRatioCurlSync: ratios(w(base), w(curlSync)),
          baselineCpuPerGiB: dist(base.map((r) => cpuSec(r) / g)),
          baselinePeakRssMiB: dist(base.map((r) => r.maxRssKiB / 1024)),
          baselineSmallPeakRssMiB: dist(smallBase.map((r) => r.maxRssKiB / 1024)),
        }
      : {}),
  };
}
