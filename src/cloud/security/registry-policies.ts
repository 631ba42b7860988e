/** IoT policy operations and policy attachments (CreatePolicy … ListAttachedPolicies). */
import { MalformedPolicyError, type ParsedPolicy, parsePolicy } from './policy.ts';
import {
  certificateByArn,
  changed,
  getOrCreate,
  invalid,
  POLICY_NAME,
  policy,
  refuse,
  type SecurityContext,
} from './registry-context.ts';
import type { PolicyRow } from './store.ts';
import type { PolicyDescription, SecurityRegistry } from './types.ts';

/** AWS IoT quota: policies attached to one certificate. */
export const MAX_POLICIES_PER_CERTIFICATE = 10;

type PolicyOperations = Pick<
  SecurityRegistry,
  'createPolicy' | 'getPolicy' | 'deletePolicy' | 'attachPolicy' | 'detachPolicy' | 'listAttachedPolicies'
>;

export function policyOperations(ctx: SecurityContext): PolicyOperations {
  const { store, policies, attached, arnPrefix } = ctx;
  return {
    createPolicy(policyName, policyDocument) {
      if (!POLICY_NAME.test(policyName)) throw invalid(`policyName: must match ${POLICY_NAME.source}`);
      if (policies.has(policyName)) {
        throw refuse('ResourceAlreadyExistsException', `policy ${policyName} already exists`);
      }
      let parsed: ParsedPolicy;
      try {
        parsed = parsePolicy(policyDocument);
      } catch (err) {
        if (err instanceof MalformedPolicyError) throw refuse('MalformedPolicyException', err.message);
        throw err;
      }
      const t = ctx.now();
      const row: PolicyRow = {
        policyName,
        policyArn: `${arnPrefix}policy/${policyName}`,
        document: policyDocument,
        createdAt: t,
        lastModifiedAt: t,
      };
      store.putPolicy(row);
      policies.set(policyName, { ...row, parsed });
      return describePolicy(row);
    },

    getPolicy: (policyName) => describePolicy(policy(ctx, policyName)),

    deletePolicy(policyName) {
      policy(ctx, policyName);
      for (const names of attached.values()) {
        if (names.has(policyName)) {
          throw refuse('DeleteConflictException', `policy ${policyName} is attached; detach it first`);
        }
      }
      store.deletePolicy(policyName);
      policies.delete(policyName);
    },

    attachPolicy(policyName, target) {
      const p = policy(ctx, policyName);
      const c = certificateByArn(ctx, target, 'target');
      const names = getOrCreate(attached, c.certificateArn, () => new Set());
      if (names.has(p.policyName)) return;
      if (names.size >= MAX_POLICIES_PER_CERTIFICATE) {
        throw refuse(
          'LimitExceededException',
          `target: at most ${MAX_POLICIES_PER_CERTIFICATE} policies per certificate`,
        );
      }
      store.attach({ policyName: p.policyName, target: c.certificateArn });
      names.add(p.policyName);
      changed(ctx);
    },

    detachPolicy(policyName, target) {
      const p = policy(ctx, policyName);
      const c = certificateByArn(ctx, target, 'target');
      store.detach({ policyName: p.policyName, target: c.certificateArn });
      attached.get(c.certificateArn)?.delete(p.policyName);
      changed(ctx);
    },

    listAttachedPolicies(target) {
      const c = certificateByArn(ctx, target, 'target');
      return [...(attached.get(c.certificateArn) ?? [])].sort().map((policyName) => ({
        policyName,
        policyArn: `${arnPrefix}policy/${policyName}`,
      }));
    },
  };
}

function describePolicy(p: PolicyRow): PolicyDescription {
  return {
    policyName: p.policyName,
    policyArn: p.policyArn,
    policyDocument: p.document,
    defaultVersionId: '1',
    createdAt: p.createdAt,
    lastModifiedAt: p.lastModifiedAt,
  };
}
