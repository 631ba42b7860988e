import { z } from 'zod';
import type { SecurityRegistry } from '../security/registry.ts';
import {
  createRouter,
  epochSeconds,
  invalidRequest,
  parseInput,
  parseJsonBody,
  type RestRequest,
  type RestRoute,
  requiredLabel,
} from './router.ts';

/**
 * The AWS IoT control-plane operations a device is provisioned with (`ota provision`): certificates, IoT
 * policies and their attachments, thing principals and role aliases, served from the security registry.
 * Methods, paths, query and header names, body and response members are those of the @aws-sdk/client-iot
 * operation schemas (e.g. `CreateKeysAndCertificate$ = { http: ['POST', '/keys-and-certificate', 200] }`).
 */

export interface ProvisioningContext {
  registry: SecurityRegistry;
}

type Route = RestRoute<ProvisioningContext>;

const booleanQuery = z
  .enum(['true', 'false'], { error: "expected 'true' or 'false'" })
  .transform((v) => v === 'true');
const tags = z.array(z.object({ Key: z.string(), Value: z.string().optional() })).optional();

function query<S extends z.ZodRawShape>(shape: S, req: RestRequest): z.output<z.ZodObject<S>> {
  return parseInput(z.object(shape), req.query, 'query');
}

function principalHeader(req: RestRequest): string {
  const v = req.headers['x-amzn-principal'];
  if (typeof v !== 'string' || v === '')
    throw invalidRequest('principal: the x-amzn-principal header is required');
  return v;
}

const CreatePolicyBody = z.object({ policyDocument: z.string().min(1), tags });
const TargetBody = z.object({ target: z.string().min(1) });
const CreateRoleAliasBody = z.object({
  roleArn: z.string().min(1),
  credentialDurationSeconds: z.number().int().optional(),
  tags,
});

export const PROVISIONING_ROUTES: readonly Route[] = [
  {
    operation: 'CreateKeysAndCertificate',
    method: 'POST',
    pattern: '/keys-and-certificate',
    async handle(ctx, req) {
      const q = query({ setAsActive: booleanQuery.optional() }, req);
      return ctx.registry.createKeysAndCertificate({ setAsActive: q.setAsActive ?? false });
    },
  },
  {
    operation: 'DescribeCertificate',
    method: 'GET',
    pattern: '/certificates/{certificateId}',
    handle(ctx, req) {
      const c = ctx.registry.describeCertificate(requiredLabel(req, 'certificateId'));
      return {
        certificateDescription: {
          certificateArn: c.certificateArn,
          certificateId: c.certificateId,
          status: c.status,
          certificatePem: c.certificatePem,
          ownedBy: c.certificateArn.split(':')[4],
          creationDate: epochSeconds(c.createdAt),
          lastModifiedDate: epochSeconds(c.lastModifiedAt),
          certificateMode: 'DEFAULT',
        },
      };
    },
  },
  {
    operation: 'UpdateCertificate',
    method: 'PUT',
    pattern: '/certificates/{certificateId}',
    handle(ctx, req) {
      const q = query({ newStatus: z.string({ error: 'required' }) }, req);
      ctx.registry.updateCertificate(requiredLabel(req, 'certificateId'), q.newStatus);
      return {};
    },
  },
  {
    operation: 'DeleteCertificate',
    method: 'DELETE',
    pattern: '/certificates/{certificateId}',
    handle(ctx, req) {
      const q = query({ forceDelete: booleanQuery.optional() }, req);
      ctx.registry.deleteCertificate(requiredLabel(req, 'certificateId'), q.forceDelete ?? false);
      return {};
    },
  },
  {
    operation: 'CreatePolicy',
    method: 'POST',
    pattern: '/policies/{policyName}',
    handle(ctx, req) {
      const b = parseJsonBody(CreatePolicyBody, req.body);
      const p = ctx.registry.createPolicy(requiredLabel(req, 'policyName'), b.policyDocument);
      return {
        policyName: p.policyName,
        policyArn: p.policyArn,
        policyDocument: p.policyDocument,
        policyVersionId: p.defaultVersionId,
      };
    },
  },
  {
    operation: 'GetPolicy',
    method: 'GET',
    pattern: '/policies/{policyName}',
    handle(ctx, req) {
      const p = ctx.registry.getPolicy(requiredLabel(req, 'policyName'));
      return {
        policyName: p.policyName,
        policyArn: p.policyArn,
        policyDocument: p.policyDocument,
        defaultVersionId: p.defaultVersionId,
        creationDate: epochSeconds(p.createdAt),
        lastModifiedDate: epochSeconds(p.lastModifiedAt),
        generationId: String(p.lastModifiedAt),
      };
    },
  },
  {
    operation: 'DeletePolicy',
    method: 'DELETE',
    pattern: '/policies/{policyName}',
    handle(ctx, req) {
      ctx.registry.deletePolicy(requiredLabel(req, 'policyName'));
      return {};
    },
  },
  {
    operation: 'AttachPolicy',
    method: 'PUT',
    pattern: '/target-policies/{policyName}',
    handle(ctx, req) {
      const b = parseJsonBody(TargetBody, req.body);
      ctx.registry.attachPolicy(requiredLabel(req, 'policyName'), b.target);
      return {};
    },
  },
  {
    operation: 'DetachPolicy',
    method: 'POST',
    pattern: '/target-policies/{policyName}',
    handle(ctx, req) {
      const b = parseJsonBody(TargetBody, req.body);
      ctx.registry.detachPolicy(requiredLabel(req, 'policyName'), b.target);
      return {};
    },
  },
  {
    operation: 'ListAttachedPolicies',
    method: 'POST',
    pattern: '/attached-policies/{target}',
    handle(ctx, req) {
      // Groups are not modelled and a certificate holds at most 10 policies: one page, nothing recursive.
      query(
        {
          recursive: booleanQuery.optional(),
          marker: z.string().optional(),
          pageSize: z.string().regex(/^\d+$/, 'expected an integer').optional(),
        },
        req,
      );
      return { policies: ctx.registry.listAttachedPolicies(requiredLabel(req, 'target')) };
    },
  },
  {
    operation: 'AttachThingPrincipal',
    method: 'PUT',
    pattern: '/things/{thingName}/principals',
    handle(ctx, req) {
      const q = query({ thingPrincipalType: z.string().optional() }, req);
      ctx.registry.attachThingPrincipal(
        requiredLabel(req, 'thingName'),
        principalHeader(req),
        q.thingPrincipalType,
      );
      return {};
    },
  },
  {
    operation: 'DetachThingPrincipal',
    method: 'DELETE',
    pattern: '/things/{thingName}/principals',
    handle(ctx, req) {
      ctx.registry.detachThingPrincipal(requiredLabel(req, 'thingName'), principalHeader(req));
      return {};
    },
  },
  {
    operation: 'ListThingPrincipals',
    method: 'GET',
    pattern: '/things/{thingName}/principals',
    handle(ctx, req) {
      query({ nextToken: z.string().optional(), maxResults: z.string().optional() }, req);
      return { principals: ctx.registry.listThingPrincipals(requiredLabel(req, 'thingName')) };
    },
  },
  {
    operation: 'CreateRoleAlias',
    method: 'POST',
    pattern: '/role-aliases/{roleAlias}',
    handle(ctx, req) {
      const b = parseJsonBody(CreateRoleAliasBody, req.body);
      const r = ctx.registry.createRoleAlias({
        roleAlias: requiredLabel(req, 'roleAlias'),
        roleArn: b.roleArn,
        ...(b.credentialDurationSeconds !== undefined && {
          credentialDurationSeconds: b.credentialDurationSeconds,
        }),
      });
      return { roleAlias: r.roleAlias, roleAliasArn: r.roleAliasArn };
    },
  },
  {
    operation: 'DescribeRoleAlias',
    method: 'GET',
    pattern: '/role-aliases/{roleAlias}',
    handle(ctx, req) {
      const r = ctx.registry.describeRoleAlias(requiredLabel(req, 'roleAlias'));
      return {
        roleAliasDescription: {
          roleAlias: r.roleAlias,
          roleAliasArn: r.roleAliasArn,
          roleArn: r.roleArn,
          owner: r.owner,
          credentialDurationSeconds: r.credentialDurationSeconds,
          creationDate: epochSeconds(r.createdAt),
          lastModifiedDate: epochSeconds(r.lastModifiedAt),
        },
      };
    },
  },
  {
    operation: 'DeleteRoleAlias',
    method: 'DELETE',
    pattern: '/role-aliases/{roleAlias}',
    handle(ctx, req) {
      ctx.registry.deleteRoleAlias(requiredLabel(req, 'roleAlias'));
      return {};
    },
  },
];

export const provisioningRouter = createRouter(PROVISIONING_ROUTES);
