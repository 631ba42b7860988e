import { readFile } from 'node:fs/promises';
import {
  type AbortCriteria,
  CancelJobCommand,
  CreateJobCommand,
  type CreateJobCommandInput,
  CreateJobTemplateCommand,
  DeleteJobTemplateCommand,
  DescribeJobCommand,
  DescribeJobExecutionCommand,
  DescribeJobTemplateCommand,
  DescribeThingCommand,
  DescribeThingGroupCommand,
  type IoTClient,
  type JobEndBehavior,
  type JobExecutionStatus,
  type JobExecutionSummaryForJob,
  type JobSummary,
  type JobTemplateSummary,
  ListJobExecutionsForJobCommand,
  ListJobsCommand,
  ListJobTemplatesCommand,
  type MaintenanceWindow,
  type RetryCriteria,
} from '@aws-sdk/client-iot';
import { ValidationError } from '../shared/errors.ts';
import { JOB_ID_PATTERN } from '../shared/topics.ts';
import { jobFigures } from './job-configs.ts';

/**
 * Operator-side job commands: typed async functions over @aws-sdk/client-iot that return data. The CLI
 * prints; these never do. The same calls run against the local stack and against AWS IoT.
 */

/** The configurations a job or a job template takes (AWS shapes; see job-configs.ts for flag syntaxes). */
export interface JobConfigRequest {
  presignedUrlExpiresInSec?: number;
  presignedUrlRoleArn?: string;
  inProgressTimeoutInMinutes?: number;
  /** jobExecutionsRolloutConfig.maximumPerMinute (1–1000). */
  maxPerMinute?: number;
  /** jobExecutionsRolloutConfig.exponentialRate. */
  exponentialRate?: {
    baseRatePerMinute: number;
    incrementFactor: number;
    numberOfNotifiedThings?: number;
    numberOfSucceededThings?: number;
  };
  abort?: AbortCriteria[];
  retry?: RetryCriteria[];
}

export interface CreateJobRequest extends JobConfigRequest {
  jobId: string;
  things?: string[];
  groups?: string[];
  /** Path to the job document (JSON). */
  documentFile?: string;
  document?: string;
  documentSource?: string;
  continuous?: boolean;
  description?: string;
  /** schedulingConfig: ISO 8601 / YYYY-MM-DDTHH:MM (UTC) times, end behavior, maintenance windows. */
  startTime?: string;
  endTime?: string;
  endBehavior?: JobEndBehavior;
  maintenanceWindows?: MaintenanceWindow[];
  /** A job template's id or ARN: the job takes its document and configurations. */
  template?: string;
}

/** The AWS members for a request's configurations (undefined members left out). */
export function configMembers(req: JobConfigRequest): Partial<CreateJobCommandInput> {
  const out: Partial<CreateJobCommandInput> = {};
  if (req.presignedUrlExpiresInSec !== undefined || req.presignedUrlRoleArn) {
    out.presignedUrlConfig = { expiresInSec: req.presignedUrlExpiresInSec, roleArn: req.presignedUrlRoleArn };
  }
  if (req.inProgressTimeoutInMinutes !== undefined) {
    out.timeoutConfig = { inProgressTimeoutInMinutes: req.inProgressTimeoutInMinutes };
  }
  if (req.maxPerMinute !== undefined || req.exponentialRate !== undefined) {
    const e = req.exponentialRate;
    out.jobExecutionsRolloutConfig = {
      maximumPerMinute: req.maxPerMinute,
      exponentialRate:
        e === undefined
          ? undefined
          : {
              baseRatePerMinute: e.baseRatePerMinute,
              incrementFactor: e.incrementFactor,
              rateIncreaseCriteria: {
                numberOfNotifiedThings: e.numberOfNotifiedThings,
                numberOfSucceededThings: e.numberOfSucceededThings,
              },
            },
    };
  }
  if (req.abort?.length) out.abortConfig = { criteriaList: req.abort };
  if (req.retry?.length) out.jobExecutionsRetryConfig = { criteriaList: req.retry };
  return out;
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
  if (!document && !req.documentSource && !req.template)
    throw new ValidationError('document', 'give --document FILE, --document-source URL or --template ID');

  const input: CreateJobCommandInput = {
    jobId: req.jobId,
    targets,
    document,
    documentSource: req.documentSource,
    description: req.description,
    targetSelection: req.continuous ? 'CONTINUOUS' : 'SNAPSHOT',
    ...configMembers(req),
  };
  if (req.template !== undefined) input.jobTemplateArn = await templateArn(iot, req.template);
  if (req.startTime || req.endTime || req.endBehavior || req.maintenanceWindows?.length) {
    input.schedulingConfig = {
      startTime: req.startTime,
      endTime: req.endTime,
      endBehavior: req.endBehavior,
      maintenanceWindows: req.maintenanceWindows?.length ? req.maintenanceWindows : undefined,
    };
  }
  const out = await iot.send(new CreateJobCommand(input));
  return { jobId: out.jobId ?? req.jobId, jobArn: out.jobArn, description: out.description, targets };
}

/** DescribeJob, with the figures `ota job describe` shows (counts, rollout rate, abort state). */
export async function describeJob(iot: IoTClient, jobId: string) {
  const out = await iot.send(new DescribeJobCommand({ jobId }));
  return {
    job: out.job,
    documentSource: out.documentSource,
    figures: out.job === undefined ? undefined : jobFigures(out.job),
  };
}

async function templateArn(iot: IoTClient, idOrArn: string): Promise<string> {
  if (idOrArn.startsWith('arn:')) return idOrArn;
  const t = await iot.send(new DescribeJobTemplateCommand({ jobTemplateId: idOrArn }));
  if (!t.jobTemplateArn) throw new ValidationError('template', `${idOrArn} has no ARN`);
  return t.jobTemplateArn;
}

export interface CreateTemplateRequest extends JobConfigRequest {
  templateId: string;
  description: string;
  documentFile?: string;
  documentSource?: string;
  /** Copy an existing job's document and configurations. */
  fromJob?: string;
  maintenanceWindows?: MaintenanceWindow[];
}

export async function createJobTemplate(iot: IoTClient, req: CreateTemplateRequest) {
  const document = req.documentFile === undefined ? undefined : await readFile(req.documentFile, 'utf8');
  let jobArn: string | undefined;
  if (req.fromJob !== undefined)
    jobArn = (await iot.send(new DescribeJobCommand({ jobId: req.fromJob }))).job?.jobArn;
  const {
    presignedUrlConfig,
    timeoutConfig,
    jobExecutionsRolloutConfig,
    abortConfig,
    jobExecutionsRetryConfig,
  } = configMembers(req);
  return iot.send(
    new CreateJobTemplateCommand({
      jobTemplateId: req.templateId,
      description: req.description,
      document,
      documentSource: req.documentSource,
      jobArn,
      presignedUrlConfig,
      timeoutConfig,
      jobExecutionsRolloutConfig,
      abortConfig,
      jobExecutionsRetryConfig,
      maintenanceWindows: req.maintenanceWindows?.length ? req.maintenanceWindows : undefined,
    }),
  );
}

export async function listJobTemplates(iot: IoTClient): Promise<JobTemplateSummary[]> {
  const templates: JobTemplateSummary[] = [];
  let nextToken: string | undefined;
  do {
    const out = await iot.send(new ListJobTemplatesCommand({ nextToken, maxResults: 100 }));
    templates.push(...(out.jobTemplates ?? []));
    nextToken = out.nextToken;
  } while (nextToken);
  return templates;
}

export async function describeJobTemplate(iot: IoTClient, jobTemplateId: string) {
  return iot.send(new DescribeJobTemplateCommand({ jobTemplateId }));
}

export async function deleteJobTemplate(iot: IoTClient, jobTemplateId: string) {
  await iot.send(new DeleteJobTemplateCommand({ jobTemplateId }));
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
