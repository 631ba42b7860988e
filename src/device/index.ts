/** Public API of the device agent (the `ota agent` CLI, `ota demo` and the fleet simulator build on it). */

export type { JobExecution } from '../shared/jobs-protocol.ts';
export { ManualTimers, sleep, systemTimers, type Timers } from '../shared/timers.ts';
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
} from './config.ts';
export {
  ConnectError,
  type ConnectProblem,
  type ConnectProblemKind,
  diagnoseConnectError,
} from './connect-diagnosis.ts';
export { fetchIotCredentials, iotCredentialsProvider, type TemporaryCredentials } from './credentials.ts';
export {
  type DownloadOptions,
  type DownloadResult,
  type DownloadSource,
  downloadFirmware,
  HttpSource,
  S3Source,
} from './download.ts';
export { DownloadError, type DownloadErrorKind, JobRejectedError, JobsRequestError } from './errors.ts';
export {
  commandHooks,
  type DeviceHooks,
  type Hook,
  type HookCall,
  HookError,
  type HookName,
  shellHook,
} from './hooks.ts';
export {
  type FirmwareDocument,
  MAX_FIRMWARE_SIZE,
  parseJobDocument,
  type ResolvedSource,
  resolveSource,
} from './job-document.ts';
export {
  CONNECTION_TRANSITIONS,
  type ConnectionState,
  JobsClient,
  type JobsClientOptions,
} from './jobs-client.ts';
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
} from './progress.ts';
export { readSlots, type Slot, type SlotState, slotHooks } from './slots.ts';
export {
  type AgentState,
  type PendingCommit,
  readState,
  StateError,
  StateStore,
  writeState,
} from './state.ts';
export { SelfTestError } from './steps/device.ts';
export { SignatureError } from './steps/trust.ts';
export { compareVersions, parseVersion } from './version.ts';
