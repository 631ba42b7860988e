import type { Command } from 'commander';
import { iotClientFor } from '../../operator/clients.ts';
import { cancelJob, createJob, describeJob, listExecutions, listJobs } from '../../operator/jobs.ts';
import { withLastKnownProgress } from '../../operator/live-progress.ts';
import { executionsTable } from '../executions-table.ts';
import { isoSeconds, json, table } from '../format.ts';
import { awsOptions, dataDirOption, parsePositiveInt, targetFrom } from '../options.ts';

const collect = (value: string, previous: string[] = []) => [...previous, value];

function withTarget(cmd: Command): Command {
  cmd.addOption(dataDirOption()).option('--json', 'print JSON for scripts');
  for (const o of awsOptions()) cmd.addOption(o);
  return cmd;
}

export function registerJobCommands(program: Command): void {
  const job = program.command('job').description('AWS IoT jobs (local stack by default, --aws for AWS)');

  withTarget(
    job
      .command('create')
      .description('create a job for things or thing groups')
      .requiredOption('--job-id <id>', 'job id ([a-zA-Z0-9_-]{1,64})')
      .option('--thing <name>', 'target thing (repeatable)', collect)
      .option('--group <name>', 'target thing group (repeatable)', collect)
      .option('--document <file>', 'job document JSON file')
      .option('--document-source <url>', 'S3 URL of the job document')
      .option('--continuous', 'CONTINUOUS target selection (things added to a group later get the job)')
      .option('--description <text>', 'description')
      .option(
        '--presigned-url-expires <sec>',
        'presignedUrlConfig.expiresInSec (60-3600)',
        parsePositiveInt('--presigned-url-expires'),
      )
      .option('--presigned-url-role-arn <arn>', 'presignedUrlConfig.roleArn (AWS)')
      .option(
        '--in-progress-timeout <min>',
        'timeoutConfig.inProgressTimeoutInMinutes',
        parsePositiveInt('--in-progress-timeout'),
      ),
  ).action(async (flags) => {
    const out = await createJob(iotClientFor(targetFrom(flags)), {
      jobId: flags.jobId,
      things: flags.thing,
      groups: flags.group,
      documentFile: flags.document,
      documentSource: flags.documentSource,
      continuous: flags.continuous,
      description: flags.description,
      presignedUrlExpiresInSec: flags.presignedUrlExpires,
      presignedUrlRoleArn: flags.presignedUrlRoleArn,
      inProgressTimeoutInMinutes: flags.inProgressTimeout,
    });
    process.stdout.write(
      flags.json
        ? `${json(out)}\n`
        : `created job ${out.jobId}\n  ${out.jobArn}\n  targets: ${out.targets.join(', ')}\n`,
    );
  });

  withTarget(job.command('describe <jobId>').description('describe a job')).action(
    async (jobId: string, flags) => {
      const out = await describeJob(iotClientFor(targetFrom(flags)), jobId);
      if (flags.json) {
        process.stdout.write(`${json(out)}\n`);
        return;
      }
      const j = out.job;
      const p = j?.jobProcessDetails;
      process.stdout.write(
        `${[
          `job ${j?.jobId}  ${j?.status}  ${j?.targetSelection}`,
          `  arn        ${j?.jobArn}`,
          `  targets    ${(j?.targets ?? []).join(', ')}`,
          `  created    ${isoSeconds(j?.createdAt)}`,
          `  updated    ${isoSeconds(j?.lastUpdatedAt)}`,
          j?.completedAt ? `  completed  ${isoSeconds(j.completedAt)}` : undefined,
          `  executions queued ${p?.numberOfQueuedThings ?? 0}, in progress ${p?.numberOfInProgressThings ?? 0}, ` +
            `succeeded ${p?.numberOfSucceededThings ?? 0}, failed ${p?.numberOfFailedThings ?? 0}, ` +
            `rejected ${p?.numberOfRejectedThings ?? 0}, canceled ${p?.numberOfCanceledThings ?? 0}, ` +
            `timed out ${p?.numberOfTimedOutThings ?? 0}, removed ${p?.numberOfRemovedThings ?? 0}`,
        ]
          .filter((l) => l !== undefined)
          .join('\n')}\n`,
      );
    },
  );

  withTarget(
    job
      .command('list')
      .description('list jobs')
      .option('--status <status>', 'IN_PROGRESS | CANCELED | COMPLETED'),
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
