/**
 * What every part of the security registry shares (registry.ts): the store, the in-memory state it
 * writes through to, the clock and ARNs, and the lookups that refuse with AWS IoT's error types. The
 * method groups (registry-certificates.ts, registry-policies.ts, …) are plain functions over this context.
 */
import { systemClock } from '../../shared/clock.ts';
import { ControlPlaneError, type ControlPlaneErrorCode } from '../control-plane/api-error.ts';
import { type BoundPolicies, type ParsedPolicy, parsePolicy } from './policy.ts';
import {
  type CertificateRow,
  type PolicyRow,
  type RoleAliasRow,
  SecurityStore,
  type ThingPrincipalType,
} from './store.ts';
import type { SecurityRegistryOptions } from './types.ts';

export const POLICY_NAME = /^[\w+=,.@-]{1,128}$/;
const CERTIFICATE_ID = /^[0-9a-f]{64}$/;

export const refuse = (code: ControlPlaneErrorCode, message: string) => new ControlPlaneError(code, message);
export const invalid = (message: string) => refuse('InvalidRequestException', message);
export const notFound = (message: string) => refuse('ResourceNotFoundException', message);

export interface SecurityContext {
  readonly opts: SecurityRegistryOptions;
  readonly now: () => number;
  /** `arn:aws:iot:<region>:<account>:` */
  readonly arnPrefix: string;
  readonly store: SecurityStore;
  readonly certificates: Map<string, CertificateRow>;
  readonly policies: Map<string, PolicyRow & { parsed: ParsedPolicy }>;
  /** target (certificate ARN) → policy names. */
  readonly attached: Map<string, Set<string>>;
  /** principal → thing → type. */
  readonly principals: Map<string, Map<string, ThingPrincipalType>>;
  readonly roleAliases: Map<string, RoleAliasRow>;
  /** Bound policies cached per connection context (registry-authority.ts). */
  readonly bindings: Map<string, BoundPolicies>;
}

/** Opens the store and loads its state into memory. */
export function openSecurityContext(opts: SecurityRegistryOptions): SecurityContext {
  const store = new SecurityStore(opts.dbPath);
  const ctx: SecurityContext = {
    opts,
    now: () => (opts.clock ?? systemClock).now(),
    arnPrefix: `arn:aws:iot:${opts.region}:${opts.accountId}:`,
    store,
    certificates: new Map(),
    policies: new Map(),
    attached: new Map(),
    principals: new Map(),
    roleAliases: new Map(),
    bindings: new Map(),
  };
  const snapshot = store.load();
  for (const c of snapshot.certificates) ctx.certificates.set(c.certificateId, c);
  for (const p of snapshot.policies)
    ctx.policies.set(p.policyName, { ...p, parsed: parsePolicy(p.document) });
  for (const a of snapshot.attachments)
    getOrCreate(ctx.attached, a.target, () => new Set()).add(a.policyName);
  for (const t of snapshot.thingPrincipals)
    getOrCreate(ctx.principals, t.principal, () => new Map()).set(t.thingName, t.type);
  for (const r of snapshot.roleAliases) ctx.roleAliases.set(r.roleAlias, r);
  return ctx;
}

/** Every change that can alter a decision goes through here, so no cached binding outlives it. */
export function changed(ctx: SecurityContext): void {
  ctx.bindings.clear();
}

export function certArn(ctx: SecurityContext, id: string): string {
  return `${ctx.arnPrefix}cert/${id}`;
}

export function certificate(ctx: SecurityContext, certificateId: string): CertificateRow {
  const id = certificateId.toLowerCase();
  if (!CERTIFICATE_ID.test(id)) throw invalid('certificateId: must be 64 hexadecimal characters');
  const c = ctx.certificates.get(id);
  if (!c) throw notFound(`certificate ${id} does not exist`);
  return c;
}

/** A principal given as a certificate ARN; other principals (Cognito, thing groups) are not supported. */
export function certificateByArn(ctx: SecurityContext, arn: string, field: string): CertificateRow {
  const m = /^arn:aws:iot:([^:]+):(\d{12}):cert\/([0-9a-fA-F]{64})$/.exec(arn);
  if (!m)
    throw invalid(
      `${field}: only certificate ARNs (${certArn(ctx, '<certificateId>')}) are supported locally`,
    );
  const c = ctx.certificates.get((m[3] ?? '').toLowerCase());
  if (!c || c.certificateArn !== arn) throw notFound(`${field}: certificate ${arn} does not exist`);
  return c;
}

export function policy(ctx: SecurityContext, policyName: string): PolicyRow & { parsed: ParsedPolicy } {
  if (!POLICY_NAME.test(policyName)) throw invalid(`policyName: must match ${POLICY_NAME.source}`);
  const p = ctx.policies.get(policyName);
  if (!p) throw notFound(`policy ${policyName} does not exist`);
  return p;
}

/** The things attached to a certificate, by name, with their association type. */
export function thingsOf(
  ctx: SecurityContext,
  certificateId: string,
): Map<string, ThingPrincipalType> | undefined {
  return ctx.principals.get(certArn(ctx, certificateId));
}

export function getOrCreate<K, V>(map: Map<K, V>, key: K, create: () => V): V {
  let v = map.get(key);
  if (v === undefined) {
    v = create();
    map.set(key, v);
  }
  return v;
}
