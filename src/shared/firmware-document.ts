/**
 * Patterns of the job document's `firmware` fields that both the operator (who writes the document,
 * `ota firmware put`) and the device (which checks it) must agree on. The signature's contract is in
 * firmware-signature.ts.
 */

/** `firmware.deviceType` and `--device-type`: a name, not free text. */
export const DEVICE_TYPE = /^[A-Za-z0-9._:-]{1,128}$/;
