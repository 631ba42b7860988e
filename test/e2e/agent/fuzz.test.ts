import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { AgentEvent, JobSummary } from '../../../src/device/agent.ts';
import {
  agentConfig,
  createJob,
  debris,
  describeExecution,
  putFirmware,
  runAgent,
  sha256,
  startWorld,
  type World,
} from './helpers.ts';

/**
 * Mutated job documents through the real local stack and the real agent. Each must end
 * REJECTED or FAILED with a one-line reason (or SUCCEEDED, when the mutation left a valid document), with
 * no crash, nothing left in the download dir, and the next valid job SUCCEEDED. CreateJob refusing a
 * document (too large, too deep) counts as refused at the door.
 *
 *   OTA_FUZZ_COUNT=5000 OTA_FUZZ_SEED=1234 TEST_FILTER=fuzz npm test     # the long run
 *
 * URLs are built from parts and only ever name loopback or S3 hosts the agent maps to the local store:
 * fuzzing must not send a byte off this machine.
 */
const COUNT = Number(process.env.OTA_FUZZ_COUNT ?? 30);
const SEED = Number(process.env.OTA_FUZZ_SEED ?? Date.now() % 100_000);
/** A valid job after every this many mutated ones. */
const VALID_EVERY = 10;
const KEY = 'firmware/fuzz_1.0/fw.img';

/** mulberry32: small, seeded, good enough to pick mutations reproducibly. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;
  return { next, int, pick };
}
type Rng = ReturnType<typeof prng>;

const STRINGS = [
  '',
  ' ',
  'a',
  '\u0000',
  'fw\u0000.img',
  '\u202e\u0645\u0631\u062d\u0628\u0627',
  '😀🔥',
  '\ud800',
  '%ff',
  '%00',
  '..',
  '..\\..\\',
  '%2e%2e%2f',
  '%252e%252e',
  '\n',
  '\r\n',
  '"\'\\`$(reboot)',
  'x'.repeat(5000),
  'ü'.repeat(300),
  '41811020',
  '1.2.3-rc.1+build',
  'v1',
  '0',
  '-1',
  'us-west-2',
  'https://s3.amazonaws.com/',
  'ECDSA-P256-SHA256',
];
const NUMBERS = [
  0,
  -0,
  1,
  -1,
  0.5,
  1e308,
  -1e308,
  2 ** 53,
  2 ** 53 + 2,
  1e-300,
  64 * 1024 ** 3,
  64 * 1024 ** 3 + 1,
];

function randomValue(r: Rng, depth = 0): unknown {
  const k = r.int(depth > 3 ? 4 : 7);
  switch (k) {
    case 0:
      return null;
    case 1:
      return r.next() < 0.5;
    case 2:
      return r.pick(NUMBERS);
    case 3:
      return r.pick(STRINGS);
    case 4:
      return Array.from({ length: r.int(4) }, () => randomValue(r, depth + 1));
    case 5: {
      const o: Record<string, unknown> = {};
      for (let i = r.int(4); i > 0; i--)
        o[r.pick(['firmware', 'url', 'size', '__proto__', 'constructor', 'x', '😀', ''])] = randomValue(
          r,
          depth + 1,
        );
      return o;
    }
    default:
      return nest(r.int(70), randomValue(r, 5));
  }
}

function nest(depth: number, leaf: unknown): unknown {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { n: v };
  return v;
}

/** A URL from parts, never naming a host outside loopback or S3 (mapped to the local store). */
function randomUrl(r: Rng, bucket: string, s3Port: string): string {
  const scheme = r.pick(['https', 'https', 'http', 's3', 'ftp', 'file', 'javascript', 'data', '']);
  const host = r.pick([
    's3.amazonaws.com',
    `${bucket}.s3.us-west-2.amazonaws.com`,
    's3.us-west-2.amazonaws.com',
    `127.0.0.1:${s3Port}`,
    '127.0.0.1:1',
    'localhost:1',
    '[::1]:1',
    'user:pw@127.0.0.1:1',
  ]);
  const segs = Array.from({ length: 1 + r.int(4) }, () =>
    r.pick([
      'firmware',
      'fuzz_1.0',
      'fw.img',
      bucket,
      '..',
      '.',
      '',
      '%2e%2e',
      '..%5c..',
      '%ff',
      '%00',
      'a\\b',
      '😀',
      'x'.repeat(300),
      '%E2%80%AE',
    ]),
  );
  const path =
    host.startsWith(bucket) || host.startsWith('127.0.0.1:1')
      ? segs.join('/')
      : `${bucket}/${segs.join('/')}`;
  const query = r.pick(['', '', '?a=1', '?versionId=x', '#frag', '?%zz']);
  const url =
    scheme === 's3'
      ? `s3://${bucket}/${segs.join('/')}`
      : `${scheme}${scheme ? '://' : ''}${host}/${path}${query}`;
  return r.next() < 0.1 ? r.pick(STRINGS) : url;
}

function mutate(r: Rng, valid: Record<string, unknown>, bucket: string, s3Port: string): unknown {
  const fw = { ...(valid.firmware as Record<string, unknown>) };
  const doc: Record<string, unknown> = { firmware: fw };
  const fields = ['version', 'size', 'region', 'url', 'sha256', 'name', 'deviceType', 'signature'];
  for (let n = 1 + r.int(3); n > 0; n--) {
    const what = r.int(8);
    const f = r.pick(fields);
    if (what === 0) delete fw[f];
    else if (what === 1) fw[f] = randomValue(r);
    else if (what === 2) fw.url = randomUrl(r, bucket, s3Port);
    else if (what === 3) doc[r.pick(['meta', 'firmware2', 'x'])] = randomValue(r);
    else if (what === 4)
      fw.size = r.pick([...NUMBERS, (fw.size as number) + 1, (fw.size as number) - 1, '10']);
    else if (what === 5)
      // never a valid version above the valid jobs' own (200 digits), which must keep succeeding
      fw.version = r.pick([
        ...STRINGS,
        ...NUMBERS,
        '9'.repeat(257 + r.int(40)),
        '0'.repeat(r.int(40)),
        `${fw.version}.0.0-x`,
      ]);
    else if (what === 6) fw.signature = randomValue(r);
    else return r.next() < 0.5 ? randomValue(r) : nest(r.int(80), doc);
  }
  return doc;
}

/** Waits for each job's `job-result` without scanning every event of a long run. */
function results() {
  const done = new Map<string, JobSummary>();
  const waiters = new Map<string, (j: JobSummary) => void>();
  return {
    onEvent(e: AgentEvent) {
      if (e.type !== 'job-result') return;
      done.set(e.job.jobId, e.job);
      waiters.get(e.job.jobId)?.(e.job);
    },
    wait(jobId: string, ms = 20_000): Promise<JobSummary> {
      const have = done.get(jobId);
      if (have) return Promise.resolve(have);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`${jobId}: no result within ${ms} ms`)), ms);
        waiters.set(jobId, (j) => {
          clearTimeout(t);
          resolve(j);
        });
      });
    },
  };
}

describe(`fuzz: ${COUNT} mutated job documents through the real stack (seed ${SEED})`, () => {
  let w: World;
  let image: Buffer;
  before(async () => {
    w = await startWorld();
    image = await putFirmware(w, KEY, 10_000);
  });
  after(async () => {
    await w.close();
  });

  test('every job ends with a one-line reason, nothing left behind, the agent keeps serving', async (t) => {
    const r = prng(SEED);
    const thing = 'Cam_fuzz';
    const config = await agentConfig(w, thing, {
      once: false,
      currentVersion: '1',
      downloadRetryWindowMs: 300,
      progressIntervalMs: 1000,
    });
    const s3Port = new URL(w.stack.endpoints.s3.endpoint).port;
    const res = results();
    const run = runAgent(config, (e) => res.onEvent(e));
    const tally = { door: 0, SUCCEEDED: 0, REJECTED: 0, FAILED: 0, other: 0 };
    const committed = new Set<string>();
    let version = 0;
    const nextVersion = () => `1${String(++version).padStart(199, '0')}`;
    const valid = () => ({
      firmware: {
        version: nextVersion(),
        size: image.length,
        region: 'us-west-2',
        url: `https://s3.amazonaws.com/${w.bucket}/${KEY}`,
        sha256: sha256(image),
      },
    });
    let agentCrashed: unknown;
    run.done.catch((err: unknown) => {
      agentCrashed = err;
    });
    try {
      for (let i = 0; i < COUNT + Math.ceil(COUNT / VALID_EVERY); i++) {
        const isValid = i % (VALID_EVERY + 1) === VALID_EVERY;
        const doc = isValid ? valid() : mutate(r, valid(), w.bucket, s3Port);
        const jobId = `fuzz-${SEED}-${i}`;
        const text = JSON.stringify(doc) ?? 'null';
        try {
          await createJob(w, thing, jobId, text);
        } catch {
          assert.ok(!isValid, `CreateJob refused a valid document: ${text.slice(0, 300)}`);
          tally.door++;
          continue;
        }
        const job = await res.wait(jobId);
        assert.equal(agentCrashed, undefined);
        const what = `${jobId}: ${text.slice(0, 300)}`;
        if (isValid) assert.equal(job.status, 'SUCCEEDED', `${what} → ${job.reason}`);
        if (job.status === 'SUCCEEDED' && job.fileName) committed.add(job.fileName);
        if (job.status === 'SUCCEEDED' || job.status === 'REJECTED' || job.status === 'FAILED')
          tally[job.status]++;
        else {
          tally.other++;
          assert.fail(`${what} ended ${job.status}: ${job.reason}`);
        }
        const exec = await describeExecution(w, thing, jobId);
        assert.equal(exec?.status, job.status, what);
        if (job.status !== 'SUCCEEDED') {
          const reason = exec?.statusDetails?.detailsMap?.reason ?? '';
          assert.ok(reason.length > 0 && reason.length <= 1024, `${what}: reason ${JSON.stringify(reason)}`);
          // biome-ignore lint/suspicious/noControlCharactersInRegex: a one-line reason has none of them
          assert.doesNotMatch(reason, /[\r\n\u0000]/, what);
        }
        // nothing left behind: no partials or temp files, and no image but committed ones
        assert.deepEqual(debris(config.downloadDir), [], what);
        const images = existsSync(config.downloadDir)
          ? readdirSync(config.downloadDir).filter((n) => !n.startsWith('.'))
          : [];
        for (const n of images) assert.ok(committed.has(n), `${what}: left ${n}`);
      }
      assert.equal(run.handle.connectionState, 'connected');
      t.diagnostic(`seed ${SEED}: ${JSON.stringify(tally)}`);
      assert.ok(tally.REJECTED + tally.FAILED >= Math.floor(COUNT / 2), JSON.stringify(tally));
    } finally {
      await run.handle.stop();
    }
  });
});
