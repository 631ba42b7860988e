import { z } from 'zod';
import type { SecurityRegistry } from '../security/registry.ts';
import {
  booleanQuery,
  deleteRoute,
  invalid,
  label,
  parseBody,
  parseQuery,
  sec,
  tagList,
} from './route-kit.ts';
import { createRouter, type RestRequest, type RestRoute } from './router.ts';

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

const tags = tagList.optional();

function principalHeader(req: RestRequest): string {
  const v = req.headers['x-amzn-principal'];
  if (typeof v !== 'string' || v === '') throw invalid('principal: the x-amzn-principal header is required');
  return v;
}

const CreatePolicyBody = z.object({ policyDocument: z.string().min(1), tags });
const TargetBody = z.object({ target: z.string().min(1) });
const CreateRoleAliasBody = z.object({
  roleArn: z.string().min(1),
  credentialDurationSeconds: z.number().int().optional(),
  tags,
});

/** AttachPolicy and DetachPolicy: the policy names the path, the target (a certificate ARN) is in the body. */
function targetPolicyRoute(
  operation: string,
  method: 'PUT' | 'POST',
  call: (registry: SecurityRegistry, policyName: string, target: string) => void,
): Route {
  return {
    operation,
    method,
    pattern: '/target-policies/{policyName}',
    handle(ctx, req) {
      call(ctx.registry, label(req, 'policyName'), parseBody(TargetBody, req.body).target);
      return {};
    },
  };
}

export const PROVISIONING_ROUTES: readonly Route[] = [
  {
    operation: 'CreateKeysAndCertificate',
    method: 'POST',
    pattern: '/keys-and-certificate',
    async handle(ctx, req) {
      const q = parseQuery({ setAsActive: booleanQuery.optional() }, req.query);
      return ctx.registry.createKeysAndCertificate({ setAsActive: q.setAsActive ?? false });
    },
  },
  {
    operation: 'DescribeCertificate',
    method: 'GET',
    pattern: '/certificates/{certificateId}',
    handle(ctx, req) {
      const c = ctx.registry.describeCertificate(label(req, 'certificateId'));
      return {
        certificateDescription: {
          certificateArn: c.certificateArn,
          certificateId: c.certificateId,
          status: c.status,
          certificatePem: c.certificatePem,
          ownedBy: c.certificateArn.split(':')[4],
          creationDate: sec(c.createdAt),
          lastModifiedDate: sec(c.lastModifiedAt),
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
      const q = parseQuery({ newStatus: z.string({ error: 'required' }) }, req.query);
      ctx.registry.updateCertificate(label(req, 'certificateId'), q.newStatus);
      return {};
    },
  },
  {
    operation: 'DeleteCertificate',
    method: 'DELETE',
    pattern: '/certificates/{certificateId}',
    handle(ctx, req) {
      const q = parseQuery({ forceDelete: booleanQuery.optional() }, req.query);
      ctx.registry.deleteCertificate(label(req, 'certificateId'), q.forceDelete ?? false);
      return {};
    },
  },
  {
    operation: 'CreatePolicy',
    method: 'POST',
    pattern: '/policies/{policyName}',
    handle(ctx, req) {
      const b = parseBody(CreatePolicyBody, req.body);
      const p = ctx.registry.createPolicy(label(req, 'policyName'), b.policyDocument);
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
      const p = ctx.registry.getPolicy(label(req, 'policyName'));
      return {
        policyName: p.policyName,
        policyArn: p.policyArn,
        policyDocument: p.policyDocument,
        defaultVersionId: p.defaultVersionId,
        creationDate: sec(p.createdAt),
        lastModifiedDate: sec(p.lastModifiedAt),
        generationId: String(p.lastModifiedAt),
      };
    },
  },
  deleteRoute('DeletePolicy', '/policies/{policyName}', 'policyName', (ctx, name) =>
    ctx.registry.deletePolicy(name),
  ),
  targetPolicyRoute('AttachPolicy', 'PUT', (r, policyName, target) => r.attachPolicy(policyName, target)),
  targetPolicyRoute('DetachPolicy', 'POST', (r, policyName, target) => r.detachPolicy(policyName, target)),
  {
    operation: 'ListAttachedPolicies',
    method: 'POST',
    pattern: '/attached-policies/{target}',
    handle(ctx, req) {
      // Groups are not modelled and a certificate holds at most 10 policies: one page, nothing recursive.
      parseQuery(
        {
          recursive: booleanQuery.optional(),
          marker: z.string().optional(),
          pageSize: z.string().regex(/^\d+$/, 'expected an integer').optional(),
        },
        req.query,
      );
      return { policies: ctx.registry.listAttachedPolicies(label(req, 'target')) };
    },
  },
  {
    operation: 'AttachThingPrincipal',
    method: 'PUT',
    pattern: '/things/{thingName}/principals',
    handle(ctx, req) {
      const q = parseQuery({ thingPrincipalType: z.string().optional() }, req.query);
      ctx.registry.attachThingPrincipal(label(req, 'thingName'), principalHeader(req), q.thingPrincipalType);
      return {};
    },
  },
  {
    operation: 'DetachThingPrincipal',
    method: 'DELETE',
    pattern: '/things/{thingName}/principals',
    handle(ctx, req) {
      ctx.registry.detachThingPrincipal(label(req, 'thingName'), principalHeader(req));
      return {};
    },
  },
  {
    operation: 'ListThingPrincipals',
    method: 'GET',
    pattern: '/things/{thingName}/principals',
    handle(ctx, req) {
      parseQuery({ nextToken: z.string().optional(), maxResults: z.string().optional() }, req.query);
      return { principals: ctx.registry.listThingPrincipals(label(req, 'thingName')) };
    },
  },
  {
    operation: 'CreateRoleAlias',
    method: 'POST',
    pattern: '/role-aliases/{roleAlias}',
    handle(ctx, req) {
      const b = parseBody(CreateRoleAliasBody, req.body);
      const r = ctx.registry.createRoleAlias({
        roleAlias: label(req, 'roleAlias'),
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
      const r = ctx.registry.describeRoleAlias(label(req, 'roleAlias'));
      return {
        roleAliasDescription: {
          roleAlias: r.roleAlias,
          roleAliasArn: r.roleAliasArn,
          roleArn: r.roleArn,
          owner: r.owner,
          credentialDurationSeconds: r.credentialDurationSeconds,
          creationDate: sec(r.createdAt),
          lastModifiedDate: sec(r.lastModifiedAt),
        },
      };
    },
  },
  deleteRoute('DeleteRoleAlias', '/role-aliases/{roleAlias}', 'roleAlias', (ctx, name) =>
    ctx.registry.deleteRoleAlias(name),
  ),
];

export const provisioningRouter = createRouter(PROVISIONING_ROUTES);
