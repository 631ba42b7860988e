import type { Clock } from '../../shared/clock.ts';
import type { CertificateAuthority } from '../broker/types.ts';
import type { SessionTokenStore } from '../credentials/session-tokens.ts';
import type { DeviceCertificate } from '../pki/pki.ts';
import type { CertificateStatus, RoleAliasRow } from './store.ts';

/** The security registry's interface (registry.ts): AWS IoT's certificate, policy and role-alias API. */

export interface SecurityRegistryOptions {
  dbPath: string;
  region: string;
  accountId: string;
  /** Issues a device certificate with the stack's CA (CN `AWS IoT Certificate`). */
  issueCertificate(): Promise<DeviceCertificate>;
  /** Whether a thing exists in the Jobs service's registry. */
  thingExists(thingName: string): boolean;
  /** Dates certificates, policies and role aliases; default the system's. */
  clock?: Pick<Clock, 'now'>;
}

export interface CertificateDescription {
  certificateArn: string;
  certificateId: string;
  certificatePem: string;
  status: CertificateStatus;
  createdAt: number;
  lastModifiedAt: number;
}

export interface PolicyDescription {
  policyName: string;
  policyArn: string;
  policyDocument: string;
  defaultVersionId: string;
  createdAt: number;
  lastModifiedAt: number;
}

export type RoleAliasDescription = RoleAliasRow & { owner: string };

export interface SecurityRegistry extends CertificateAuthority {
  createKeysAndCertificate(input: { setAsActive?: boolean }): Promise<{
    certificateArn: string;
    certificateId: string;
    certificatePem: string;
    keyPair: { PublicKey: string; PrivateKey: string };
  }>;
  describeCertificate(certificateId: string): CertificateDescription;
  updateCertificate(certificateId: string, newStatus: string): void;
  deleteCertificate(certificateId: string, forceDelete?: boolean): void;
  createPolicy(policyName: string, policyDocument: string): PolicyDescription;
  getPolicy(policyName: string): PolicyDescription;
  deletePolicy(policyName: string): void;
  attachPolicy(policyName: string, target: string): void;
  detachPolicy(policyName: string, target: string): void;
  listAttachedPolicies(target: string): { policyName: string; policyArn: string }[];
  attachThingPrincipal(thingName: string, principal: string, type?: string): void;
  detachThingPrincipal(thingName: string, principal: string): void;
  listThingPrincipals(thingName: string): string[];
  createRoleAlias(input: {
    roleAlias: string;
    roleArn: string;
    credentialDurationSeconds?: number;
  }): RoleAliasRow;
  describeRoleAlias(roleAlias: string): RoleAliasDescription;
  deleteRoleAlias(roleAlias: string): void;
  /** The role alias, or undefined (the credentials provider answers 404). */
  roleAlias(roleAlias: string): RoleAliasRow | undefined;
  /**
   * Whether a registered certificate may get credentials for a role alias (iot:AssumeRoleWithCertificate
   * on `rolealias/<alias>`). `thingName` is the `x-amzn-iot-thingname` header; when given it must be
   * attached to the certificate.
   */
  canAssumeRole(certificateId: string, roleAlias: string, thingName?: string): boolean;
  /** Detaches a deleted thing's principals (DeleteThing). */
  onThingDeleted(thingName: string): void;
  /** Persistence for the stack's session tokens (credentials/session-tokens.ts). */
  readonly sessionTokenStore: SessionTokenStore;
  close(): void;
}
