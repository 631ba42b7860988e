/**
 * A worker process of the fleet simulator (worker-host.ts): runs its share of the agents in a local host
 * and relays over IPC. Told to stop (or when its parent goes away and the channel closes), it stops its
 * agents and lets go of the channel; with nothing left open the process ends by itself (the parent kills
 * one that does not within a minute).
 */

import { errorMessage } from '../shared/errors.ts';
import { createLogger } from '../shared/log.ts';
import { type AgentHost, localHost } from './agent-host.ts';
import type { FromWorker, ToWorker } from './worker-host.ts';

const send = (m: FromWorker) => {
  if (process.connected) process.send?.(m);
};

let host: AgentHost | undefined;

async function stop(jobId: string): Promise<void> {
  const totals = host ? await host.stop(jobId) : { devicePublishes: 0, progressMessages: 0, jobUpdates: 0 };
  send({ type: 'stopped', totals });
  if (process.connected) process.disconnect();
}

process.on('message', (raw) => {
  const m = raw as ToWorker;
  if (m.type === 'start') {
    host = localHost({
      ...m.options,
      logger: createLogger({ level: m.logLevel }),
      onHang: (h) => send({ type: 'hang', h }),
      onRelease: (h) => send({ type: 'unhang', h }),
    });
    host
      .start(m.devices, (thingName, e) => send({ type: 'event', thingName, e }))
      .then(() => send({ type: 'started' }))
      .catch((err: unknown) => send({ type: 'failed', message: errorMessage(err) }));
  } else if (m.type === 'release') {
    host?.release(m.h);
  } else if (m.type === 'stop') {
    void stop(m.jobId);
  }
});

// Ctrl-C reaches the whole process group: the simulator stops its workers itself, in order.
process.on('SIGINT', () => {});

process.on('disconnect', () => {
  void host?.stop('');
});
