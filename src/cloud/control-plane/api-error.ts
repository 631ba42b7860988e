/**
 * An AWS IoT control-plane error with its restJson1 type and HTTP status: the server answers it with
 * `x-amzn-ErrorType: <code>` and `{"message"}`, and @aws-sdk/client-iot raises the modelled exception of
 * that name (ResourceNotFoundException, MalformedPolicyException, DeleteConflictException, …). The one
 * error class of the Jobs service, the security registry and the routes; jobs/types.ts re-exports it.
 */
export type ControlPlaneErrorCode =
  | 'ResourceNotFoundException'
  | 'InvalidRequestException'
  | 'ResourceAlreadyExistsException'
  | 'VersionConflictException'
  | 'ConflictException'
  | 'LimitExceededException'
  | 'InvalidStateTransitionException'
  | 'InternalFailureException'
  | 'MalformedPolicyException'
  | 'DeleteConflictException'
  | 'CertificateStateException';

/** HTTP statuses from the @aws-sdk/client-iot error schemas. */
const HTTP_STATUS: Record<ControlPlaneErrorCode, number> = {
  ResourceNotFoundException: 404,
  InvalidRequestException: 400,
  ResourceAlreadyExistsException: 409,
  VersionConflictException: 409,
  ConflictException: 409,
  LimitExceededException: 410,
  InvalidStateTransitionException: 409,
  InternalFailureException: 500,
  MalformedPolicyException: 400,
  DeleteConflictException: 409,
  CertificateStateException: 406,
};

export class ControlPlaneError extends Error {
  readonly code: ControlPlaneErrorCode;
  readonly httpStatus: number;
  constructor(code: ControlPlaneErrorCode, message: string) {
    super(message);
    this.name = code;
    this.code = code;
    this.httpStatus = HTTP_STATUS[code];
  }
}
