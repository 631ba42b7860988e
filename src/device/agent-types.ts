/** What startAgent (agent.ts) takes, returns and reports: the agent's contract with its callers. */

import type { Clock } from '../shared/clock.ts';
import type { Logger } from '../shared/log.ts';
import type { AgentConfig } from './config/agent-config.ts';
import type { DeviceHooks, HookName } from './install/hooks.ts';
import type { JobSummary, StepName } from './job-context.ts';
import type { ConnectionState } from './link/jobs-client.ts';

export interface AgentSummary {
  thingName: string;
  /** The most recent jobs (at most 100, oldest dropped), in processing order. */
  jobs: JobSummary[];
  jobsProcessed: number;
  /** Every MQTT publish the agent made (requests, progress, status updates). */
  messagesPublished: number;
  progressMessages: number;
  statusDetailsUpdates: number;
  messagesReceived: number;
  currentVersion: string;
}

export type AgentEvent =
  | { type: 'connection'; state: ConnectionState }
  | { type: 'ready'; resumed: boolean }
  | { type: 'step-start'; jobId?: string; step: StepName }
  | { type: 'step-end'; jobId?: string; step: StepName; ms: number; error?: string }
  | { type: 'progress'; jobId: string; bytes: number; total: number; final: boolean; message: string }
  | { type: 'job-result'; job: JobSummary }
  | { type: 'idle' }
  | { type: 'message'; topic: string; payload: string }
  /** A line an install / reboot / health / rollback command wrote (also in the log). */
  | { type: 'hook-output'; jobId: string; hook: HookName; stream: 'stdout' | 'stderr'; line: string }
  | { type: 'error'; error: string };

export interface AgentOptions {
  config: AgentConfig;
  /** Where the original's console sections go (never the console by default). */
  output?: NodeJS.WritableStream;
  logger?: Logger;
  signal?: AbortSignal;
  onEvent?: (e: AgentEvent) => void;
  /**
   * Device hooks as functions, over those the config names (`installCmd`, …, `slots`): the demo, the
   * fleet simulator and tests plug in here. A hook that throws fails its step.
   */
  hooks?: DeviceHooks;
  /** The clock and timers (default: the system's); tests pass a ManualClock. */
  timers?: Clock;
  random?: () => number;
}

export interface AgentHandle {
  /** Resolves when the agent stops (stop(), signal, or `once` with no more jobs). */
  done: Promise<AgentSummary>;
  /** Stops; a download in flight is interrupted (its `.part` kept, the job left IN_PROGRESS to resume). */
  stop(): Promise<void>;
  readonly connectionState: ConnectionState;
}
