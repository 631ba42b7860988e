/**
 * Error codes of the AWS IoT Jobs MQTT API (developer guide, "Jobs device MQTT API operations",
 * ErrorResponse; reference section 1). Shared wire contract of the Jobs service and the device agent.
 */
export type JobsMqttErrorCode =
  | 'InvalidTopic'
  | 'InvalidJson'
  | 'InvalidRequest'
  | 'InvalidStateTransition'
  | 'ResourceNotFound'
  | 'VersionMismatch'
  | 'InternalError'
  | 'RequestThrottled'
  | 'TerminalStateReached';
