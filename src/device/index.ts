/** Public API of the device agent (the `ota agent` CLI, `ota demo` and the fleet simulator build on it). */

export { type Clock, ManualClock, sleep, systemClock } from '../shared/clock.ts';
export type { JobExecution } from '../shared/jobs-protocol.ts';
export {
  type AgentEvent,
  type AgentHandle,
  type AgentOptions,
  type AgentSummary,
  type JobOutcome,
  type JobSummary,
  startAgent,
} from './agent.ts';
export {
  type AgentConfig,
  type AgentMode,
  type ConfigWarning,
  envName,
  type ResolveAgentConfigInput,
  readPem,
  resolveAgentConfig,
} from './config/agent-config.ts';
export {
  type FirmwareDocument,
  MAX_FIRMWARE_SIZE,
  parseJobDocument,
  type ResolvedSource,
  resolveSource,
} from './document/job-document.ts';
export { compareVersions, parseVersion } from './document/version.ts';
export {
  type DownloadOptions,
  type DownloadResult,
  type DownloadSource,
  downloadFirmware,
  HttpSource,
  S3Source,
} from './download/download.ts';
export { DownloadError, type DownloadErrorKind, JobRejectedError, JobsRequestError } from './errors.ts';
export {
  commandHooks,
  type DeviceHooks,
  type Hook,
  type HookCall,
  HookError,
  type HookName,
  shellHook,
} from './install/hooks.ts';
export { readSlots, type Slot, type SlotState, slotHooks } from './install/slots.ts';
export {
  type AgentState,
  type PendingCommit,
  readState,
  StateError,
  StateStore,
  writeState,
} from './install/state.ts';
export {
  ConnectError,
  type ConnectProblem,
  type ConnectProblemKind,
  diagnoseConnectError,
} from './link/connect-diagnosis.ts';
export {
  CONNECTION_TRANSITIONS,
  type ConnectionState,
  JobsClient,
  type JobsClientOptions,
} from './link/jobs-client.ts';
export {
  type JobContext,
  newJobContext,
  OTA_PIPELINE,
  OTA_STEPS,
  type Pipeline,
  runPipeline,
  runSteps,
  type Step,
  type StepEnv,
  type StepName,
  type StepResult,
} from './pipeline.ts';
export {
  buildProgressMessage,
  formatDuration,
  formatPercent,
  formatStartTime,
  ORIGINAL_PROGRESS_KEYS,
  ProgressThrottle,
  pythonJsonDumps,
  serializeProgress,
} from './progress/message.ts';
export {
  fetchIotCredentials,
  iotCredentialsProvider,
  type TemporaryCredentials,
} from './source/credentials.ts';
export { SelfTestError } from './steps/device.ts';
export { SignatureError } from './steps/trust.ts';
