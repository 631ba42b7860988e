/**
 * CreateJob: validation (AWS's patterns and ranges, named fields), the job template a job may start from,
 * and the new job's first steps (rollout.ts: SCHEDULED, or its first executions).
 */

import type { JobsContext } from '../context.ts';
import { documentProblem } from '../document.ts';
import { beginJob } from '../lifecycle/rollout.ts';
import { CONTROL_CHARS } from '../mqtt/requests.ts';
import type { CreateJobInput, JobRecord, JobTemplateRecord, TargetSelection } from '../types.ts';
import { cpErr, groupOrThrow, requireJobId, thingOrThrow } from './common.ts';
import { validateJobConfigs, validateSchedulingConfig, withConfigsFrom } from './job-config.ts';

export const TEMPLATE_ID_PATTERN = /^[a-zA-Z0-9_-]{1,64}$/;

export function requireDescription(d: unknown, field = 'description'): void {
  if (d !== undefined && (typeof d !== 'string' || d.length > 2028 || CONTROL_CHARS.test(d))) {
    throw cpErr(
      'InvalidRequestException',
      `${field} must be at most 2028 characters without control characters`,
    );
  }
}

/** `arn:aws:iot:<region>:<account>:jobtemplate/<id>` of this service → the template. */
export function templateOf(ctx: JobsContext, arn: string): JobTemplateRecord {
  const m = /^arn:aws:iot:([a-z0-9-]+):(\d{12}):jobtemplate\/(.+)$/.exec(arn);
  if (m === null) {
    throw cpErr(
      'InvalidRequestException',
      `jobTemplateArn ${arn} is not a job template ARN (…:jobtemplate/<id>)`,
    );
  }
  const [, region, account, id = ''] = m;
  const t = region === ctx.region && account === ctx.accountId ? ctx.store.templates.get(id) : undefined;
  if (t === undefined) throw cpErr('ResourceNotFoundException', `job template ${arn} does not exist`);
  return t;
}

/**
 * A job created from a template takes the template's document (or documentSource) and configurations;
 * whatever the CreateJob request gives itself wins.
 */
export function withTemplate(ctx: JobsContext, input: CreateJobInput): CreateJobInput {
  if (input.jobTemplateArn === undefined) return input;
  const t = templateOf(ctx, input.jobTemplateArn);
  const merged: CreateJobInput = withConfigsFrom(input, t);
  if (input.document === undefined && input.documentSource === undefined) {
    if (t.document !== undefined) merged.document = t.document;
    else if (t.documentSource !== undefined) merged.documentSource = t.documentSource;
  }
  if (merged.description === undefined) merged.description = t.description;
  if (t.maintenanceWindows !== undefined && merged.schedulingConfig?.maintenanceWindows === undefined) {
    merged.schedulingConfig = { ...merged.schedulingConfig, maintenanceWindows: t.maintenanceWindows };
  }
  return merged;
}

function parseTarget(ctx: JobsContext, arn: unknown): void {
  if (typeof arn !== 'string') throw cpErr('InvalidRequestException', 'targets must be ARN strings');
  const m = /^arn:aws:iot:([a-z0-9-]+):(\d{12}):(thing|thinggroup)\/(.+)$/.exec(arn);
  if (m === null) {
    throw cpErr(
      'InvalidRequestException',
      `target ${arn} is not a thing ARN (arn:aws:iot:<region>:<account>:thing/<name>) or thing-group ARN (…:thinggroup/<name>)`,
    );
  }
  const [, r, acct, kind, name = ''] = m;
  if (r !== ctx.region || acct !== ctx.accountId) {
    throw cpErr(
      'ResourceNotFoundException',
      `target ${arn} is not in region ${ctx.region} and account ${ctx.accountId}`,
    );
  }
  if (kind === 'thing') thingOrThrow(ctx, name);
  else groupOrThrow(ctx, name);
}

/** Validates a CreateJob (template already applied) and creates the job in one transaction. */
export function createJobRecord(
  ctx: JobsContext,
  input: CreateJobInput,
  document: string,
  documentSource: string | undefined,
): JobRecord {
  const jobId = requireJobId(input.jobId);
  const problem = documentProblem(document);
  if (problem !== undefined) throw cpErr('InvalidRequestException', problem);
  const targetSelection: TargetSelection = input.targetSelection ?? 'SNAPSHOT';
  if (targetSelection !== 'SNAPSHOT' && targetSelection !== 'CONTINUOUS') {
    throw cpErr('InvalidRequestException', 'targetSelection must be SNAPSHOT or CONTINUOUS');
  }
  if (!Array.isArray(input.targets) || input.targets.length === 0) {
    throw cpErr('InvalidRequestException', 'targets must list at least one thing or thing-group ARN');
  }
  requireDescription(input.description);
  const configs = validateJobConfigs(input);
  return ctx.mutate((at, out) => {
    const scheduling =
      input.schedulingConfig === undefined
        ? undefined
        : validateSchedulingConfig(input.schedulingConfig, at, ctx.minuteMs);
    if (ctx.store.getJob(jobId) !== undefined) {
      throw cpErr('ResourceAlreadyExistsException', `job ${jobId} already exists`);
    }
    for (const t of input.targets) parseTarget(ctx, t);
    const job: JobRecord = {
      jobId,
      jobArn: ctx.arn.job(jobId),
      targets: [...input.targets],
      targetSelection,
      document,
      status: 'IN_PROGRESS',
      createdAt: at,
      lastUpdatedAt: at,
      ...configs,
    };
    if (scheduling !== undefined) job.schedulingConfig = scheduling;
    if (documentSource !== undefined) job.documentSource = documentSource;
    if (input.description !== undefined) job.description = input.description;
    if (input.jobTemplateArn !== undefined) job.jobTemplateArn = input.jobTemplateArn;
    return beginJob(ctx, job, at, out);
  });
}
