import { OtaError } from '../../shared/errors.ts';
import { verifyDigest } from '../../shared/firmware-signature.ts';
import { JobRejectedError } from '../errors.ts';
import { type JobContext, need, type Step, type StepEnv } from '../job-context.ts';

/** Whether this image is for this device and comes from a trusted signer. */

/** The image's signature does not verify: FAILED (not REJECTED), with nothing installed. */
export class SignatureError extends OtaError {
  constructor(message: string) {
    super('OTA_SIGNATURE', message);
  }
}

/** `check-device`: `firmware.deviceType`, when both sides name one, must be this device's. */
export const checkDevice: Step = {
  name: 'check-device',
  async run(ctx, env) {
    const doc = need(ctx.document, 'document');
    const mine = env.config.deviceType;
    if (mine !== undefined && doc.deviceType !== undefined && doc.deviceType !== mine) {
      throw new JobRejectedError(
        `firmware.deviceType: the image is for ${JSON.stringify(doc.deviceType)}, this device is ${JSON.stringify(mine)}`,
      );
    }
    return undefined;
  },
};

/**
 * `check-signature`: with trusted keys, an unsigned document is REJECTED before anything is fetched.
 * When the document carries `sha256`, the signature over it is checked now too, so a foreign or tampered
 * signature fails without downloading the image; `verify` checks it again over the digest of the bytes
 * actually received.
 */
export const checkSignature: Step = {
  name: 'check-signature',
  async run(ctx, env) {
    if (env.trustedKeys.length === 0) return undefined;
    const doc = need(ctx.document, 'document');
    if (!doc.signature) {
      throw new JobRejectedError('firmware.signature: required (this device installs signed images only)');
    }
    if (doc.sha256) verifySignature(ctx, env, doc.sha256);
    return undefined;
  },
};

/** Throws SignatureError unless a trusted key verifies the document's signature over `sha256`. */
export function verifySignature(ctx: JobContext, env: StepEnv, sha256: string): void {
  const sig = ctx.document?.signature;
  if (env.trustedKeys.length === 0) return;
  if (!sig) throw new SignatureError('signature: the document carries none');
  const r = verifyDigest(sha256, sig, env.trustedKeys);
  if (!r.ok) throw new SignatureError(`signature: ${r.reason}`);
  env.logger.info({ keyId: r.keyId }, 'image signature verified');
}
