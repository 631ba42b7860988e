/**
 * Where the simulated devices' agents run: in this process (`localHost`), or spread over child processes
 * (`workerHost`, worker-host.ts) when one process cannot hold them — each agent holds an MQTT socket, an
 * HTTP socket and a file while it downloads, and a process has at most `ulimit -n` descriptors (20,000 on
 * the benchmark machine: 10,000 devices need two processes or more), and one event loop is one core.
 *
 * Both hosts report the same few facts per device (connected, lost, a job's result) and the same totals at
 * the end, so the fleet (fleet.ts) and the soak (soak.ts) do not care where the agents run.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import { type AgentHandle, type AgentSummary, Hangs, type SimDevice, startUntilIdle } from './device.ts';
import { mapBounded } from './prepare.ts';
import type { ProcStats } from './proc.ts';

/** An agent that has not connected and asked for work by then counts as lost (it keeps trying). */
export const CONNECT_TIMEOUT_MS = 60_000;

/** What a host says about one device. */
export type HostEvent =
  | { type: 'connected' }
  | { type: 'lost'; reason: string }
  | { type: 'result'; jobId: string; status: string; reason?: string; seconds?: number };

export interface HostOptions {
  /** Connection settings every agent shares (prepare.ts). */
  base: Record<string, unknown>;
  /** Each device gets `<scratch>/<thing>`. */
  scratch: string;
  /** Agents connecting at the same time (per process). */
  concurrency: number;
  progressIntervalMs?: number;
  logger: Logger;
  /** Stops connecting more agents. */
  signal?: AbortSignal;
  /** Told when a `timeout` device starts or stops hanging (a worker relays it). */
  onHang?: (h: HungExecution) => void;
  onRelease?: (h: HungExecution) => void;
}

/** The agents' counters for one job, summed (MQTT figures of the summary). */
export interface AgentTotals {
  devicePublishes: number;
  progressMessages: number;
  jobUpdates: number;
}

export interface HungExecution {
  thingName: string;
  jobId: string;
  executionNumber: number;
}

export interface AgentHost {
  /** Starts the agents and resolves once each is connected and idle, or lost. */
  start(devices: readonly SimDevice[], onEvent: (thingName: string, e: HostEvent) => void): Promise<void>;
  /** Executions hung by `timeout` devices (watch.ts releases the ones the service has ended). */
  hung(): HungExecution[];
  release(h: HungExecution): void;
  /** Stops every agent (hung ones give up first) and sums their counters for `jobId`. */
  stop(jobId: string): Promise<AgentTotals>;
  /** Resource figures of the worker processes (none for the local host). */
  workers(): ProcStats[];
}

export function totalsOf(summaries: readonly AgentSummary[], jobId: string): AgentTotals {
  const t: AgentTotals = { devicePublishes: 0, progressMessages: 0, jobUpdates: 0 };
  for (const s of summaries) {
    t.devicePublishes += s.messagesPublished;
    for (const j of s.jobs) {
      if (j.jobId !== jobId) continue;
      t.progressMessages += j.progressMessages;
      t.jobUpdates += j.statusDetailsUpdates;
    }
  }
  return t;
}

/** The agents in this process. */
export function localHost(o: HostOptions): AgentHost {
  const hangs = new Hangs({
    ...(o.onHang ? { onHang: o.onHang } : {}),
    ...(o.onRelease ? { onRelease: o.onRelease } : {}),
  });
  const handles: AgentHandle[] = [];
  const summaries: Promise<AgentSummary | undefined>[] = [];
  const cleanups: Promise<void>[] = [];
  let stopped: Promise<AgentSummary[]> | undefined;
  return {
    async start(devices, onEvent) {
      await mapBounded(devices, o.concurrency, async (d) => {
        const dir = join(o.scratch, d.thingName);
        await mkdir(dir, { recursive: true });
        const { handle, idle } = await startUntilIdle(
          {
            device: d,
            base: o.base,
            dir,
            hangs,
            logger: o.logger.child({ thing: d.thingName }),
            ...(o.progressIntervalMs !== undefined ? { progressIntervalMs: o.progressIntervalMs } : {}),
            onEvent: (e) => {
              if (e.type !== 'job-result') return;
              // The image is not needed once the job is over; on a RAM disk it would hold memory.
              if (e.job.path) cleanups.push(rm(e.job.path, { force: true }).catch(() => {}));
              const { jobId, status, reason, seconds } = e.job;
              onEvent(d.thingName, {
                type: 'result',
                jobId,
                status,
                ...(reason !== undefined ? { reason } : {}),
                ...(seconds !== undefined ? { seconds } : {}),
              });
            },
          },
          CONNECT_TIMEOUT_MS,
        );
        handles.push(handle);
        summaries.push(
          handle.done.catch((err: unknown) => {
            onEvent(d.thingName, { type: 'lost', reason: `agent error: ${errorMessage(err)}` });
            return undefined;
          }),
        );
        onEvent(
          d.thingName,
          idle ? { type: 'connected' } : { type: 'lost', reason: 'not connected and idle within 60 s' },
        );
      });
    },
    hung: () => hangs.hung(),
    release: (h) => hangs.release(h.thingName, h.jobId, h.executionNumber),
    async stop(jobId) {
      stopped ??= (async () => {
        hangs.releaseAll();
        await Promise.all(handles.map((h) => h.stop()));
        await Promise.all(cleanups);
        return (await Promise.all(summaries)).filter((s): s is AgentSummary => s !== undefined);
      })();
      return totalsOf(await stopped, jobId);
    },
    workers: () => [],
  };
}
