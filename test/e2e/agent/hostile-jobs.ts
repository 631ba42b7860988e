import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker } from '../../../src/cloud/broker/broker.ts';
import type { RunningBroker } from '../../../src/cloud/broker/types.ts';
import { ensureLocalCa } from '../../../src/cloud/pki/pki.ts';
import { type AgentConfig, resolveAgentConfig } from '../../../src/device/config/agent-config.ts';

/**
 * A hostile (or broken) AWS IoT Jobs service behind the real broker, with real mutual TLS: it answers
 * the device's Jobs requests from a script, so a test can hand the agent what the local Jobs service
 * would refuse at its door (jobIds AWS never issues, documents CreateJob refuses). It records every
 * request the device made.
 */
export interface HostileJobs {
  /**
   * Executions start-next hands out, in order; when empty, start-next answers `head` (a service that
   * keeps one execution at the head of the queue), or "nothing pending".
   */
  queue: Record<string, unknown>[];
  head: Record<string, unknown> | undefined;
  /** What GetPendingJobExecutions (`get`) answers; a terminal update removes the job from it. */
  pendingList: { inProgressJobs: { jobId: string }[]; queuedJobs: { jobId: string }[] };
  /** What DescribeJobExecution (`<jobId>/get`) answers; an unknown job: ResourceNotFound. */
  executions: Map<string, Record<string, unknown>>;
  /** Every request: topic (after `$aws/things/<thing>/jobs/`) and parsed body. */
  requests: { topic: string; body: Record<string, unknown> }[];
  /** Sends notify-next naming `execution` (or none). */
  notifyNext(thing: string, execution?: Record<string, unknown>): Promise<void>;
  config(thing: string, extra?: Record<string, unknown>): Promise<AgentConfig>;
  close(): Promise<void>;
}

export async function startHostileJobs(): Promise<HostileJobs> {
  const dir = await mkdtemp(join(tmpdir(), 'ota-hostile-'));
  const ca = await ensureLocalCa(join(dir, 'certs'), { hosts: ['127.0.0.1'] });
  const queue: Record<string, unknown>[] = [];
  const requests: HostileJobs['requests'] = [];
  const pendingList: HostileJobs['pendingList'] = { inProgressJobs: [], queuedJobs: [] };
  const executions: HostileJobs['executions'] = new Map();
  let handle: HostileJobs | undefined;
  let broker: RunningBroker | undefined;
  const reply = (topic: string, body: Record<string, unknown>) =>
    void broker?.publish(topic, JSON.stringify(body), 1);
  broker = await startBroker({
    host: '127.0.0.1',
    mqttPort: 0,
    wsPort: 0,
    tls: { ca: ca.caCertPem, cert: ca.serverCertPem, key: ca.serverKeyPem },
    isRegisteredThing: () => true,
    wsCredentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'x', region: 'us-west-2' },
    services: [
      {
        // Requests only: a claimed topic is not forwarded, and replies must reach the device.
        claims: (topic) =>
          topic.startsWith('$aws/things/') && !/\/(accepted|rejected|notify|notify-next)$/.test(topic),
        onPublish(_from, topic, payload) {
          const m = /^\$aws\/things\/([^/]+)\/jobs\/(.+)$/.exec(topic);
          if (!m) return;
          const [, thing, rest = ''] = m;
          let body: Record<string, unknown> = {};
          try {
            body = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
          } catch {}
          requests.push({ topic: rest, body });
          const base = `$aws/things/${thing}/jobs/${rest}`;
          const token = { clientToken: body.clientToken, timestamp: 1 };
          if (rest === 'start-next') {
            const execution = queue.shift() ?? handle?.head;
            reply(`${base}/accepted`, { ...token, ...(execution ? { execution } : {}) });
          } else if (rest === 'get') {
            reply(`${base}/accepted`, { ...token, ...pendingList });
          } else if (rest.endsWith('/update')) {
            const jobId = rest.slice(0, -'/update'.length);
            if (body.status !== 'IN_PROGRESS') {
              pendingList.inProgressJobs = pendingList.inProgressJobs.filter((j) => j.jobId !== jobId);
              pendingList.queuedJobs = pendingList.queuedJobs.filter((j) => j.jobId !== jobId);
            }
            reply(`${base}/accepted`, {
              ...token,
              executionState: { status: body.status, versionNumber: 2 },
            });
          } else if (rest.endsWith('/get')) {
            const execution = executions.get(rest.slice(0, -'/get'.length));
            if (execution) reply(`${base}/accepted`, { ...token, execution });
            else reply(`${base}/rejected`, { ...token, code: 'ResourceNotFound', message: 'no such job' });
          }
        },
      },
    ],
  });
  const running = broker;
  handle = {
    queue,
    head: undefined,
    pendingList,
    executions,
    requests,
    notifyNext: (thing, execution) =>
      running.publish(
        `$aws/things/${thing}/jobs/notify-next`,
        JSON.stringify({ timestamp: 1, ...(execution ? { execution } : {}) }),
        1,
      ),
    async config(thing, extra = {}) {
      const c = await ca.issueClientCert(thing);
      return resolveAgentConfig({
        flags: {
          endpoint: '127.0.0.1',
          port: running.mqttPort,
          rootCa: ca.caCertPath,
          cert: c.certPath,
          key: c.keyPath,
          thingName: thing,
          downloadDir: join(dir, `dl-${thing}`),
          currentVersion: '41811019',
          s3Endpoint: 'http://127.0.0.1:9',
          s3AccessKeyId: 'AKIDEXAMPLE',
          s3SecretAccessKey: 'x',
          requestTimeoutMs: 2000,
          ...extra,
        },
        env: {},
      });
    },
    async close() {
      await running.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return handle;
}
