import type { Command } from 'commander';
import { iotClientFor } from '../../operator/clients.ts';
import { type JobFigures, parseMaintenanceWindow } from '../../operator/job-configs.ts';
import {
  cancelJob,
  createJob,
  createJobTemplate,
  deleteJobTemplate,
  describeJob,
  describeJobTemplate,
  listExecutions,
  listJobs,
  listJobTemplates,
} from '../../operator/jobs.ts';
import { withLastKnownProgress } from '../../operator/live-progress.ts';
import { executionsTable } from '../executions-table.ts';
import { isoSeconds, json, table } from '../format.ts';
import { collect, configFrom, withConfigFlags } from '../job-config-flags.ts';
import { awsOptions, dataDirOption, targetFrom } from '../options.ts';

function figuresText(f: JobFigures): string[] {
  const c = f.counts;
  const lines = [
    `  executions queued ${c.queued}, in progress ${c.inProgress}, succeeded ${c.succeeded}, failed ${c.failed}, ` +
      `rejected ${c.rejected}, canceled ${c.canceled}, timed out ${c.timedOut}, removed ${c.removed}`,
  ];
  if (f.ratePerMinute !== undefined)
    lines.push(`  rollout    ${f.ratePerMinute} per minute now (${f.notified} notified)`);
  if (f.abort.state === 'aborted') lines.push(`  abort      ABORTED: ${f.abort.reason}`);
  if (f.abort.state === 'armed') for (const c2 of f.abort.criteria) lines.push(`  abort      armed: ${c2}`);
  return lines;
}

function withTarget(cmd: Command): Command {
  cmd.addOption(dataDirOption()).option('--json', 'print JSON for scripts');
  for (const o of awsOptions()) cmd.addOption(o);
  return cmd;
}

export function registerJobCommands(program: Command): void {
  const job = program.command('job').description('AWS IoT jobs (local stack by default, --aws for AWS)');
  registerJobCreate(job);
  registerJobDescribe(job);
  registerJobList(job);
  registerJobCancel(job);
  registerJobExecutions(job);
  registerJobTemplateCommands(job);
}

/** `ota job create` */
function registerJobCreate(job: Command): void {
  withTarget(
    withConfigFlags(
      job
        .command('create')
        .description('create a job for things or thing groups')
        .requiredOption('--job-id <id>', 'job id ([a-zA-Z0-9_-]{1,64})')
        .option('--thing <name>', 'target thing (repeatable)', collect)
        .option('--group <name>', 'target thing group (repeatable)', collect)
        .option('--document <file>', 'job document JSON file')
        .option('--document-source <url>', 'S3 URL of the job document')
        .option('--template <id|arn>', 'job template: its document and configurations')
        .option('--continuous', 'CONTINUOUS target selection (things added to a group later get the job)')
        .option('--description <text>', 'description')
        .option('--start-time <time>', 'schedulingConfig.startTime (YYYY-MM-DDTHH:MM UTC; ≥ 30 min ahead)')
        .option('--end-time <time>', 'schedulingConfig.endTime')
        .option('--end-behavior <b>', 'schedulingConfig.endBehavior: STOP_ROLLOUT | CANCEL | FORCE_CANCEL'),
    ),
  ).action(async (flags) => {
    const out = await createJob(iotClientFor(targetFrom(flags)), {
      jobId: flags.jobId,
      things: flags.thing,
      groups: flags.group,
      documentFile: flags.document,
      documentSource: flags.documentSource,
      template: flags.template,
      continuous: flags.continuous,
      description: flags.description,
      startTime: flags.startTime,
      endTime: flags.endTime,
      endBehavior: flags.endBehavior,
      maintenanceWindows: (flags.maintenanceWindow as string[] | undefined)?.map(parseMaintenanceWindow),
      ...configFrom(flags),
    });
    process.stdout.write(
      flags.json
        ? `${json(out)}\n`
        : `created job ${out.jobId}\n  ${out.jobArn}\n  targets: ${out.targets.join(', ')}\n`,
    );
  });
}

/** `ota job describe <jobId>` */
function registerJobDescribe(job: Command): void {
  withTarget(job.command('describe <jobId>').description('describe a job')).action(
    async (jobId: string, flags) => {
      const out = await describeJob(iotClientFor(targetFrom(flags)), jobId);
      if (flags.json) {
        process.stdout.write(`${json(out)}\n`);
        return;
      }
      const j = out.job;
      process.stdout.write(
        `${[
          `job ${j?.jobId}  ${j?.status}  ${j?.targetSelection}`,
          `  arn        ${j?.jobArn}`,
          `  targets    ${(j?.targets ?? []).join(', ')}`,
          `  created    ${isoSeconds(j?.createdAt)}`,
          `  updated    ${isoSeconds(j?.lastUpdatedAt)}`,
          j?.completedAt ? `  completed  ${isoSeconds(j.completedAt)}` : undefined,
          ...(out.figures === undefined ? [] : figuresText(out.figures)),
          j?.reasonCode ? `  reason     ${j.reasonCode}${j.comment ? `: ${j.comment}` : ''}` : undefined,
        ]
          .filter((l) => l !== undefined)
          .join('\n')}\n`,
      );
    },
  );
}

/** `ota job list` */
function registerJobList(job: Command): void {
  withTarget(
    job
      .command('list')
      .description('list jobs')
      .option('--status <status>', 'IN_PROGRESS | SCHEDULED | CANCELED | COMPLETED'),
  ).action(async (flags) => {
    const jobs = await listJobs(iotClientFor(targetFrom(flags)), { status: flags.status });
    process.stdout.write(
      flags.json
        ? `${json(jobs)}\n`
        : `${table(
            ['JOB', 'STATUS', 'SELECTION', 'CREATED'],
            jobs.map((j) => [j.jobId, j.status, j.targetSelection, isoSeconds(j.createdAt)]),
          )}\n`,
    );
  });
}

/** `ota job cancel <jobId>` */
function registerJobCancel(job: Command): void {
  withTarget(
    job
      .command('cancel <jobId>')
      .description('cancel a job (QUEUED executions; IN_PROGRESS ones only with --force)')
      .option('--force', 'also cancel IN_PROGRESS executions')
      .option('--comment <text>', 'comment'),
  ).action(async (jobId: string, flags) => {
    const out = await cancelJob(iotClientFor(targetFrom(flags)), jobId, {
      force: flags.force,
      comment: flags.comment,
    });
    process.stdout.write(
      flags.json ? `${json({ jobId: out.jobId, jobArn: out.jobArn })}\n` : `canceled job ${out.jobId}\n`,
    );
  });
}

/** `ota job executions <jobId>` */
function registerJobExecutions(job: Command): void {
  withTarget(
    job
      .command('executions <jobId>')
      .description("list a job's executions with their status details")
      .option('--status <status>', 'filter by status')
      .option('--no-live', "don't read the progress topic for IN_PROGRESS executions (local stack)"),
  ).action(async (jobId: string, flags) => {
    const target = targetFrom(flags);
    const listed = await listExecutions(iotClientFor(target), jobId, { status: flags.status });
    const rows = flags.live ? await withLastKnownProgress(listed, jobId, target) : listed;
    process.stdout.write(flags.json ? `${json(rows)}\n` : `${executionsTable(rows)}\n`);
  });
}

/** `ota job template create|list|describe|delete` */
function registerJobTemplateCommands(job: Command): void {
  const template = job
    .command('template')
    .description('job templates (a document and configurations to create jobs from)');
  registerTemplateCreate(template);
  registerTemplateList(template);
  registerTemplateDescribe(template);
  registerTemplateDelete(template);
}

/** `ota job template create <templateId>` */
function registerTemplateCreate(template: Command): void {
  withTarget(
    withConfigFlags(
      template
        .command('create <templateId>')
        .description('create a job template')
        .requiredOption('--description <text>', 'description (required by AWS)')
        .option('--document <file>', 'job document JSON file')
        .option('--document-source <url>', 'S3 URL of the job document')
        .option('--from-job <jobId>', "copy an existing job's document and configurations"),
    ),
  ).action(async (templateId: string, flags) => {
    const out = await createJobTemplate(iotClientFor(targetFrom(flags)), {
      templateId,
      description: flags.description,
      documentFile: flags.document,
      documentSource: flags.documentSource,
      fromJob: flags.fromJob,
      maintenanceWindows: (flags.maintenanceWindow as string[] | undefined)?.map(parseMaintenanceWindow),
      ...configFrom(flags),
    });
    const summary = { jobTemplateId: out.jobTemplateId, jobTemplateArn: out.jobTemplateArn };
    process.stdout.write(
      flags.json
        ? `${json(summary)}\n`
        : `created job template ${out.jobTemplateId}\n  ${out.jobTemplateArn}\n`,
    );
  });
}

/** `ota job template list` */
function registerTemplateList(template: Command): void {
  withTarget(template.command('list').description('list job templates')).action(async (flags) => {
    const rows = await listJobTemplates(iotClientFor(targetFrom(flags)));
    process.stdout.write(
      flags.json
        ? `${json(rows)}\n`
        : `${table(
            ['TEMPLATE', 'CREATED', 'DESCRIPTION'],
            rows.map((t) => [t.jobTemplateId, isoSeconds(t.createdAt), t.description]),
          )}\n`,
    );
  });
}

/** `ota job template describe <templateId>` */
function registerTemplateDescribe(template: Command): void {
  withTarget(template.command('describe <templateId>').description('describe a job template')).action(
    async (templateId: string, flags) => {
      const out = await describeJobTemplate(iotClientFor(targetFrom(flags)), templateId);
      const { $metadata: _m, ...t } = out;
      process.stdout.write(`${json(t)}\n`);
    },
  );
}

/** `ota job template delete <templateId>` */
function registerTemplateDelete(template: Command): void {
  withTarget(template.command('delete <templateId>').description('delete a job template')).action(
    async (templateId: string, flags) => {
      await deleteJobTemplate(iotClientFor(targetFrom(flags)), templateId);
      process.stdout.write(
        flags.json ? `${json({ deleted: templateId })}\n` : `deleted job template ${templateId}\n`,
      );
    },
  );
}
