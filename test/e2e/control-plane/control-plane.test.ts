import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Sha256 } from '@aws-crypto/sha256-js';
import {
  AddThingToThingGroupCommand,
  CancelJobCommand,
  CancelJobExecutionCommand,
  CreateJobCommand,
  CreateThingCommand,
  CreateThingGroupCommand,
  DeleteJobCommand,
  DescribeEndpointCommand,
  DescribeJobCommand,
  DescribeJobExecutionCommand,
  DescribeThingCommand,
  DescribeThingGroupCommand,
  GetJobDocumentCommand,
  IoTClient,
  ListJobExecutionsForJobCommand,
  ListJobExecutionsForThingCommand,
  type ListJobExecutionsForThingCommandOutput,
  ListJobsCommand,
  type ListJobsCommandOutput,
  ListThingsCommand,
  ListThingsInThingGroupCommand,
} from '@aws-sdk/client-iot';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { type ControlPlaneServer, startControlPlane } from '../../../src/cloud/control-plane/server.ts';
import { createJobsService } from '../../../src/cloud/jobs/service.ts';

const REGION = 'us-west-2';
const ACCOUNT = '123456789012';
const CREDS = { accessKeyId: 'AKIDLOCALE2E', secretAccessKey: 'local-e2e-secret' };
const MQTT_HOST = 'mqtt.local.test';

type JobsService = ReturnType<typeof createJobsService>;

interface Stack {
  dir: string;
  service: JobsService;
  server: ControlPlaneServer;
  client: IoTClient;
  published: Array<{ topic: string; payload: string; qos: number }>;
  close(): Promise<void>;
}

async function startStack(): Promise<Stack> {
  const dir = await mkdtemp(join(tmpdir(), 'ota-control-plane-'));
  const published: Stack['published'] = [];
  const service = createJobsService({
    dbPath: join(dir, 'jobs.sqlite'),
    region: REGION,
    accountId: ACCOUNT,
    publish: (topic: string, payload: string, qos: 0 | 1) => {
      published.push({ topic, payload, qos });
    },
    presign: async (s3Url: string, expiresInSec: number) => `${s3Url}?X-Local-Expires=${expiresInSec}`,
  });
  const server = await startControlPlane({
    host: '127.0.0.1',
    port: 0,
    controlPlane: service.controlPlane,
    credentials: CREDS,
    region: REGION,
    iotEndpointAddress: MQTT_HOST,
  });
  // maxAttempts 1: an error must surface as thrown, not be retried into a different one.
  const client = new IoTClient({
    endpoint: server.endpoint,
    region: REGION,
    credentials: CREDS,
    maxAttempts: 1,
  });
  return {
    dir,
    service,
    server,
    client,
    published,
    async close() {
      client.destroy();
      await server.close();
      service.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Runs `fn`, expecting the SDK to throw; returns the error for further checks. */
async function rejects(
  fn: () => Promise<unknown>,
  name: string,
  message?: RegExp,
): Promise<Error & { $metadata?: { httpStatusCode?: number } }> {
  try {
    await fn();
  } catch (err) {
    const e = err as Error & { $metadata?: { httpStatusCode?: number } };
    assert.equal(e.name, name, `expected ${name}, got ${e.name}: ${e.message}`);
    if (message) assert.match(e.message, message);
    return e;
  }
  assert.fail(`expected ${name} to be thrown`);
}

/** A raw request signed like the SDK signs, for bodies the SDK would never send. */
async function signedFetch(endpoint: string, method: string, path: string, body?: string): Promise<Response> {
  const url = new URL(path, endpoint);
  const headers: Record<string, string> = { host: url.host };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  const query: Record<string, string> = {};
  url.searchParams.forEach((v, k) => {
    query[k] = v;
  });
  const signer = new SignatureV4({ credentials: CREDS, region: REGION, service: 'iot', sha256: Sha256 });
  const signed = await signer.sign(
    new HttpRequest({
      method,
      protocol: 'http:',
      hostname: url.hostname,
      port: Number(url.port),
      path: url.pathname,
      query,
      headers,
      ...(body !== undefined && { body }),
    }),
  );
  const { host: _host, ...sendHeaders } = signed.headers as Record<string, string>;
  return fetch(url, { method, headers: sendHeaders, ...(body !== undefined && { body }) });
}

const thingArn = (name: string) => `arn:aws:iot:${REGION}:${ACCOUNT}:thing/${name}`;
const groupArn = (name: string) => `arn:aws:iot:${REGION}:${ACCOUNT}:thinggroup/${name}`;
const DOC = JSON.stringify({ operation: 'ota', firmware: { version: '1.2.3' } });

describe('control plane over @aws-sdk/client-iot', () => {
  let s: Stack;
  before(async () => {
    s = await startStack();
  });
  after(async () => {
    await s.close();
  });

  /** The device side, through the service's real Jobs MQTT entry point (docs/protocol.md, MQTT API). */
  async function startNext(thingName: string, statusDetails?: Record<string, string>): Promise<void> {
    s.service.topicService.onPublish(
      { kind: 'thing', thingName },
      `$aws/things/${thingName}/jobs/start-next`,
      Buffer.from(JSON.stringify(statusDetails ? { statusDetails } : {})),
    );
    await s.service.idle();
  }

  test('things: CreateThing, DescribeThing, ListThings with pagination', async () => {
    const created = await s.client.send(
      new CreateThingCommand({ thingName: 'sensor-1', attributePayload: { attributes: { model: 'x1' } } }),
    );
    assert.equal(created.thingName, 'sensor-1');
    assert.equal(created.thingArn, thingArn('sensor-1'));
    assert.ok(created.thingId);

    const described = await s.client.send(new DescribeThingCommand({ thingName: 'sensor-1' }));
    assert.equal(described.thingName, 'sensor-1');
    assert.equal(described.thingArn, created.thingArn);
    assert.equal(described.thingId, created.thingId);
    assert.deepEqual(described.attributes, { model: 'x1' });
    assert.equal(typeof described.version, 'number');

    for (const n of ['sensor-2', 'sensor-3', 'sensor-4', 'sensor-5']) {
      await s.client.send(new CreateThingCommand({ thingName: n }));
    }
    const seen: string[] = [];
    let nextToken: string | undefined;
    let pages = 0;
    do {
      const page = await s.client.send(new ListThingsCommand({ maxResults: 2, nextToken }));
      assert.ok((page.things?.length ?? 0) <= 2);
      for (const t of page.things ?? []) seen.push(t.thingName ?? '');
      nextToken = page.nextToken;
      pages++;
    } while (nextToken && pages < 20);
    for (const n of ['sensor-1', 'sensor-2', 'sensor-3', 'sensor-4', 'sensor-5'])
      assert.ok(seen.includes(n), n);
    assert.equal(new Set(seen).size, seen.length, 'no thing listed twice');
    assert.ok(pages >= 3, `expected at least 3 pages, got ${pages}`);

    await rejects(
      () => s.client.send(new DescribeThingCommand({ thingName: 'no-such-thing' })),
      'ResourceNotFoundException',
    );
    await rejects(
      () => s.client.send(new CreateThingCommand({ thingName: 'bad thing!' })),
      'InvalidRequestException',
      /thingName.*\[a-zA-Z0-9:_-\]/,
    );
  });

  test('thing groups: create, describe, add by name and by ARN, list members', async () => {
    const g = await s.client.send(
      new CreateThingGroupCommand({
        thingGroupName: 'fleet-a',
        thingGroupProperties: { thingGroupDescription: 'first fleet' },
      }),
    );
    assert.equal(g.thingGroupName, 'fleet-a');
    assert.equal(g.thingGroupArn, groupArn('fleet-a'));
    const d = await s.client.send(new DescribeThingGroupCommand({ thingGroupName: 'fleet-a' }));
    assert.equal(d.thingGroupArn, g.thingGroupArn);
    assert.equal(d.thingGroupId, g.thingGroupId);
    assert.equal(d.thingGroupProperties?.thingGroupDescription, 'first fleet');
    assert.ok(d.thingGroupMetadata?.creationDate instanceof Date);

    await s.client.send(new CreateThingCommand({ thingName: 'member-1' }));
    await s.client.send(new CreateThingCommand({ thingName: 'member-2' }));
    await s.client.send(
      new AddThingToThingGroupCommand({ thingGroupName: 'fleet-a', thingName: 'member-1' }),
    );
    await s.client.send(
      new AddThingToThingGroupCommand({ thingGroupArn: groupArn('fleet-a'), thingArn: thingArn('member-2') }),
    );
    const members = await s.client.send(new ListThingsInThingGroupCommand({ thingGroupName: 'fleet-a' }));
    assert.deepEqual([...(members.things ?? [])].sort(), ['member-1', 'member-2']);

    await rejects(
      () => s.client.send(new DescribeThingGroupCommand({ thingGroupName: 'no-such-group' })),
      'ResourceNotFoundException',
    );
    await rejects(
      () => s.client.send(new AddThingToThingGroupCommand({ thingGroupName: 'fleet-a', thingName: 'ghost' })),
      'ResourceNotFoundException',
    );
  });

  test('CreateJob on a thing ARN: describe, document, list, executions', async () => {
    await s.client.send(new CreateThingCommand({ thingName: 'dev-1' }));
    const before = Date.now();
    const created = await s.client.send(
      new CreateJobCommand({
        jobId: 'job-thing-1',
        targets: [thingArn('dev-1')],
        document: DOC,
        description: 'update dev-1',
        presignedUrlConfig: { expiresInSec: 600 },
        timeoutConfig: { inProgressTimeoutInMinutes: 30 },
      }),
    );
    assert.equal(created.jobId, 'job-thing-1');
    assert.equal(created.jobArn, `arn:aws:iot:${REGION}:${ACCOUNT}:job/job-thing-1`);
    assert.equal(created.description, 'update dev-1');

    const { job } = await s.client.send(new DescribeJobCommand({ jobId: 'job-thing-1' }));
    assert.ok(job);
    assert.equal(job.jobId, 'job-thing-1');
    assert.equal(job.status, 'IN_PROGRESS');
    assert.equal(job.targetSelection, 'SNAPSHOT');
    assert.deepEqual(job.targets, [thingArn('dev-1')]);
    assert.equal(job.description, 'update dev-1');
    assert.equal(job.presignedUrlConfig?.expiresInSec, 600);
    assert.equal(job.timeoutConfig?.inProgressTimeoutInMinutes, 30);
    assert.ok(job.createdAt instanceof Date, 'createdAt parsed as a Date');
    assert.ok(Math.abs(job.createdAt.getTime() - before) < 60_000, 'createdAt is about now');
    assert.ok(job.lastUpdatedAt instanceof Date);
    assert.equal(job.jobProcessDetails?.numberOfQueuedThings, 1);
    assert.equal(job.jobProcessDetails?.numberOfSucceededThings, 0);

    const doc = await s.client.send(new GetJobDocumentCommand({ jobId: 'job-thing-1' }));
    assert.deepEqual(JSON.parse(doc.document ?? ''), JSON.parse(DOC));

    const list = await s.client.send(new ListJobsCommand({}));
    const summary = list.jobs?.find((j) => j.jobId === 'job-thing-1');
    assert.ok(summary, 'ListJobs shows the job');
    assert.equal(summary.status, 'IN_PROGRESS');
    assert.ok(summary.createdAt instanceof Date);
    const filtered = await s.client.send(new ListJobsCommand({ targetSelection: 'CONTINUOUS' }));
    assert.ok(!filtered.jobs?.some((j) => j.jobId === 'job-thing-1'), 'filter by targetSelection');

    const forJob = await s.client.send(new ListJobExecutionsForJobCommand({ jobId: 'job-thing-1' }));
    assert.equal(forJob.executionSummaries?.length, 1);
    assert.equal(forJob.executionSummaries?.[0]?.thingArn, thingArn('dev-1'));
    assert.equal(forJob.executionSummaries?.[0]?.jobExecutionSummary?.status, 'QUEUED');
    assert.ok(forJob.executionSummaries?.[0]?.jobExecutionSummary?.queuedAt instanceof Date);

    const forThing = await s.client.send(new ListJobExecutionsForThingCommand({ thingName: 'dev-1' }));
    assert.deepEqual(
      forThing.executionSummaries?.map((e) => [e.jobId, e.jobExecutionSummary?.status]),
      [['job-thing-1', 'QUEUED']],
    );

    const { execution } = await s.client.send(
      new DescribeJobExecutionCommand({ jobId: 'job-thing-1', thingName: 'dev-1' }),
    );
    assert.equal(execution?.jobId, 'job-thing-1');
    assert.equal(execution?.thingArn, thingArn('dev-1'));
    assert.equal(execution?.status, 'QUEUED');
    assert.equal(typeof execution?.executionNumber, 'number');
    assert.equal(typeof execution?.versionNumber, 'number');
    assert.ok(execution?.queuedAt instanceof Date);
    assert.ok(
      s.published.some((p) => p.topic === '$aws/things/dev-1/jobs/notify'),
      'device notified',
    );
  });

  test('CreateJob on a group ARN queues every member', async () => {
    await s.client.send(new CreateThingGroupCommand({ thingGroupName: 'fleet-b' }));
    for (const n of ['b-1', 'b-2']) {
      await s.client.send(new CreateThingCommand({ thingName: n }));
      await s.client.send(new AddThingToThingGroupCommand({ thingGroupName: 'fleet-b', thingName: n }));
    }
    await s.client.send(
      new CreateJobCommand({ jobId: 'job-group-1', targets: [groupArn('fleet-b')], document: DOC }),
    );
    const ex = await s.client.send(new ListJobExecutionsForJobCommand({ jobId: 'job-group-1' }));
    assert.deepEqual(ex.executionSummaries?.map((e) => e.thingArn).sort(), [
      thingArn('b-1'),
      thingArn('b-2'),
    ]);
    const queued = await s.client.send(
      new ListJobExecutionsForJobCommand({ jobId: 'job-group-1', status: 'QUEUED' }),
    );
    assert.equal(queued.executionSummaries?.length, 2);
  });

  test('a CONTINUOUS job on a group reaches a thing added later', async () => {
    await s.client.send(new CreateThingGroupCommand({ thingGroupName: 'fleet-c' }));
    await s.client.send(
      new CreateJobCommand({
        jobId: 'job-continuous-1',
        targets: [groupArn('fleet-c')],
        document: DOC,
        targetSelection: 'CONTINUOUS',
      }),
    );
    await s.client.send(new CreateThingCommand({ thingName: 'late-1' }));
    const none = await s.client.send(new ListJobExecutionsForThingCommand({ thingName: 'late-1' }));
    assert.equal(none.executionSummaries?.length ?? 0, 0, 'not targeted before joining the group');

    await s.client.send(new AddThingToThingGroupCommand({ thingGroupName: 'fleet-c', thingName: 'late-1' }));
    const some = await s.client.send(new ListJobExecutionsForThingCommand({ thingName: 'late-1' }));
    assert.deepEqual(
      some.executionSummaries?.map((e) => [e.jobId, e.jobExecutionSummary?.status]),
      [['job-continuous-1', 'QUEUED']],
    );
    const { job } = await s.client.send(new DescribeJobCommand({ jobId: 'job-continuous-1' }));
    assert.equal(job?.targetSelection, 'CONTINUOUS');
    const continuous = await s.client.send(new ListJobsCommand({ targetSelection: 'CONTINUOUS' }));
    assert.deepEqual(
      continuous.jobs?.map((j) => j.jobId),
      ['job-continuous-1'],
    );
  });

  test('refusals: duplicates, unknown jobs, bad documents, bad names', async () => {
    await s.client.send(new CreateThingCommand({ thingName: 'ref-1' }));
    await s.client.send(
      new CreateJobCommand({ jobId: 'job-dup', targets: [thingArn('ref-1')], document: DOC }),
    );
    await rejects(
      () =>
        s.client.send(
          new CreateJobCommand({ jobId: 'job-dup', targets: [thingArn('ref-1')], document: DOC }),
        ),
      'ResourceAlreadyExistsException',
    );
    const nf = await rejects(
      () => s.client.send(new DescribeJobCommand({ jobId: 'job-nope' })),
      'ResourceNotFoundException',
    );
    assert.equal(nf.$metadata?.httpStatusCode, 404);
    await rejects(
      () => s.client.send(new GetJobDocumentCommand({ jobId: 'job-nope' })),
      'ResourceNotFoundException',
    );
    await rejects(
      () => s.client.send(new DescribeJobExecutionCommand({ jobId: 'job-nope', thingName: 'ref-1' })),
      'ResourceNotFoundException',
    );

    const big = JSON.stringify({ pad: 'x'.repeat(33 * 1024) });
    await rejects(
      () =>
        s.client.send(
          new CreateJobCommand({ jobId: 'job-big', targets: [thingArn('ref-1')], document: big }),
        ),
      'InvalidRequestException',
      /document/i,
    );
    await rejects(
      () =>
        s.client.send(
          new CreateJobCommand({ jobId: 'job-badjson', targets: [thingArn('ref-1')], document: '{nope' }),
        ),
      'InvalidRequestException',
      /document.*JSON|JSON.*document/i,
    );
    // 5,000 nested objects fit in 32 KB but are too deep; the answer names the problem.
    await rejects(
      () =>
        s.client.send(
          new CreateJobCommand({
            jobId: 'job-deep',
            targets: [thingArn('ref-1')],
            document: `${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}`,
          }),
        ),
      'InvalidRequestException',
      /^document nests objects and arrays 5000 levels deep; at most 100 are allowed$/,
    );
    await rejects(
      () =>
        s.client.send(
          new CreateJobCommand({ jobId: 'bad job!', targets: [thingArn('ref-1')], document: DOC }),
        ),
      'InvalidRequestException',
      /jobId.*\[a-zA-Z0-9_-\]/,
    );
    await rejects(
      () => s.client.send(new CreateJobCommand({ jobId: 'job-no-targets', targets: [], document: DOC })),
      'InvalidRequestException',
      /targets/,
    );
    await rejects(
      () =>
        s.client.send(
          new CreateJobCommand({
            jobId: 'job-abort',
            targets: [thingArn('ref-1')],
            document: DOC,
            abortConfig: { criteriaList: [] },
          }),
        ),
      'InvalidRequestException',
      /^1 validation error detected: Value '\[0 items\]' at 'abortConfig\.criteriaList' failed to satisfy constraint: Member must have length greater than or equal to 1$/,
    );
    await rejects(
      () =>
        s.client.send(
          new CreateJobCommand({
            jobId: 'job-params',
            targets: [thingArn('ref-1')],
            document: DOC,
            documentParameters: { a: 'b' },
          }),
        ),
      'InvalidRequestException',
      /documentParameters: not supported/,
    );
    for (const id of ['job-big', 'job-badjson', 'job-deep', 'job-no-targets', 'job-abort', 'job-params']) {
      await rejects(() => s.client.send(new DescribeJobCommand({ jobId: id })), 'ResourceNotFoundException');
    }
  });

  test('CancelJob without and with force, CancelJobExecution, DeleteJob', async () => {
    await s.client.send(new CreateThingCommand({ thingName: 'cx-1' }));
    await s.client.send(new CreateThingCommand({ thingName: 'cx-2' }));

    // Without force: QUEUED executions are cancelled (docs/protocol.md, Cancellation).
    await s.client.send(
      new CreateJobCommand({
        jobId: 'job-cancel-1',
        targets: [thingArn('cx-1'), thingArn('cx-2')],
        document: DOC,
      }),
    );
    const c1 = await s.client.send(
      new CancelJobCommand({ jobId: 'job-cancel-1', comment: 'wrong image', reasonCode: 'BAD_IMAGE' }),
    );
    assert.equal(c1.jobId, 'job-cancel-1');
    const { job: j1 } = await s.client.send(new DescribeJobCommand({ jobId: 'job-cancel-1' }));
    assert.equal(j1?.status, 'CANCELED');
    assert.equal(j1?.comment, 'wrong image');
    assert.equal(j1?.reasonCode, 'BAD_IMAGE');
    const ex1 = await s.client.send(new ListJobExecutionsForJobCommand({ jobId: 'job-cancel-1' }));
    assert.deepEqual(
      ex1.executionSummaries?.map((e) => e.jobExecutionSummary?.status),
      ['CANCELED', 'CANCELED'],
    );

    // With force.
    await s.client.send(
      new CreateJobCommand({ jobId: 'job-cancel-2', targets: [thingArn('cx-1')], document: DOC }),
    );
    await s.client.send(new CancelJobCommand({ jobId: 'job-cancel-2', force: true }));
    const { job: j2 } = await s.client.send(new DescribeJobCommand({ jobId: 'job-cancel-2' }));
    assert.equal(j2?.status, 'CANCELED');
    assert.equal(j2?.forceCanceled, true);

    // One execution only.
    await s.client.send(
      new CreateJobCommand({
        jobId: 'job-cancel-3',
        targets: [thingArn('cx-1'), thingArn('cx-2')],
        document: DOC,
      }),
    );
    await s.client.send(
      new CancelJobExecutionCommand({
        jobId: 'job-cancel-3',
        thingName: 'cx-2',
        statusDetails: { why: 'test' },
      }),
    );
    const e2 = await s.client.send(
      new DescribeJobExecutionCommand({ jobId: 'job-cancel-3', thingName: 'cx-2' }),
    );
    assert.equal(e2.execution?.status, 'CANCELED');
    const e1 = await s.client.send(
      new DescribeJobExecutionCommand({ jobId: 'job-cancel-3', thingName: 'cx-1' }),
    );
    assert.equal(e1.execution?.status, 'QUEUED');
    await rejects(
      () =>
        s.client.send(
          new CancelJobExecutionCommand({ jobId: 'job-cancel-3', thingName: 'cx-1', expectedVersion: 999 }),
        ),
      'VersionConflictException',
    );

    // DeleteJob: the job and its executions are gone.
    await s.client.send(new DeleteJobCommand({ jobId: 'job-cancel-1' }));
    await rejects(
      () => s.client.send(new DescribeJobCommand({ jobId: 'job-cancel-1' })),
      'ResourceNotFoundException',
    );
    const after = await s.client.send(
      new ListJobExecutionsForThingCommand({ thingName: 'cx-2', jobId: 'job-cancel-1' }),
    );
    assert.equal(after.executionSummaries?.length ?? 0, 0);
    await rejects(
      () => s.client.send(new DeleteJobCommand({ jobId: 'job-cancel-1' })),
      'ResourceNotFoundException',
    );
  });

  test('IN_PROGRESS executions: cancel needs force; DeleteJob needs force', async () => {
    await s.client.send(new CreateThingCommand({ thingName: 'ip-1' }));
    await s.client.send(new CreateThingCommand({ thingName: 'ip-2' }));
    await s.client.send(
      new CreateJobCommand({
        jobId: 'job-ip-1',
        targets: [thingArn('ip-1'), thingArn('ip-2')],
        document: DOC,
      }),
    );
    await startNext('ip-1', { step: 'downloading' });
    const running = await s.client.send(
      new DescribeJobExecutionCommand({ jobId: 'job-ip-1', thingName: 'ip-1' }),
    );
    assert.equal(running.execution?.status, 'IN_PROGRESS');
    assert.deepEqual(running.execution?.statusDetails?.detailsMap, { step: 'downloading' });
    assert.ok(running.execution?.startedAt instanceof Date);

    await rejects(
      () => s.client.send(new CancelJobExecutionCommand({ jobId: 'job-ip-1', thingName: 'ip-1' })),
      'InvalidStateTransitionException',
      /force/,
    );
    await rejects(
      () => s.client.send(new DeleteJobCommand({ jobId: 'job-ip-1' })),
      'InvalidStateTransitionException',
      /force/,
    );

    // CancelJob without force leaves the IN_PROGRESS execution running, cancels the QUEUED one.
    await s.client.send(new CancelJobCommand({ jobId: 'job-ip-1' }));
    const afterSoft = await s.client.send(new ListJobExecutionsForJobCommand({ jobId: 'job-ip-1' }));
    const byThing = Object.fromEntries(
      (afterSoft.executionSummaries ?? []).map((e) => [e.thingArn, e.jobExecutionSummary?.status]),
    );
    assert.deepEqual(byThing, { [thingArn('ip-1')]: 'IN_PROGRESS', [thingArn('ip-2')]: 'CANCELED' });

    // With force the IN_PROGRESS execution is cancelled too.
    await s.client.send(new CancelJobCommand({ jobId: 'job-ip-1', force: true }));
    const forced = await s.client.send(
      new DescribeJobExecutionCommand({ jobId: 'job-ip-1', thingName: 'ip-1' }),
    );
    assert.equal(forced.execution?.status, 'CANCELED');
    assert.equal(forced.execution?.forceCanceled, true);

    // CancelJobExecution with force on another running execution; then DeleteJob with force.
    await s.client.send(
      new CreateJobCommand({ jobId: 'job-ip-2', targets: [thingArn('ip-2')], document: DOC }),
    );
    await startNext('ip-2');
    await s.client.send(new CancelJobExecutionCommand({ jobId: 'job-ip-2', thingName: 'ip-2', force: true }));
    const e = await s.client.send(new DescribeJobExecutionCommand({ jobId: 'job-ip-2', thingName: 'ip-2' }));
    assert.equal(e.execution?.status, 'CANCELED');
    await s.client.send(
      new CreateJobCommand({ jobId: 'job-ip-3', targets: [thingArn('ip-2')], document: DOC }),
    );
    await startNext('ip-2');
    await s.client.send(new DeleteJobCommand({ jobId: 'job-ip-3', force: true }));
    await rejects(
      () => s.client.send(new DescribeJobCommand({ jobId: 'job-ip-3' })),
      'ResourceNotFoundException',
    );
  });

  test('ListJobs and ListJobExecutionsForThing paginate with maxResults + nextToken', async () => {
    await s.client.send(new CreateThingCommand({ thingName: 'pg-1' }));
    const ids = ['pg-job-1', 'pg-job-2', 'pg-job-3', 'pg-job-4', 'pg-job-5'];
    for (const jobId of ids) {
      await s.client.send(new CreateJobCommand({ jobId, targets: [thingArn('pg-1')], document: DOC }));
    }
    const seenExec: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const p: ListJobExecutionsForThingCommandOutput = await s.client.send(
        new ListJobExecutionsForThingCommand({ thingName: 'pg-1', maxResults: 2, nextToken: token }),
      );
      assert.ok((p.executionSummaries?.length ?? 0) <= 2);
      seenExec.push(...(p.executionSummaries ?? []).map((e) => e.jobId ?? ''));
      token = p.nextToken;
      pages++;
    } while (token && pages < 20);
    assert.deepEqual([...seenExec].sort(), ids);
    assert.equal(pages, 3);

    const seenJobs: string[] = [];
    token = undefined;
    pages = 0;
    do {
      const p: ListJobsCommandOutput = await s.client.send(
        new ListJobsCommand({ maxResults: 3, nextToken: token }),
      );
      assert.ok((p.jobs?.length ?? 0) <= 3);
      seenJobs.push(...(p.jobs ?? []).map((j) => j.jobId ?? ''));
      token = p.nextToken;
      pages++;
    } while (token && pages < 50);
    for (const id of ids) assert.ok(seenJobs.includes(id), id);
    assert.equal(new Set(seenJobs).size, seenJobs.length, 'no job listed twice');

    await rejects(
      () => s.client.send(new ListJobsCommand({ maxResults: 0 })),
      'InvalidRequestException',
      /maxResults/,
    );
  });

  test('names with ":" survive path encoding and signing', async () => {
    const name = 'fleet:dev-9';
    const t = await s.client.send(new CreateThingCommand({ thingName: name }));
    assert.equal(t.thingArn, thingArn(name));
    assert.equal((await s.client.send(new DescribeThingCommand({ thingName: name }))).thingName, name);
    await s.client.send(
      new CreateJobCommand({ jobId: 'job-colon', targets: [thingArn(name)], document: DOC }),
    );
    const ex = await s.client.send(new ListJobExecutionsForThingCommand({ thingName: name }));
    assert.deepEqual(
      ex.executionSummaries?.map((e) => e.jobId),
      ['job-colon'],
    );
    const d = await s.client.send(new DescribeJobExecutionCommand({ jobId: 'job-colon', thingName: name }));
    assert.equal(d.execution?.thingArn, thingArn(name));
  });

  test('documentSource without a document fetcher is refused with a clear message', async () => {
    await rejects(
      () =>
        s.client.send(
          new CreateJobCommand({
            jobId: 'job-src',
            targets: [thingArn('sensor-1')],
            documentSource: 'https://s3.us-west-2.amazonaws.com/bucket/doc.json',
          }),
        ),
      'InvalidRequestException',
      /documentSource/,
    );
  });

  test('DescribeEndpoint returns the MQTT host', async () => {
    const r = await s.client.send(new DescribeEndpointCommand({ endpointType: 'iot:Data-ATS' }));
    assert.equal(r.endpointAddress, MQTT_HOST);
    const legacy = await s.client.send(new DescribeEndpointCommand({}));
    assert.equal(legacy.endpointAddress, MQTT_HOST);
    await rejects(
      () => s.client.send(new DescribeEndpointCommand({ endpointType: 'iot:CredentialProvider' })),
      'ResourceNotFoundException',
    );
  });

  test('a wrong secret key gets 403 ForbiddenException', async () => {
    const bad = new IoTClient({
      endpoint: s.server.endpoint,
      region: REGION,
      credentials: { accessKeyId: CREDS.accessKeyId, secretAccessKey: 'not-the-secret' },
      maxAttempts: 1,
    });
    try {
      const e = await rejects(() => bad.send(new ListThingsCommand({})), 'ForbiddenException', /signature/);
      assert.equal(e.$metadata?.httpStatusCode, 403);
    } finally {
      bad.destroy();
    }
    const otherRegion = new IoTClient({
      endpoint: s.server.endpoint,
      region: 'eu-west-1',
      credentials: CREDS,
      maxAttempts: 1,
    });
    try {
      await rejects(() => otherRegion.send(new ListThingsCommand({})), 'ForbiddenException', /region/);
    } finally {
      otherRegion.destroy();
    }
  });

  test('raw HTTP: unsigned → 403, garbage body → 400, oversized → 413, unknown route → 404', async () => {
    const unsigned = await fetch(`${s.server.endpoint}/things`);
    assert.equal(unsigned.status, 403);
    assert.equal(unsigned.headers.get('x-amzn-errortype'), 'ForbiddenException');
    assert.deepEqual(await unsigned.json(), { message: 'Missing Authentication Token' });

    const garbage = await signedFetch(s.server.endpoint, 'PUT', '/jobs/garbage-1', '{"targets": [oops');
    assert.equal(garbage.status, 400);
    assert.equal(garbage.headers.get('x-amzn-errortype'), 'InvalidRequestException');
    assert.match(((await garbage.json()) as { message: string }).message, /not valid JSON/);

    const notObject = await signedFetch(s.server.endpoint, 'PUT', '/jobs/garbage-2', '[1,2,3]');
    assert.equal(notObject.status, 400);
    assert.match(((await notObject.json()) as { message: string }).message, /expected a JSON object/);

    const wrongType = await signedFetch(
      s.server.endpoint,
      'PUT',
      '/jobs/garbage-3',
      JSON.stringify({ targets: 'arn:not-a-list', document: DOC }),
    );
    assert.equal(wrongType.status, 400);
    assert.match(((await wrongType.json()) as { message: string }).message, /^targets: /);

    const huge = await signedFetch(
      s.server.endpoint,
      'PUT',
      '/jobs/huge-1',
      `"${'x'.repeat(1024 * 1024 + 10)}"`,
    );
    assert.equal(huge.status, 413);
    assert.equal(huge.headers.get('x-amzn-errortype'), 'InvalidRequestException');
    await huge.arrayBuffer();

    const unknown = await signedFetch(s.server.endpoint, 'GET', '/managed-job-templates');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.headers.get('x-amzn-errortype'), 'UnknownOperationException');
    await unknown.arrayBuffer();

    const badQuery = await signedFetch(s.server.endpoint, 'GET', '/jobs?maxResults=lots');
    assert.equal(badQuery.status, 400);
    assert.match(((await badQuery.json()) as { message: string }).message, /^maxResults: /);

    // Still serving after all of that.
    const ok = await s.client.send(new ListThingsCommand({ maxResults: 1 }));
    assert.ok(Array.isArray(ok.things));
  });
});
