/** Job templates (AWS IoT CreateJobTemplate, DescribeJobTemplate, ListJobTemplates, DeleteJobTemplate). */
import { errorMessage } from '../../../shared/errors.ts';
import type { JobsContext } from '../context.ts';
import { documentProblem } from '../document.ts';
import type { CreateJobTemplateInput, JobsControlPlane, JobTemplateRecord } from '../types.ts';
import { cpErr, jobOrThrow, pageOf } from './common.ts';
import { requireDescription, TEMPLATE_ID_PATTERN } from './create-job.ts';
import { validateJobConfigs, validateMaintenanceWindows, withConfigsFrom } from './job-config.ts';

type TemplateOperations = Pick<
  JobsControlPlane,
  | 'createJobTemplate'
  | 'createJobTemplateAsync'
  | 'describeJobTemplate'
  | 'listJobTemplates'
  | 'deleteJobTemplate'
>;

function requireTemplateId(id: unknown): string {
  if (typeof id !== 'string' || !TEMPLATE_ID_PATTERN.test(id)) {
    throw cpErr('InvalidRequestException', `jobTemplateId must match ${TEMPLATE_ID_PATTERN.source}`);
  }
  return id;
}

export function templateOperations(ctx: JobsContext): TemplateOperations {
  const { store } = ctx;

  /** `jobArn`: the template copies that job's document and configurations (AWS CreateJobTemplate). */
  function fromJob(input: CreateJobTemplateInput): CreateJobTemplateInput {
    if (input.jobArn === undefined) return input;
    const m = /^arn:aws:iot:[a-z0-9-]+:\d{12}:job\/(.+)$/.exec(input.jobArn);
    if (m === null) throw cpErr('InvalidRequestException', `jobArn ${input.jobArn} is not a job ARN`);
    const job = jobOrThrow(ctx, m[1] ?? '');
    return withConfigsFrom({ ...input, document: input.document ?? job.document }, job);
  }

  function create(input: CreateJobTemplateInput, document: string | undefined): JobTemplateRecord {
    const id = requireTemplateId(input.jobTemplateId);
    if (typeof input.description !== 'string')
      throw cpErr('InvalidRequestException', 'description is required');
    requireDescription(input.description);
    if (document !== undefined) {
      const problem = documentProblem(document);
      if (problem !== undefined) throw cpErr('InvalidRequestException', problem);
    }
    const t: JobTemplateRecord = {
      jobTemplateId: id,
      jobTemplateArn: `arn:aws:iot:${ctx.region}:${ctx.accountId}:jobtemplate/${id}`,
      description: input.description,
      createdAt: 0,
      ...validateJobConfigs(input),
    };
    if (document !== undefined) t.document = document;
    if (input.documentSource !== undefined && document === undefined) t.documentSource = input.documentSource;
    if (input.maintenanceWindows !== undefined) {
      t.maintenanceWindows = validateMaintenanceWindows(
        input.maintenanceWindows,
        'maintenanceWindows',
        ctx.clock.now(),
      );
    }
    return ctx.mutate((at) => {
      if (store.templates.get(id) !== undefined) {
        throw cpErr('ConflictException', `job template ${id} already exists`);
      }
      const record = { ...t, createdAt: at };
      store.templates.insert(record);
      return record;
    });
  }

  function checkSources(input: CreateJobTemplateInput): void {
    const given = [input.document, input.documentSource, input.jobArn].filter((x) => x !== undefined).length;
    if (given > 1) throw cpErr('InvalidRequestException', 'give one of document, documentSource and jobArn');
    if (given === 0) throw cpErr('InvalidRequestException', 'document, documentSource or jobArn is required');
  }

  const ops: TemplateOperations = {
    createJobTemplate(request) {
      checkSources(request);
      const input = fromJob(request);
      // A documentSource is kept as given and fetched when a job is created from the template.
      return create(input, input.document);
    },
    async createJobTemplateAsync(request) {
      checkSources(request);
      const input = fromJob(request);
      if (input.documentSource === undefined || ctx.fetchDocument === undefined)
        return ops.createJobTemplate(request);
      requireTemplateId(input.jobTemplateId);
      let document: string;
      try {
        document = await ctx.fetchDocument(input.documentSource);
      } catch (err) {
        throw cpErr(
          'InvalidRequestException',
          `documentSource ${input.documentSource} could not be read: ${errorMessage(err)}`,
        );
      }
      const problem = documentProblem(document, `documentSource ${input.documentSource}`);
      if (problem !== undefined) throw cpErr('InvalidRequestException', problem);
      return create(input, undefined);
    },
    describeJobTemplate(id) {
      const t = store.templates.get(requireTemplateId(id));
      if (t === undefined) throw cpErr('ResourceNotFoundException', `job template ${id} does not exist`);
      return t;
    },
    listJobTemplates: (page) => pageOf(page, (after, limit) => store.templates.list(after, limit)),
    deleteJobTemplate(id) {
      requireTemplateId(id);
      ctx.mutate(() => {
        if (!store.templates.delete(id))
          throw cpErr('ResourceNotFoundException', `job template ${id} does not exist`);
      });
    },
  };
  return ops;
}
