/**
 * AWS IoT Jobs execution statuses (API reference, JobExecutionStatus; docs/protocol.md, Execution
 * states), as a pure module with no Node or DOM dependency: the browser dashboard bundles it, the operator
 * tools use it.
 */
export const EXECUTION_STATUSES = [
  'QUEUED',
  'IN_PROGRESS',
  'SUCCEEDED',
  'FAILED',
  'TIMED_OUT',
  'REJECTED',
  'REMOVED',
  'CANCELED',
] as const;

export type ExecutionStatusName = (typeof EXECUTION_STATUSES)[number];

const TERMINAL = new Set<string>(['SUCCEEDED', 'FAILED', 'TIMED_OUT', 'REJECTED', 'REMOVED', 'CANCELED']);

/** Whether an execution in this status can change no more (every status but QUEUED and IN_PROGRESS). */
export const isTerminalExecutionStatus = (status: string): boolean => TERMINAL.has(status);

export const isExecutionStatusName = (s: string): s is ExecutionStatusName =>
  (EXECUTION_STATUSES as readonly string[]).includes(s);
