import { createHash, X509Certificate } from 'node:crypto';
import { THING_NAME_PATTERN } from '../../shared/topics.ts';
import type { BrokerAction, PolicyContext } from '../broker/types.ts';
import { ControlPlaneError, type ControlPlaneErrorCode } from '../control-plane/api-error.ts';
import {
  type BoundPolicies,
  bindPolicies,
  MalformedPolicyError,
  type ParsedPolicy,
  parsePolicy,
} from './policy.ts';
import {
  type CertificateRow,
  type PolicyRow,
  type RoleAliasRow,
  SecurityStore,
  type ThingPrincipalType,
} from './store.ts';
import type { PolicyDescription, SecurityRegistry, SecurityRegistryOptions } from './types.ts';

export type { SecurityRegistry, SecurityRegistryOptions } from './types.ts';

/**
 * The AWS IoT security registry of the local stack: certificates made by CreateKeysAndCertificate, named
 * IoT policies and their attachments, thing principals (AttachThingPrincipal) and role aliases for the
 * credentials provider. Operations follow the AWS IoT API reference (names, limits, error types); state
 * lives in memory and is written through to SQLite. The broker asks it (CertificateAuthority) whether a
 * registered certificate may connect, publish, subscribe and receive; the credentials provider asks it
 * about role aliases.
 */

const POLICY_NAME = /^[\w+=,.@-]{1,128}$/;
const ROLE_ALIAS = /^[\w=,@-]{1,128}$/;
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;
const CERTIFICATE_ID = /^[0-9a-f]{64}$/;
/** AWS IoT quota: policies attached to one certificate. */
export const MAX_POLICIES_PER_CERTIFICATE = 10;
const DURATION = { min: 900, max: 43_200, default: 3600 };
/** Bound policies cached per connection context; cleared on any change. */
const MAX_CACHED_BINDINGS = 10_000;

const refuse = (code: ControlPlaneErrorCode, message: string) => new ControlPlaneError(code, message);
const invalid = (message: string) => refuse('InvalidRequestException', message);
const notFound = (message: string) => refuse('ResourceNotFoundException', message);

export function openSecurityRegistry(opts: SecurityRegistryOptions): SecurityRegistry {
  const now = opts.now ?? Date.now;
  const arnPrefix = `arn:aws:iot:${opts.region}:${opts.accountId}:`;
  const certArn = (id: string) => `${arnPrefix}cert/${id}`;
  const store = new SecurityStore(opts.dbPath);

  const certificates = new Map<string, CertificateRow>();
  const policies = new Map<string, PolicyRow & { parsed: ParsedPolicy }>();
  /** target (certificate ARN) → policy names. */
  const attached = new Map<string, Set<string>>();
  /** principal → thing → type. */
  const principals = new Map<string, Map<string, ThingPrincipalType>>();
  const roleAliases = new Map<string, RoleAliasRow>();
  const bindings = new Map<string, BoundPolicies>();

  const snapshot = store.load();
  for (const c of snapshot.certificates) certificates.set(c.certificateId, c);
  for (const p of snapshot.policies) policies.set(p.policyName, { ...p, parsed: parsePolicy(p.document) });
  for (const a of snapshot.attachments) getOrCreate(attached, a.target, () => new Set()).add(a.policyName);
  for (const t of snapshot.thingPrincipals)
    getOrCreate(principals, t.principal, () => new Map()).set(t.thingName, t.type);
  for (const r of snapshot.roleAliases) roleAliases.set(r.roleAlias, r);

  /** Every change that can alter a decision goes through here, so no cached binding outlives it. */
  const changed = () => bindings.clear();

  const certificate = (certificateId: string): CertificateRow => {
    const id = certificateId.toLowerCase();
    if (!CERTIFICATE_ID.test(id)) throw invalid('certificateId: must be 64 hexadecimal characters');
    const c = certificates.get(id);
    if (!c) throw notFound(`certificate ${id} does not exist`);
    return c;
  };

  /** A principal given as a certificate ARN; other principals (Cognito, thing groups) are not supported. */
  const certificateByArn = (arn: string, field: string): CertificateRow => {
    const m = /^arn:aws:iot:([^:]+):(\d{12}):cert\/([0-9a-fA-F]{64})$/.exec(arn);
    if (!m)
      throw invalid(`${field}: only certificate ARNs (${certArn('<certificateId>')}) are supported locally`);
    const c = certificates.get((m[3] ?? '').toLowerCase());
    if (!c || c.certificateArn !== arn) throw notFound(`${field}: certificate ${arn} does not exist`);
    return c;
  };

  const policy = (policyName: string) => {
    if (!POLICY_NAME.test(policyName)) throw invalid(`policyName: must match ${POLICY_NAME.source}`);
    const p = policies.get(policyName);
    if (!p) throw notFound(`policy ${policyName} does not exist`);
    return p;
  };

  const describePolicy = (p: PolicyRow): PolicyDescription => ({
    policyName: p.policyName,
    policyArn: p.policyArn,
    policyDocument: p.document,
    defaultVersionId: '1',
    createdAt: p.createdAt,
    lastModifiedAt: p.lastModifiedAt,
  });

  const thingsOf = (certificateId: string) => principals.get(certArn(certificateId));

  const thingFor = (certificateId: string, clientId: string): string | undefined => {
    const things = thingsOf(certificateId);
    if (!things) return undefined;
    // An exclusive association names the thing whatever the client id; otherwise the client id must.
    for (const [thing, type] of things) if (type === 'EXCLUSIVE_THING') return thing;
    return things.has(clientId) ? clientId : undefined;
  };

  const bound = (certificateId: string, ctx: PolicyContext): BoundPolicies => {
    const key = `${certificateId}\u0000${ctx.clientId ?? ''}\u0000${ctx.thingName ?? ''}`;
    let b = bindings.get(key);
    if (!b) {
      const names = attached.get(certArn(certificateId)) ?? new Set<string>();
      const docs = [...names].flatMap((n) => {
        const p = policies.get(n);
        return p ? [p.parsed] : [];
      });
      b = bindPolicies(docs, ctx);
      if (bindings.size >= MAX_CACHED_BINDINGS) bindings.clear();
      bindings.set(key, b);
    }
    return b;
  };

  const isAllowed = (
    certificateId: string,
    action: string,
    resource: string,
    ctx: PolicyContext,
  ): boolean => {
    if (certificates.get(certificateId)?.status !== 'ACTIVE') return false;
    return bound(certificateId, ctx).isAllowed(action, `${arnPrefix}${resource}`);
  };

  return {
    certificateStatus: (certificateId) => certificates.get(certificateId)?.status,
    thingFor,
    isAllowed: (certificateId, action: BrokerAction, resource, ctx) =>
      isAllowed(certificateId, action, resource, ctx),

    async createKeysAndCertificate({ setAsActive }) {
      const issued = await opts.issueCertificate();
      const der = new X509Certificate(issued.certificatePem).raw;
      const certificateId = createHash('sha256').update(der).digest('hex');
      const t = now();
      const row: CertificateRow = {
        certificateId,
        certificateArn: certArn(certificateId),
        certificatePem: issued.certificatePem,
        // AWS's default: a new certificate is INACTIVE unless setAsActive.
        status: setAsActive ? 'ACTIVE' : 'INACTIVE',
        createdAt: t,
        lastModifiedAt: t,
      };
      store.putCertificate(row);
      certificates.set(certificateId, row);
      changed();
      return {
        certificateArn: row.certificateArn,
        certificateId,
        certificatePem: row.certificatePem,
        keyPair: { PublicKey: issued.publicKeyPem, PrivateKey: issued.privateKeyPem },
      };
    },

    describeCertificate(certificateId) {
      const { certificateArn, certificatePem, status, createdAt, lastModifiedAt } =
        certificate(certificateId);
      return {
        certificateArn,
        certificateId: certificateId.toLowerCase(),
        certificatePem,
        status,
        createdAt,
        lastModifiedAt,
      };
    },

    updateCertificate(certificateId, newStatus) {
      const c = certificate(certificateId);
      if (newStatus !== 'ACTIVE' && newStatus !== 'INACTIVE' && newStatus !== 'REVOKED') {
        throw invalid(`newStatus: must be ACTIVE, INACTIVE or REVOKED locally (got ${newStatus})`);
      }
      if (c.status === 'REVOKED' && newStatus !== 'REVOKED') {
        throw refuse('CertificateStateException', `certificate ${c.certificateId} is REVOKED`);
      }
      const row = { ...c, status: newStatus, lastModifiedAt: now() } satisfies CertificateRow;
      store.putCertificate(row);
      certificates.set(c.certificateId, row);
      changed();
    },

    deleteCertificate(certificateId, forceDelete = false) {
      const c = certificate(certificateId);
      if (c.status === 'ACTIVE') {
        throw refuse(
          'CertificateStateException',
          `certificate ${c.certificateId} is ACTIVE; deactivate it first`,
        );
      }
      if ((thingsOf(c.certificateId)?.size ?? 0) > 0) {
        throw refuse('DeleteConflictException', `certificate ${c.certificateId} is attached to things`);
      }
      if (!forceDelete && (attached.get(c.certificateArn)?.size ?? 0) > 0) {
        throw refuse('DeleteConflictException', `certificate ${c.certificateId} has policies attached`);
      }
      store.deleteCertificate(c.certificateId, c.certificateArn);
      certificates.delete(c.certificateId);
      attached.delete(c.certificateArn);
      changed();
    },

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
      const t = now();
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

    getPolicy: (policyName) => describePolicy(policy(policyName)),

    deletePolicy(policyName) {
      policy(policyName);
      for (const names of attached.values()) {
        if (names.has(policyName)) {
          throw refuse('DeleteConflictException', `policy ${policyName} is attached; detach it first`);
        }
      }
      store.deletePolicy(policyName);
      policies.delete(policyName);
    },

    attachPolicy(policyName, target) {
      const p = policy(policyName);
      const c = certificateByArn(target, 'target');
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
      changed();
    },

    detachPolicy(policyName, target) {
      const p = policy(policyName);
      const c = certificateByArn(target, 'target');
      store.detach({ policyName: p.policyName, target: c.certificateArn });
      attached.get(c.certificateArn)?.delete(p.policyName);
      changed();
    },

    listAttachedPolicies(target) {
      const c = certificateByArn(target, 'target');
      return [...(attached.get(c.certificateArn) ?? [])].sort().map((policyName) => ({
        policyName,
        policyArn: `${arnPrefix}policy/${policyName}`,
      }));
    },

    attachThingPrincipal(thingName, principal, type = 'NON_EXCLUSIVE_THING') {
      if (!THING_NAME_PATTERN.test(thingName))
        throw invalid(`thingName: must match ${THING_NAME_PATTERN.source}`);
      if (type !== 'EXCLUSIVE_THING' && type !== 'NON_EXCLUSIVE_THING') {
        throw invalid('thingPrincipalType: must be EXCLUSIVE_THING or NON_EXCLUSIVE_THING');
      }
      if (!opts.thingExists(thingName)) throw notFound(`thing ${thingName} does not exist`);
      const c = certificateByArn(principal, 'principal');
      const things = getOrCreate(principals, c.certificateArn, () => new Map());
      const others = [...things.keys()].filter((t) => t !== thingName);
      if (type === 'EXCLUSIVE_THING' && others.length > 0) {
        throw invalid(
          `principal: attached to other things (${others.join(', ')}); an exclusive association needs none`,
        );
      }
      if ([...things].some(([t, ty]) => t !== thingName && ty === 'EXCLUSIVE_THING')) {
        throw invalid('principal: exclusively attached to another thing');
      }
      store.putThingPrincipal({ thingName, principal: c.certificateArn, type });
      things.set(thingName, type);
      changed();
    },

    detachThingPrincipal(thingName, principal) {
      if (!opts.thingExists(thingName)) throw notFound(`thing ${thingName} does not exist`);
      const c = certificateByArn(principal, 'principal');
      store.deleteThingPrincipal(thingName, c.certificateArn);
      principals.get(c.certificateArn)?.delete(thingName);
      changed();
    },

    listThingPrincipals(thingName) {
      if (!opts.thingExists(thingName)) throw notFound(`thing ${thingName} does not exist`);
      return [...principals]
        .filter(([, things]) => things.has(thingName))
        .map(([p]) => p)
        .sort();
    },

    createRoleAlias({ roleAlias, roleArn, credentialDurationSeconds = DURATION.default }) {
      if (!ROLE_ALIAS.test(roleAlias)) throw invalid(`roleAlias: must match ${ROLE_ALIAS.source}`);
      if (!ROLE_ARN.test(roleArn))
        throw invalid('roleArn: must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)');
      if (
        !Number.isInteger(credentialDurationSeconds) ||
        credentialDurationSeconds < DURATION.min ||
        credentialDurationSeconds > DURATION.max
      ) {
        throw invalid(`credentialDurationSeconds: must be an integer ${DURATION.min}-${DURATION.max}`);
      }
      if (roleAliases.has(roleAlias)) {
        throw refuse('ResourceAlreadyExistsException', `role alias ${roleAlias} already exists`);
      }
      const t = now();
      const row: RoleAliasRow = {
        roleAlias,
        roleAliasArn: `${arnPrefix}rolealias/${roleAlias}`,
        roleArn,
        credentialDurationSeconds,
        createdAt: t,
        lastModifiedAt: t,
      };
      store.putRoleAlias(row);
      roleAliases.set(roleAlias, row);
      return row;
    },

    describeRoleAlias(roleAlias) {
      const r = roleAliases.get(roleAlias);
      if (!r) throw notFound(`role alias ${roleAlias} does not exist`);
      return { ...r, owner: opts.accountId };
    },

    deleteRoleAlias(roleAlias) {
      if (!roleAliases.has(roleAlias)) throw notFound(`role alias ${roleAlias} does not exist`);
      store.deleteRoleAlias(roleAlias);
      roleAliases.delete(roleAlias);
    },

    roleAlias: (roleAlias) => roleAliases.get(roleAlias),

    canAssumeRole(certificateId, roleAlias, thingName) {
      const things = thingsOf(certificateId);
      if (thingName !== undefined && !things?.has(thingName)) return false;
      const ctx: PolicyContext = thingName !== undefined ? { thingName } : {};
      return isAllowed(certificateId, 'iot:AssumeRoleWithCertificate', `rolealias/${roleAlias}`, ctx);
    },

    onThingDeleted(thingName) {
      store.deleteThingPrincipals(thingName);
      for (const things of principals.values()) things.delete(thingName);
      changed();
    },

    sessionTokenStore: store.sessionTokens,
    close: () => store.close(),
  };
}

function getOrCreate<K, V>(map: Map<K, V>, key: K, create: () => V): V {
  let v = map.get(key);
  if (v === undefined) {
    v = create();
    map.set(key, v);
  }
  return v;
}
