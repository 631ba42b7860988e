/** The registry's decisions: what the broker (CertificateAuthority) and the credentials provider ask. */
import type { BrokerAction, PolicyContext } from '../broker/types.ts';
import { type BoundPolicies, bindPolicies } from './policy.ts';
import { certArn, type SecurityContext, thingsOf } from './registry-context.ts';
import type { SecurityRegistry } from './types.ts';

/** Bound policies cached per connection context; cleared on any change. */
const MAX_CACHED_BINDINGS = 10_000;

type AuthorityOperations = Pick<
  SecurityRegistry,
  'certificateStatus' | 'thingFor' | 'isAllowed' | 'canAssumeRole'
>;

export function authorityOperations(ctx: SecurityContext): AuthorityOperations {
  return {
    certificateStatus: (certificateId) => ctx.certificates.get(certificateId)?.status,
    thingFor: (certificateId, clientId) => thingFor(ctx, certificateId, clientId),
    isAllowed: (certificateId, action: BrokerAction, resource, policyCtx) =>
      isAllowed(ctx, certificateId, action, resource, policyCtx),

    canAssumeRole(certificateId, roleAlias, thingName) {
      const things = thingsOf(ctx, certificateId);
      if (thingName !== undefined && !things?.has(thingName)) return false;
      const policyCtx: PolicyContext = thingName !== undefined ? { thingName } : {};
      return isAllowed(
        ctx,
        certificateId,
        'iot:AssumeRoleWithCertificate',
        `rolealias/${roleAlias}`,
        policyCtx,
      );
    },
  };
}

function thingFor(ctx: SecurityContext, certificateId: string, clientId: string): string | undefined {
  const things = thingsOf(ctx, certificateId);
  if (!things) return undefined;
  // An exclusive association names the thing whatever the client id; otherwise the client id must.
  for (const [thing, type] of things) if (type === 'EXCLUSIVE_THING') return thing;
  return things.has(clientId) ? clientId : undefined;
}

function bound(ctx: SecurityContext, certificateId: string, policyCtx: PolicyContext): BoundPolicies {
  const key = `${certificateId}\u0000${policyCtx.clientId ?? ''}\u0000${policyCtx.thingName ?? ''}`;
  let b = ctx.bindings.get(key);
  if (!b) {
    const names = ctx.attached.get(certArn(ctx, certificateId)) ?? new Set<string>();
    const docs = [...names].flatMap((n) => {
      const p = ctx.policies.get(n);
      return p ? [p.parsed] : [];
    });
    b = bindPolicies(docs, policyCtx);
    if (ctx.bindings.size >= MAX_CACHED_BINDINGS) ctx.bindings.clear();
    ctx.bindings.set(key, b);
  }
  return b;
}

function isAllowed(
  ctx: SecurityContext,
  certificateId: string,
  action: string,
  resource: string,
  policyCtx: PolicyContext,
): boolean {
  if (ctx.certificates.get(certificateId)?.status !== 'ACTIVE') return false;
  return bound(ctx, certificateId, policyCtx).isAllowed(action, `${ctx.arnPrefix}${resource}`);
}
