/**
 * An AWS IoT control-plane error with its restJson1 type and HTTP status: the server answers it with
 * `x-amzn-ErrorType: <code>` and `{"message"}`, and @aws-sdk/client-iot raises the modelled exception of
 * that name (MalformedPolicyException, DeleteConflictException, …). The Jobs service has its own
 * ControlPlaneError; modules added later throw this one.
 */
export type ApiErrorCode =
  | 'InvalidRequestException'
  | 'ResourceNotFoundException'
  | 'ResourceAlreadyExistsException'
  | 'MalformedPolicyException'
  | 'DeleteConflictException'
  | 'CertificateStateException'
  | 'LimitExceededException'
  | 'VersionConflictException';

/** HTTP statuses from the @aws-sdk/client-iot error schemas. */
const HTTP_STATUS: Record<ApiErrorCode, number> = {
  InvalidRequestException: 400,
  ResourceNotFoundException: 404,
  ResourceAlreadyExistsException: 409,
  MalformedPolicyException: 400,
  DeleteConflictException: 409,
  CertificateStateException: 406,
  LimitExceededException: 410,
  VersionConflictException: 409,
};

export class ApiError extends Error {
  readonly code: ApiErrorCode;
  readonly httpStatus: number;
  constructor(code: ApiErrorCode, message: string) {
    super(message);
    this.name = code;
    this.code = code;
    this.httpStatus = HTTP_STATUS[code];
  }
}
