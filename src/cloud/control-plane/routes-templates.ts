/** Control-plane routes of AWS IoT job templates. */
import { z } from 'zod';
import type { CreateJobTemplateInput, JobTemplateRecord } from '../jobs/types.ts';
import {
  defined,
  deleteRoute,
  label,
  page,
  pageQuery,
  parseBody,
  parseQuery,
  type Route,
  type RouteContext,
  refuseUnsupported,
  sec,
} from './route-kit.ts';
import { configObject, jobConfigMembers } from './routes-jobs.ts';

const CreateJobTemplateBody = z.object({
  description: z.string({ error: 'description is required' }),
  jobArn: z.string().optional(),
  ...jobConfigMembers,
  maintenanceWindows: z.array(configObject).optional(),
});

function templateJson(t: JobTemplateRecord) {
  return {
    jobTemplateArn: t.jobTemplateArn,
    jobTemplateId: t.jobTemplateId,
    description: t.description,
    documentSource: t.documentSource,
    document: t.document,
    createdAt: sec(t.createdAt),
    presignedUrlConfig: t.presignedUrlConfig,
    jobExecutionsRolloutConfig: t.jobExecutionsRolloutConfig,
    abortConfig: t.abortConfig,
    timeoutConfig: t.timeoutConfig,
    jobExecutionsRetryConfig: t.jobExecutionsRetryConfig,
    maintenanceWindows: t.maintenanceWindows,
  };
}

export const TEMPLATE_ROUTES: readonly Route[] = [
  {
    operation: 'CreateJobTemplate',
    method: 'PUT',
    pattern: '/job-templates/{jobTemplateId}',
    async handle(ctx, req) {
      refuseUnsupported(req.body, ['destinationPackageVersions'], 'CreateJobTemplate');
      const { tags: _tags, ...b } = parseBody(CreateJobTemplateBody, req.body);
      const input = { jobTemplateId: label(req, 'jobTemplateId'), ...defined(b) } as CreateJobTemplateInput;
      const t = await ctx.controlPlane.createJobTemplateAsync(input);
      return { jobTemplateArn: t.jobTemplateArn, jobTemplateId: t.jobTemplateId };
    },
  },
  {
    operation: 'DescribeJobTemplate',
    method: 'GET',
    pattern: '/job-templates/{jobTemplateId}',
    handle(ctx, req) {
      return templateJson(ctx.controlPlane.describeJobTemplate(label(req, 'jobTemplateId')));
    },
  },
  {
    operation: 'ListJobTemplates',
    method: 'GET',
    pattern: '/job-templates',
    handle(ctx, req) {
      const q = parseQuery(pageQuery, req.query);
      const result = ctx.controlPlane.listJobTemplates(page(q));
      return {
        jobTemplates: result.items.map((t) => ({
          jobTemplateArn: t.jobTemplateArn,
          jobTemplateId: t.jobTemplateId,
          description: t.description,
          createdAt: sec(t.createdAt),
        })),
        nextToken: result.nextToken,
      };
    },
  },
  deleteRoute<RouteContext>(
    'DeleteJobTemplate',
    '/job-templates/{jobTemplateId}',
    'jobTemplateId',
    (ctx, id) => ctx.controlPlane.deleteJobTemplate(id),
  ),
];
