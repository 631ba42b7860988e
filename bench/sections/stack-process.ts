/**
 * A local stack in its own process for the fleet and soak benchmarks: `node <root>/bin/ota.js dev` of this
 * checkout, or of a built earlier checkout (`--baseline DIR`, the "before" of a before/after), on free
 * ports in a temp data dir that is removed afterwards.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface StackProcess {
  proc: ChildProcess;
  pid: number;
  dataDir: string;
  close(): Promise<void>;
}

export async function startStackProcess(root: string, extra: string[] = []): Promise<StackProcess> {
  if (!existsSync(join(root, 'bin/ota.js'))) throw new Error(`${root}: no bin/ota.js`);
  const dataDir = await mkdtemp(join(tmpdir(), 'ota-bench-fleet-stack-'));
  const ports = ['mqtt', 'ws', 'wss', 'iot', 's3'].flatMap((p) => [`--${p}-port`, '0']);
  const proc = spawn(
    process.execPath,
    [join(root, 'bin/ota.js'), 'dev', '--data-dir', dataDir, ...ports, '--log-level', 'warn', ...extra],
    { stdio: ['ignore', 'pipe', 'inherit'], cwd: root },
  );
  try {
    await new Promise<void>((res, rej) => {
      let out = '';
      const timer = setTimeout(() => rej(new Error(`ota dev did not start: ${out}`)), 60_000);
      proc.stdout?.on('data', (d: Buffer) => {
        out += d;
        if (out.includes('is ready')) {
          clearTimeout(timer);
          res();
        }
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        rej(new Error(`ota dev exited (${code}): ${out}`));
      });
    });
  } catch (err) {
    proc.kill('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  proc.stdout?.resume();
  return {
    proc,
    pid: proc.pid as number,
    dataDir,
    close: async () => {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await exited;
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** 1-, 5- and 15-minute load averages: above nproc, the machine was busy and times are inflated. */
export function loadAverage(): string {
  return existsSync('/proc/loadavg')
    ? readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')
    : '';
}
