import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/**
 * Resource figures of a process, read from Linux procfs (proc(5)): `/proc/<pid>/status` VmHWM (peak
 * resident set) and VmRSS, `/proc/<pid>/stat` utime/stime (fields 14 and 15, in clock ticks). Elsewhere
 * these return undefined: the benchmarks and the simulator then leave the figure out instead of guessing.
 */
export interface ProcStats {
  pid: number;
  /** Peak resident set size (VmHWM), bytes. */
  peakRssBytes: number;
  /** Current resident set size (VmRSS), bytes. */
  rssBytes: number;
  /** User and system CPU seconds since the process started. */
  userSec: number;
  sysSec: number;
  /** Open file descriptors (entries of /proc/<pid>/fd); undefined where procfs is not readable. */
  fds?: number;
}

function fdCount(pid: number | 'self'): number | undefined {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
}

/** USER_HZ: the kernel reports times in /proc in 1/100 s on every Linux architecture node runs on. */
const CLOCK_TICKS_PER_SEC = 100;

function kibField(status: string, name: string): number | undefined {
  const m = new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(status);
  return m?.[1] ? Number(m[1]) * 1024 : undefined;
}

export function readProcStats(pid: number): ProcStats | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state), so utime (field 14) is rest[11] and stime (field 15) rest[12].
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    const peak = kibField(status, 'VmHWM');
    const rss = kibField(status, 'VmRSS');
    if (peak === undefined || rss === undefined || !Number.isFinite(utime) || !Number.isFinite(stime)) {
      return undefined;
    }
    const fds = fdCount(pid);
    return {
      pid,
      peakRssBytes: peak,
      rssBytes: rss,
      userSec: utime / CLOCK_TICKS_PER_SEC,
      sysSec: stime / CLOCK_TICKS_PER_SEC,
      ...(fds !== undefined ? { fds } : {}),
    };
  } catch {
    return undefined;
  }
}

/** This process, portably: process.resourceUsage() (maxRSS in KiB, CPU in microseconds). */
export function ownStats(): ProcStats {
  const u = process.resourceUsage();
  const fds = fdCount('self');
  return {
    pid: process.pid,
    peakRssBytes: u.maxRSS * 1024,
    rssBytes: process.memoryUsage.rss(),
    userSec: u.userCPUTime / 1e6,
    sysSec: u.systemCPUTime / 1e6,
    ...(fds !== undefined ? { fds } : {}),
  };
}

/**
 * The pid of the process listening on a local TCP port (the running `ota dev`), from /proc/net/tcp{,6}
 * (state 0A = LISTEN) and the socket inodes in /proc/<pid>/fd. Only processes of the same user are
 * visible; undefined when it cannot be found.
 */
export function findListeningPid(port: number): number | undefined {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode
      if (f[1]?.endsWith(`:${hexPort}`) && f[3] === '0A' && f[9]) inodes.add(`socket:[${f[9]}]`);
    }
  }
  if (inodes.size === 0) return undefined;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return undefined;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (inodes.has(readlinkSync(`/proc/${pid}/fd/${fd}`))) return Number(pid);
      } catch {
        // The fd closed while we looked.
      }
    }
  }
  return undefined;
}
