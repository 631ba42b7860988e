import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Endpoints } from '../../../src/shared/endpoints.ts';

/** The `ota` command as a user runs it (bin/ota.js: the compiled CLI, or the sources through tsx). */
export const OTA_BIN = resolve(import.meta.dirname, '../../../bin/ota.js');

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export const quietEnv = () => ({ ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' });

/** What a child wrote so far on stdout and stderr. */
export function collectOutput(child: ChildProcess): { stdout(): string; stderr(): string } {
  let out = '';
  let err = '';
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    err += d;
  });
  return { stdout: () => out, stderr: () => err };
}

export interface OtaRunOptions {
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Another installed copy's bin/ota.js (default: this checkout's). */
  bin?: string;
  cwd?: string;
}

export function ota(args: string[], opts: OtaRunOptions = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [opts.bin ?? OTA_BIN, ...args], {
      env: { ...quietEnv(), ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(opts.cwd !== undefined && { cwd: opts.cwd }),
    });
    const output = collectOutput(child);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`ota ${args.join(' ')} timed out\n${output.stdout()}\n${output.stderr()}`));
    }, opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout: output.stdout(), stderr: output.stderr() });
    });
  });
}

/** A long-running `ota` process (an agent to stop with a signal): its output so far, and its exit. */
export interface OtaProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<number | null>;
}

export function spawnOta(args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): OtaProcess {
  const child = spawn(process.execPath, [OTA_BIN, ...args], {
    env: { ...quietEnv(), ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  return { child, ...collectOutput(child), exited };
}

export interface DevProcess {
  child: ChildProcess;
  endpoints: Endpoints;
  output(): string;
  exited: Promise<number | null>;
}

/** Starts `ota dev` on free ports and waits for its endpoints.json and banner. */
export async function startDev(dataDir: string, extra: string[] = []): Promise<DevProcess> {
  const child = spawn(
    process.execPath,
    [
      OTA_BIN,
      'dev',
      '--data-dir',
      dataDir,
      '--mqtt-port',
      '0',
      '--ws-port',
      '0',
      '--wss-port',
      '0',
      '--iot-port',
      '0',
      '--s3-port',
      '0',
      '--dashboard-port',
      '0',
      '--log-level',
      'warn',
      ...extra,
    ],
    { env: quietEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    out += d;
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const deadline = Date.now() + 30_000;
  while (!out.includes('local AWS IoT stack is ready')) {
    if (child.exitCode !== null) throw new Error(`ota dev exited early:\n${out}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`ota dev did not become ready:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const file = join(dataDir, 'endpoints.json');
  if (!existsSync(file)) throw new Error('endpoints.json missing after the banner');
  const endpoints = JSON.parse(readFileSync(file, 'utf8')) as Endpoints;
  return { child, endpoints, output: () => out, exited };
}
