/**
 * How the benchmarks measure a process: wall time, CPU and peak RSS of one child, taken the same way for
 * the agent, curl and boto3, plus the small statistics helpers (median, min–max) the tables print.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** Everything that broke (an OTA not SUCCEEDED, a wrong sha256, a tool's error): the run then fails. */
export const problems: string[] = [];
export const log = (s: string) => process.stderr.write(`bench: ${s}\n`);

export interface Measured {
  wallSec: number;
  userSec: number;
  sysSec: number;
  maxRssKiB: number;
  stdout: string;
  stderr: string;
  code: number;
  /** Date.now() just before the child was started (to place its log timestamps). */
  spawnedAtMs: number;
}

/**
 * The wrapper runs the command and reads getrusage(RUSAGE_CHILDREN): user/sys CPU and ru_maxrss (KiB, the
 * child's VmHWM). It is Debian's /usr/bin/python3 when present: a pyenv shim first on PATH would run
 * shell scripts before exec'ing python, and rusage accumulates across exec, which added ~0.4 s of
 * someone else's CPU to every figure.
 */
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const WRAPPER = `
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
wall = time.perf_counter() - t0
r = resource.getrusage(resource.RUSAGE_CHILDREN)
sys.stderr.buffer.write(p.stderr)
sys.stderr.write("\\n" + json.dumps({"wall": wall, "user": r.ru_utime, "sys": r.ru_stime, "maxrss": r.ru_maxrss, "code": p.returncode}) + "\\n")
sys.stdout.buffer.write(p.stdout)
`;

export function measure(cmd: string[], env: NodeJS.ProcessEnv = process.env): Promise<Measured> {
  return new Promise((res, rej) => {
    const spawnedAtMs = Date.now();
    const child = spawn(PYTHON, ['-c', WRAPPER, ...cmd], {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: ROOT,
      env,
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d;
    });
    child.on('error', rej);
    child.on('close', () => {
      const lines = err.trimEnd().split('\n');
      const last = lines.pop() ?? '';
      try {
        const m = JSON.parse(last) as {
          wall: number;
          user: number;
          sys: number;
          maxrss: number;
          code: number;
        };
        res({
          wallSec: m.wall,
          userSec: m.user,
          sysSec: m.sys,
          maxRssKiB: m.maxrss,
          stdout: out,
          stderr: lines.join('\n'),
          code: m.code,
          spawnedAtMs,
        });
      } catch {
        rej(new Error(`measure ${cmd.join(' ')}: ${err}`));
      }
    });
  });
}

export const cpuSec = (m: { userSec: number; sysSec: number }) => m.userSec + m.sysSec;

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB })) h.update(chunk as Buffer);
  return h.digest('hex');
}

export interface Dist {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function dist(xs: number[]): Dist {
  const s = [...xs].filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  const m = s.length >> 1;
  const median = s.length % 2 ? (s[m] ?? Number.NaN) : ((s[m - 1] ?? Number.NaN) + (s[m] ?? Number.NaN)) / 2;
  return { median, min: s[0] ?? Number.NaN, max: s.at(-1) ?? Number.NaN, n: s.length };
}

/** Pairs run i of `a` with run i of `b` (adjacent in time) and takes the distribution of a/b. */
export function ratios(a: number[], b: number[]): Dist {
  return dist(a.map((x, i) => x / (b[i] ?? Number.NaN)));
}

export const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
export const fd = (x: Dist, d = 2) => `${f(x.median, d)} (${f(x.min, d)}–${f(x.max, d)})`;
export const mib = (n: number) =>
  n >= GiB ? `${f(n / GiB, 0)} GiB` : n >= MiB ? `${f(n / MiB, 1)} MiB` : `${n} B`;

/**
 * Runs `fns` `runs` times, interleaved, rotating which goes first in each round, so a slow patch of the
 * (shared, noisy) machine hits every contender alike. Returns each contender's runs in order.
 */
export async function interleave<T>(runs: number, fns: Array<() => Promise<T>>): Promise<T[][]> {
  const out: T[][] = fns.map(() => []);
  for (let r = 0; r < runs; r++) {
    for (let k = 0; k < fns.length; k++) {
      const i = (k + r) % fns.length;
      out[i]?.push(await (fns[i] as () => Promise<T>)());
    }
  }
  return out;
}

/** 1-, 5- and 15-minute load averages: above nproc, the machine was busy and times are inflated. */
export function loadAverage(): string {
  return existsSync('/proc/loadavg')
    ? readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')
    : '';
}
