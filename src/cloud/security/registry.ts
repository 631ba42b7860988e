import { authorityOperations } from './registry-authority.ts';
import { certificateOperations } from './registry-certificates.ts';
import { openSecurityContext } from './registry-context.ts';
import { policyOperations } from './registry-policies.ts';
import { principalOperations } from './registry-principals.ts';
import { roleAliasOperations } from './registry-role-aliases.ts';
import type { SecurityRegistry, SecurityRegistryOptions } from './types.ts';

export { MAX_POLICIES_PER_CERTIFICATE } from './registry-policies.ts';
export type { SecurityRegistry, SecurityRegistryOptions } from './types.ts';

/**
 * The AWS IoT security registry of the local stack: certificates made by CreateKeysAndCertificate, named
 * IoT policies and their attachments, thing principals (AttachThingPrincipal) and role aliases for the
 * credentials provider. Operations follow the AWS IoT API reference (names, limits, error types); state
 * lives in memory and is written through to SQLite. The broker asks it (CertificateAuthority) whether a
 * registered certificate may connect, publish, subscribe and receive; the credentials provider asks it
 * about role aliases.
 *
 * The method groups are functions of one shared context (registry-context.ts): authority (the broker's and
 * the credentials provider's questions), certificates, policies, thing principals and role aliases.
 */
export function openSecurityRegistry(opts: SecurityRegistryOptions): SecurityRegistry {
  const ctx = openSecurityContext(opts);
  return {
    ...authorityOperations(ctx),
    ...certificateOperations(ctx),
    ...policyOperations(ctx),
    ...principalOperations(ctx),
    ...roleAliasOperations(ctx),
    sessionTokenStore: ctx.store.sessionTokens,
    close: () => ctx.store.close(),
  };
}
