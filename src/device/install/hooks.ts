import { type ChildProcessByStdio, spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { type Clock, systemClock, type TimerHandle } from '../../shared/clock.ts';
import { OtaError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { AgentConfig } from '../config/agent-config.ts';

/**
 * The device-specific half of an OTA: writing the image into the device, rebooting, the self-test, and
 * putting the old version back. Each is a hook: a shell command from the config (`--install-cmd`, …),
 * the built-in A/B installer (`--slots`, src/device/install/slots.ts), or a function given to startAgent (the
 * demo, the fleet simulator, tests).
 */
export type HookName = 'install' | 'reboot' | 'health' | 'rollback' | 'commit';

/** What a hook is told about the job; a command gets it as OTA_* environment variables. */
export interface HookCall {
  /** The verified image (OTA_FILE). */
  file: string;
  /** The version being installed (OTA_VERSION). */
  version: string;
  /** The version installed before (OTA_PREVIOUS_VERSION). */
  previousVersion: string;
  jobId: string;
  /** The job execution's number (OTA_EXECUTION_NUMBER): a retry of the job has the next one. */
  executionNumber?: number;
  /** The image's SHA-256, hex (OTA_SHA256). */
  sha256: string;
  /** Aborted when the agent stops (not passed to `reboot`: a reboot is never interrupted). */
  signal?: AbortSignal;
  logger: Logger;
  /** Each line the command writes, as it comes. */
  onOutput?: (line: string, stream: 'stdout' | 'stderr') => void;
}

export type Hook = (call: HookCall) => Promise<void>;

/** `commit` makes the new version the one to keep (the A/B installer's "known good" slot). */
export type DeviceHooks = Partial<Record<HookName, Hook>>;

/** A hook failed: its command exited non-zero, was killed, or timed out. The message ends in its stderr. */
export class HookError extends OtaError {
  readonly hook: HookName;
  readonly exitCode: number | undefined;
  readonly timedOut: boolean;
  constructor(
    hook: HookName,
    message: string,
    o: { exitCode?: number; timedOut?: boolean; cause?: unknown } = {},
  ) {
    super(`OTA_HOOK_${hook.toUpperCase()}`, message, o);
    this.hook = hook;
    this.exitCode = o.exitCode;
    this.timedOut = o.timedOut ?? false;
  }
}

/** How much of a failing command's stderr goes into the reason (statusDetails values are ≤ 1024). */
const STDERR_TAIL = 600;
/** After SIGTERM, a command gets this long to exit before SIGKILL. */
const KILL_GRACE_MS = 5000;
/**
 * Once the command has exited, how long its output may still take to arrive. A descendant that keeps
 * the pipes open (a daemon started with `setsid cmd &` without redirecting its output) would otherwise
 * hold the hook, and with it the OTA, for as long as it lives.
 */
const PIPE_DRAIN_MS = 1000;

function ellipsis(s: string, n: number): string {
  const t = s.trim().replace(/\s+/g, ' ');
  return t.length > n ? `…${t.slice(t.length - n)}` : t;
}

/** The OTA_* variables a hook command gets, added to the agent's environment. */
function hookEnv(call: HookCall): NodeJS.ProcessEnv {
  return {
    ...process.env,
    OTA_FILE: call.file,
    OTA_VERSION: call.version,
    OTA_PREVIOUS_VERSION: call.previousVersion,
    OTA_JOB_ID: call.jobId,
    ...(call.executionNumber !== undefined ? { OTA_EXECUTION_NUMBER: String(call.executionNumber) } : {}),
    OTA_SHA256: call.sha256,
    OTA_AGENT_PID: String(process.pid),
  };
}

/**
 * Runs `command` with `/bin/sh -c` in its own process group, with OTA_FILE, OTA_VERSION,
 * OTA_PREVIOUS_VERSION, OTA_JOB_ID, OTA_EXECUTION_NUMBER, OTA_SHA256 and OTA_AGENT_PID added to the
 * agent's environment. Its output goes to the log line by line; a failure's message ends with the tail
 * of its stderr.
 *
 * The hook is bounded, with everything it started: a timeout or an abort kills the whole process group
 * (SIGTERM, then SIGKILL after a grace period), and when the shell exits, whatever it left in its group
 * (`sleep 30 &`) is ended the same way. The hook's outcome is the shell's exit; output still held by a
 * descendant that left the group (`setsid daemon &`) is read for at most PIPE_DRAIN_MS. A hook that
 * must leave a service running starts it outside the hook (e.g. `systemctl start`, `systemd-run`), as
 * docs/agent.md says.
 */
export function shellHook(name: HookName, command: string, opts: { timeoutMs: number; clock?: Clock }): Hook {
  const clock = opts.clock ?? systemClock;
  return (call) =>
    new Promise<void>((resolve, reject) => {
      // An aborted signal fires no 'abort' for a listener added now: a command started after the stop
      // would run its whole course, and hold the stopping agent for as long.
      if (call.signal?.aborted) {
        reject(new HookError(name, `${name} command was stopped before it started`));
        return;
      }
      const child = spawn('/bin/sh', ['-c', command], {
        env: hookEnv(call),
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      const stderr = captureOutput(child, name, call);
      let why: 'timeout' | 'abort' | undefined;
      let killTimer: TimerHandle | undefined;
      let drainTimer: TimerHandle | undefined;
      let settled = false;
      const endGroup = () => {
        signalGroup(child.pid, 'SIGTERM');
        if (killTimer === undefined)
          killTimer = clock.setTimeout(() => signalGroup(child.pid, 'SIGKILL'), KILL_GRACE_MS);
      };
      const kill = (reason: 'timeout' | 'abort') => {
        if (why || child.exitCode !== null || child.signalCode !== null) return;
        why = reason;
        endGroup();
      };
      const timer = clock.setTimeout(() => kill('timeout'), opts.timeoutMs);
      const onAbort = () => kill('abort');
      call.signal?.addEventListener('abort', onAbort, { once: true });
      const finish = (err?: HookError) => {
        if (settled) return;
        settled = true;
        clock.clear(timer);
        clock.clear(drainTimer);
        call.signal?.removeEventListener('abort', onAbort);
        child.stdout?.destroy();
        child.stderr?.destroy();
        // Anything of the group that outlived SIGTERM: the hook is over, so is it.
        clock.clear(killTimer);
        signalGroup(child.pid, 'SIGKILL');
        if (err) reject(err);
        else resolve();
      };
      const outcome = (code: number | null, signal: NodeJS.Signals | null) => {
        if (code === 0 && !why) return undefined;
        const tail = ellipsis(stderr(), STDERR_TAIL);
        const how = howItEnded(why, code, signal, opts.timeoutMs);
        return new HookError(name, `${name} command ${how}${tail ? `: ${tail}` : ''}`, {
          ...(code !== null ? { exitCode: code } : {}),
          timedOut: why === 'timeout',
        });
      };
      child.on('error', (err) =>
        finish(new HookError(name, `${name} command could not start: ${err.message}`, { cause: err })),
      );
      child.on('exit', (code, signal) => {
        endGroup();
        drainTimer = clock.setTimeout(() => finish(outcome(code, signal)), PIPE_DRAIN_MS);
      });
      child.on('close', (code, signal) => finish(outcome(code, signal)));
    });
}

/** Passes the command's output on line by line; returns a reader of its stderr's tail. */
function captureOutput(
  child: ChildProcessByStdio<null, Readable, Readable>,
  name: HookName,
  call: HookCall,
): () => string {
  const emit = (line: string, stream: 'stdout' | 'stderr') => {
    call.logger[stream === 'stderr' ? 'warn' : 'info']({ hook: name, stream }, line.slice(0, 2000));
    call.onOutput?.(line, stream);
  };
  let stderr = '';
  child.stdout.on(
    'data',
    lineSplitter((l) => emit(l, 'stdout')),
  );
  const stderrLines = lineSplitter((l) => emit(l, 'stderr'));
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-4 * STDERR_TAIL);
    stderrLines(chunk);
  });
  return () => stderr;
}

/** Calls `onLine` for each complete, non-empty line of a byte stream (a partial line is bounded). */
function lineSplitter(onLine: (line: string) => void): (chunk: Buffer) => void {
  let buf = '';
  return (chunk) => {
    buf += chunk.toString('utf8');
    const parts = buf.split('\n');
    buf = (parts.pop() ?? '').slice(-64 * 1024);
    for (const line of parts) if (line !== '') onLine(line);
  };
}

function howItEnded(
  why: 'timeout' | 'abort' | undefined,
  code: number | null,
  signal: NodeJS.Signals | null,
  timeoutMs: number,
): string {
  if (why === 'timeout') return `timed out after ${Math.round(timeoutMs / 1000)} s`;
  if (why === 'abort') return 'was stopped';
  return code !== null ? `exited with code ${code}` : `was killed by ${signal}`;
}

function signalGroup(pid: number | undefined, sig: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, sig);
  } catch {
    // already gone
  }
}

/** The command hooks the config names (none set: the agent downloads and verifies only, as before). */
export function commandHooks(cfg: AgentConfig, clock?: Clock): DeviceHooks {
  const o = { timeoutMs: cfg.hookTimeoutMs, ...(clock ? { clock } : {}) };
  const hooks: DeviceHooks = {};
  if (cfg.installCmd) hooks.install = shellHook('install', cfg.installCmd, o);
  if (cfg.rebootCmd) hooks.reboot = shellHook('reboot', cfg.rebootCmd, o);
  if (cfg.healthCmd) hooks.health = shellHook('health', cfg.healthCmd, o);
  if (cfg.rollbackCmd) hooks.rollback = shellHook('rollback', cfg.rollbackCmd, o);
  return hooks;
}
