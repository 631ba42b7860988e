import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { DescribeJobExecutionCommand, type IoTClient } from '@aws-sdk/client-iot';
import type { LocalStack } from '../../src/cloud/stack.ts';
import { iotClientFor } from '../../src/operator/clients.ts';
import type { Endpoints } from '../../src/shared/endpoints.ts';
import { startTestStack } from '../helpers/stack.ts';

/**
 * Shared pieces of the interop tests: standard, non-Node MQTT clients (Mosquitto's command-line clients,
 * Python paho-mqtt) against the embedded local AWS IoT stack. CI apt-installs the tools (`.ci/run`); a
 * missing tool is a failure there, never a skip.
 */

/** Debian's python3-paho-mqtt lives under the system interpreter, not whatever python3 is first on PATH. */
export const SYSTEM_PYTHON = '/usr/bin/python3';

/** Throws (so the test fails) when `tool` is not installed; `hint` says which package provides it. */
export function requireTool(tool: string, hint: string): string {
  if (tool.startsWith('/')) {
    if (!existsSync(tool)) throw new Error(`${tool} not found: install ${hint}`);
    return tool;
  }
  const r = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
  const path = r.stdout.trim();
  if (r.status !== 0 || !path) throw new Error(`${tool} not found on PATH: install ${hint}`);
  return path;
}

/** Throws unless the system Python can import paho.mqtt; returns its version. */
export function requirePaho(): string {
  requireTool(SYSTEM_PYTHON, 'python3');
  const r = spawnSync(SYSTEM_PYTHON, ['-c', 'import paho.mqtt; print(paho.mqtt.__version__)'], {
    encoding: 'utf8',
  });
  if (r.status !== 0)
    throw new Error(`${SYSTEM_PYTHON} cannot import paho.mqtt: install python3-paho-mqtt\n${r.stderr}`);
  return r.stdout.trim();
}

export interface InteropWorld {
  dir: string;
  stack: LocalStack;
  endpoints: Endpoints;
  iot: IoTClient;
  close(): Promise<void>;
}

export async function startInteropWorld(prefix: string): Promise<InteropWorld> {
  // The tools run a subscriber and a publisher under one certificate at once, as the original's
  // `-m subscribe` in a second terminal did: that needs the looser client-id policy.
  const { dir, stack, close } = await startTestStack(`ota-interop-${prefix}`, {
    things: [],
    clientIds: 'any',
  });
  const iot = iotClientFor({ kind: 'local', endpoints: stack.endpoints });
  return {
    dir,
    stack,
    // endpoints.json is rewritten by ensureThing; the getter always gives the current things map.
    get endpoints() {
      return stack.endpoints;
    },
    iot,
    close: async () => {
      iot.destroy();
      await close();
    },
  };
}

export async function describeExecution(iot: IoTClient, thingName: string, jobId: string) {
  return (await iot.send(new DescribeJobExecutionCommand({ jobId, thingName }))).execution;
}

/** TLS options shared by mosquitto_sub and mosquitto_pub (MQTT 3.1.1, mutual TLS). */
export function mosquittoTlsArgs(
  ep: Endpoints,
  identity: { cert: string; key: string },
  opts: { host?: string; cafile?: string; clientId?: string } = {},
): string[] {
  const args = [
    '--cafile',
    opts.cafile ?? ep.rootCA,
    '--cert',
    identity.cert,
    '--key',
    identity.key,
    '-h',
    opts.host ?? '127.0.0.1',
    '-p',
    String(ep.mqtt.port),
    '-V',
    'mqttv311',
  ];
  if (opts.clientId) args.push('-i', opts.clientId);
  return args;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (killed after `timeoutMs`, so a hang fails the test instead of stalling it). */
export function run(
  cmd: string,
  args: string[],
  opts: { timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...opts.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A long-running child whose stdout is collected line by line as it comes (mosquitto_sub). */
export interface LineProcess {
  readonly lines: string[];
  readonly stderr: () => string;
  /** Resolves with the first line (old or new) matching `re`; rejects on timeout or exit. */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves when the process has exited (it is not killed). */
  exited: Promise<RunResult>;
  /** SIGTERM (the child only), then waits for exit. */
  stop(): Promise<RunResult>;
}

export function spawnLines(cmd: string, args: string[]): LineProcess {
  // Through a pipe, libc block-buffers stdout, so mosquitto_sub's lines would only appear at exit;
  // stdbuf (coreutils) makes them line-buffered. It execs the command, so the child pid is the tool's.
  const stdbuf = requireTool('stdbuf', 'coreutils');
  const child: ChildProcess = spawn(stdbuf, ['-oL', '-eL', cmd, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let partial = '';
  let stdout = '';
  let stderr = '';
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const w of [...waiters]) w();
  };
  child.stdout?.on('data', (d: Buffer) => {
    const s = d.toString();
    stdout += s;
    partial += s;
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
    notify();
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  let done = false;
  const exited = new Promise<RunResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (partial) lines.push(partial);
      partial = '';
      done = true;
      notify();
      resolve({ code, signal, stdout, stderr });
    });
  });
  // A failed spawn surfaces through waitForLine/stop; don't let it become an unhandled rejection here.
  exited.catch(() => {});
  return {
    lines,
    stderr: () => stderr,
    exited,
    waitForLine(re, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = lines.find((l) => re.test(l));
          if (hit !== undefined) {
            cleanup();
            resolve(hit);
          } else if (done) {
            cleanup();
            reject(
              new Error(`${cmd} exited before a line matched ${re}\nstdout:\n${stdout}\nstderr:\n${stderr}`),
            );
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out waiting for ${re}\nstdout:\n${stdout}\nstderr:\n${stderr}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async stop() {
      if (!done) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Splits a `mosquitto_sub -v` line into topic and JSON payload (null when it is not such a line). */
export function parseTopicLine(line: string): { topic: string; payload: Record<string, unknown> } | null {
  const m = /^(\S+) (\{.*\})$/.exec(line);
  if (!m?.[1] || !m[2]) return null;
  try {
    return { topic: m[1], payload: JSON.parse(m[2]) as Record<string, unknown> };
  } catch {
    return null;
  }
}

/** Seconds since the epoch, as AWS IoT Jobs replies carry them (docs/protocol.md, Wire format). */
export function isEpochSeconds(v: unknown): boolean {
  if (typeof v !== 'number' || !Number.isInteger(v)) return false;
  return Math.abs(v - Date.now() / 1000) < 600;
}
