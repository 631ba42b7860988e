/** Certificate operations (CreateKeysAndCertificate, DescribeCertificate, UpdateCertificate, DeleteCertificate). */
import { createHash, X509Certificate } from 'node:crypto';
import {
  certArn,
  certificate,
  changed,
  invalid,
  refuse,
  type SecurityContext,
  thingsOf,
} from './registry-context.ts';
import type { CertificateRow } from './store.ts';
import type { SecurityRegistry } from './types.ts';

type CertificateOperations = Pick<
  SecurityRegistry,
  'createKeysAndCertificate' | 'describeCertificate' | 'updateCertificate' | 'deleteCertificate'
>;

export function certificateOperations(ctx: SecurityContext): CertificateOperations {
  const { store, certificates, attached } = ctx;
  return {
    async createKeysAndCertificate({ setAsActive }) {
      const issued = await ctx.opts.issueCertificate();
      const der = new X509Certificate(issued.certificatePem).raw;
      const certificateId = createHash('sha256').update(der).digest('hex');
      const t = ctx.now();
      const row: CertificateRow = {
        certificateId,
        certificateArn: certArn(ctx, certificateId),
        certificatePem: issued.certificatePem,
        // AWS's default: a new certificate is INACTIVE unless setAsActive.
        status: setAsActive ? 'ACTIVE' : 'INACTIVE',
        createdAt: t,
        lastModifiedAt: t,
      };
      store.putCertificate(row);
      certificates.set(certificateId, row);
      changed(ctx);
      return {
        certificateArn: row.certificateArn,
        certificateId,
        certificatePem: row.certificatePem,
        keyPair: { PublicKey: issued.publicKeyPem, PrivateKey: issued.privateKeyPem },
      };
    },

    describeCertificate(certificateId) {
      const { certificateArn, certificatePem, status, createdAt, lastModifiedAt } = certificate(
        ctx,
        certificateId,
      );
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
      const c = certificate(ctx, certificateId);
      if (newStatus !== 'ACTIVE' && newStatus !== 'INACTIVE' && newStatus !== 'REVOKED') {
        throw invalid(`newStatus: must be ACTIVE, INACTIVE or REVOKED locally (got ${newStatus})`);
      }
      if (c.status === 'REVOKED' && newStatus !== 'REVOKED') {
        throw refuse('CertificateStateException', `certificate ${c.certificateId} is REVOKED`);
      }
      const row = { ...c, status: newStatus, lastModifiedAt: ctx.now() } satisfies CertificateRow;
      store.putCertificate(row);
      certificates.set(c.certificateId, row);
      changed(ctx);
    },

    deleteCertificate(certificateId, forceDelete = false) {
      const c = certificate(ctx, certificateId);
      if (c.status === 'ACTIVE') {
        throw refuse(
          'CertificateStateException',
          `certificate ${c.certificateId} is ACTIVE; deactivate it first`,
        );
      }
      if ((thingsOf(ctx, c.certificateId)?.size ?? 0) > 0) {
        throw refuse('DeleteConflictException', `certificate ${c.certificateId} is attached to things`);
      }
      if (!forceDelete && (attached.get(c.certificateArn)?.size ?? 0) > 0) {
        throw refuse('DeleteConflictException', `certificate ${c.certificateId} has policies attached`);
      }
      store.deleteCertificate(c.certificateId, c.certificateArn);
      certificates.delete(c.certificateId);
      attached.delete(c.certificateArn);
      changed(ctx);
    },
  };
}
