import { readFile } from 'node:fs/promises';
import {
  CancelJobCommand,
  CreateJobCommand,
  type CreateJobCommandInput,
  DescribeJobCommand,
  DescribeJobExecutionCommand,
  DescribeThingCommand,
  DescribeThingGroupCommand,
  type IoTClient,
  type JobExecutionStatus,
  type JobExecutionSummaryForJob,
  type JobSummary,
  ListJobExecutionsForJobCommand,
  ListJobsCommand,
} from '@aws-sdk/client-iot';
import { ValidationError } from '../shared/errors.ts';
import { JOB_ID_PATTERN } from '../shared/topics.ts';

/**
 * Operator-side job commands: typed async functions over @aws-sdk/client-iot that return data. The CLI
 * prints; these never do. The same calls run against the local stack and against AWS IoT.
 */

export interface CreateJobRequest {
  jobId: string;
  things?: string[];
  groups?: string[];
  /** Path to the job document (JSON). */
  documentFile?: string;
  document?: string;
  documentSource?: string;
  continuous?: boolean;
  description?: string;
  presignedUrlExpiresInSec?: number;
  presignedUrlRoleArn?: string;
  inProgressTimeoutInMinutes?: number;
}

export async function createJob(iot: IoTClient, req: CreateJobRequest) {
  if (!JOB_ID_PATTERN.test(req.jobId)) {
    throw new ValidationError('job-id', `must match ${JOB_ID_PATTERN.source}`);
  }
  const targets: string[] = [];
  for (const thingName of req.things ?? []) {
    const thing = await iot.send(new DescribeThingCommand({ thingName }));
    if (!thing.thingArn) throw new ValidationError('thing', `${thingName} has no ARN`);
    targets.push(thing.thingArn);
  }
  for (const thingGroupName of req.groups ?? []) {
    const group = await iot.send(new DescribeThingGroupCommand({ thingGroupName }));
    if (!group.thingGroupArn) throw new ValidationError('group', `${thingGroupName} has no ARN`);
    targets.push(group.thingGroupArn);
  }
  if (targets.length === 0) throw new ValidationError('thing', 'give at least one --thing or --group');

  let document = req.document;
  if (req.documentFile) {
    document = await readFile(req.documentFile, 'utf8');
    try {
      JSON.parse(document);
    } catch (err) {
      throw new ValidationError(
        'document',
        `${req.documentFile} is not valid JSON: ${(err as Error).message}`,
      );
    }
  }
  if (!document && !req.documentSource)
    throw new ValidationError('document', 'give --document FILE or --document-source URL');

  const input: CreateJobCommandInput = {
    jobId: req.jobId,
    targets,
    document,
    documentSource: req.documentSource,
    description: req.description,
    targetSelection: req.continuous ? 'CONTINUOUS' : 'SNAPSHOT',
  };
  if (req.presignedUrlExpiresInSec !== undefined || req.presignedUrlRoleArn) {
    input.presignedUrlConfig = {
      expiresInSec: req.presignedUrlExpiresInSec,
      roleArn: req.presignedUrlRoleArn,
    };
  }
  if (req.inProgressTimeoutInMinutes !== undefined) {
    input.timeoutConfig = { inProgressTimeoutInMinutes: req.inProgressTimeoutInMinutes };
  }
  const out = await iot.send(new CreateJobCommand(input));
  return { jobId: out.jobId ?? req.jobId, jobArn: out.jobArn, description: out.description, targets };
}

export async function describeJob(iot: IoTClient, jobId: string) {
  const out = await iot.send(new DescribeJobCommand({ jobId }));
  return { job: out.job, documentSource: out.documentSource };
}

export async function listJobs(iot: IoTClient, opts: { status?: string } = {}): Promise<JobSummary[]> {
  const jobs: JobSummary[] = [];
  let nextToken: string | undefined;
  do {
    const out = await iot.send(
      new ListJobsCommand({ nextToken, maxResults: 100, status: opts.status as JobSummary['status'] }),
    );
    jobs.push(...(out.jobs ?? []));
    nextToken = out.nextToken;
  } while (nextToken);
  return jobs;
}

export async function cancelJob(
  iot: IoTClient,
  jobId: string,
  opts: { force?: boolean; comment?: string } = {},
) {
  return iot.send(new CancelJobCommand({ jobId, force: opts.force, comment: opts.comment }));
}

export interface ExecutionRow {
  thingName: string;
  status: string;
  executionNumber?: number;
  queuedAt?: Date;
  startedAt?: Date;
  lastUpdatedAt?: Date;
  statusDetails?: Record<string, string>;
  versionNumber?: number;
}

/** Lists a job's executions, then describes each to include statusDetails (ListJobExecutionsForJob omits them). */
export async function listExecutions(
  iot: IoTClient,
  jobId: string,
  opts: { status?: JobExecutionStatus; details?: boolean } = {},
): Promise<ExecutionRow[]> {
  const summaries: JobExecutionSummaryForJob[] = [];
  let nextToken: string | undefined;
  do {
    const out = await iot.send(
      new ListJobExecutionsForJobCommand({ jobId, status: opts.status, maxResults: 250, nextToken }),
    );
    summaries.push(...(out.executionSummaries ?? []));
    nextToken = out.nextToken;
  } while (nextToken);
  const rows: ExecutionRow[] = [];
  for (const s of summaries) {
    const thingName = s.thingArn?.split('/').pop() ?? '?';
    const row: ExecutionRow = {
      thingName,
      status: s.jobExecutionSummary?.status ?? 'UNKNOWN',
      executionNumber: s.jobExecutionSummary?.executionNumber,
      queuedAt: s.jobExecutionSummary?.queuedAt,
      startedAt: s.jobExecutionSummary?.startedAt,
      lastUpdatedAt: s.jobExecutionSummary?.lastUpdatedAt,
    };
    if (opts.details !== false && summaries.length <= 200) {
      const d = await iot.send(new DescribeJobExecutionCommand({ jobId, thingName }));
      row.statusDetails = d.execution?.statusDetails?.detailsMap;
      row.versionNumber = d.execution?.versionNumber;
    }
    rows.push(row);
  }
  return rows;
}
