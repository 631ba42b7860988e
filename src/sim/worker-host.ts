/**
 * The agents spread over child processes (`ota sim --workers N`): each child (worker.ts) runs a local host
 * (agent-host.ts) for its share of the devices and relays what it says over the IPC channel. Each child
 * has its own descriptor limit and its own core. The simulator keeps the list of hung executions (told by
 * the children) and asks the right child to release one.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { errorMessage } from '../shared/errors.ts';
import type { AgentHost, AgentTotals, HostEvent, HostOptions, HungExecution } from './agent-host.ts';
import type { SimDevice } from './device.ts';
import { type ProcStats, readProcStats } from './proc.ts';

/** Parent → child. */
export type ToWorker =
  | {
      type: 'start';
      devices: SimDevice[];
      options: Omit<HostOptions, 'logger' | 'onHang' | 'onRelease' | 'signal'>;
      logLevel: string;
    }
  | { type: 'release'; h: HungExecution }
  | { type: 'stop'; jobId: string };

/** Child → parent. */
export type FromWorker =
  | { type: 'event'; thingName: string; e: HostEvent }
  | { type: 'started' }
  | { type: 'hang'; h: HungExecution }
  | { type: 'unhang'; h: HungExecution }
  | { type: 'stopped'; totals: AgentTotals }
  | { type: 'failed'; message: string };

const keyOf = (h: HungExecution) => `${h.thingName}\n${h.jobId}\n${h.executionNumber}`;
/** The child module next to this one: worker.js when compiled, worker.ts under tsx (execArgv is inherited). */
const WORKER_MODULE = fileURLToPath(
  new URL(`./worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url),
);
const STOP_TIMEOUT_MS = 60_000;

interface Worker {
  child: ChildProcess;
  exited: Promise<void>;
  send(m: ToWorker): void;
}

function spawnWorker(onMessage: (m: FromWorker) => void): Worker {
  const child = fork(WORKER_MODULE, [], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    serialization: 'advanced',
  });
  child.on('message', (m) => onMessage(m as FromWorker));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    exited,
    send(m) {
      if (child.connected) child.send(m);
    },
  };
}

export function workerHost(o: HostOptions & { workers: number; logLevel?: string }): AgentHost {
  const workers: Worker[] = [];
  const owner = new Map<string, Worker>();
  const hung = new Map<string, HungExecution>();
  const stopped = new Map<Worker, (t: AgentTotals) => void>();
  let stopping = false;
  return {
    async start(devices, onEvent) {
      const n = Math.max(1, Math.min(o.workers, devices.length));
      const shares = Array.from({ length: n }, (_, i) => devices.filter((_, j) => j % n === i));
      await Promise.all(
        shares.map(
          (share) =>
            new Promise<void>((resolve) => {
              const lostAll = (reason: string) => {
                for (const d of share) onEvent(d.thingName, { type: 'lost', reason });
                resolve();
              };
              const w: Worker = spawnWorker((m) => {
                if (m.type === 'event') onEvent(m.thingName, m.e);
                else if (m.type === 'started') resolve();
                else if (m.type === 'hang') hung.set(keyOf(m.h), m.h);
                else if (m.type === 'unhang') hung.delete(keyOf(m.h));
                else if (m.type === 'stopped') stopped.get(w)?.(m.totals);
                else if (m.type === 'failed') lostAll(`worker process: ${m.message}`);
              });
              w.child.once('error', (err) => lostAll(`worker process: ${errorMessage(err)}`));
              // A worker that dies takes its devices with it: they count as lost, not as waited for.
              void w.exited.then(() => {
                if (!stopping)
                  lostAll(`worker process ${w.child.pid} exited (${w.child.exitCode ?? w.child.signalCode})`);
              });
              workers.push(w);
              for (const d of share) owner.set(d.thingName, w);
              const {
                logger: _l,
                onHang: _h,
                onRelease: _r,
                signal: _s,
                workers: _w,
                logLevel: _v,
                ...options
              } = o;
              w.send({ type: 'start', devices: share, options, logLevel: o.logLevel ?? 'silent' });
            }),
        ),
      );
    },
    hung: () => [...hung.values()],
    release(h) {
      owner.get(h.thingName)?.send({ type: 'release', h });
    },
    async stop(jobId) {
      stopping = true;
      const totals = await Promise.all(
        workers.map(async (w) => {
          const t = new Promise<AgentTotals | undefined>((resolve) => {
            stopped.set(w, resolve);
            void w.exited.then(() => resolve(undefined));
          });
          w.send({ type: 'stop', jobId });
          const timer = setTimeout(() => w.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
          const out = await t;
          await w.exited;
          clearTimeout(timer);
          return out;
        }),
      );
      workers.length = 0;
      hung.clear();
      const sum: AgentTotals = { devicePublishes: 0, progressMessages: 0, jobUpdates: 0 };
      for (const t of totals) {
        if (t === undefined) continue;
        sum.devicePublishes += t.devicePublishes;
        sum.progressMessages += t.progressMessages;
        sum.jobUpdates += t.jobUpdates;
      }
      return sum;
    },
    workers() {
      return workers
        .map((w) => (w.child.pid === undefined ? undefined : readProcStats(w.child.pid)))
        .filter((s): s is ProcStats => s !== undefined);
    },
  };
}
