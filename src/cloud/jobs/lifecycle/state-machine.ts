/**
 * The job-execution state machine (docs/protocol.md, Execution states; AWS IoT developer guide "Job
 * execution states").
 * One transition table, pure functions, no I/O: the service and the control plane both ask it before
 * writing a status, so the rules live in exactly one place.
 */
import { OtaError } from '../../../shared/errors.ts';
import { EXECUTION_STATUSES, type ExecutionStatus, TERMINAL_EXECUTION_STATUSES } from '../types.ts';

export { EXECUTION_STATUSES };

/** Statuses a device may write with UpdateJobExecution (AWS "UpdateJobExecution": IN_PROGRESS, FAILED, SUCCEEDED, REJECTED). */
export const DEVICE_SETTABLE_STATUSES: readonly ExecutionStatus[] = [
  'IN_PROGRESS',
  'SUCCEEDED',
  'FAILED',
  'REJECTED',
];

/**
 * Statuses the service writes: timers (TIMED_OUT), CancelJob/CancelJobExecution/abort (CANCELED), a
 * thing that is no longer a target (REMOVED), and FAILED for a job document that cannot be delivered
 * (document.ts; it would otherwise wedge the thing's queue).
 */
export const SERVICE_STATUSES: readonly ExecutionStatus[] = ['TIMED_OUT', 'CANCELED', 'REMOVED', 'FAILED'];

export type TransitionActor = 'device' | 'service';

export interface TransitionRule {
  readonly from: ExecutionStatus;
  readonly to: ExecutionStatus;
  readonly actor: TransitionActor;
  /** Cancelling an IN_PROGRESS execution needs force=true (AWS CancelJob / CancelJobExecution). */
  readonly requiresForce?: boolean;
  /** Allowed only when `allowRejectFromInProgress` is on (docs/protocol.md, Unconfirmed: configurable). */
  readonly gatedBy?: 'allowRejectFromInProgress';
}

/**
 * Every allowed transition. Anything not listed is refused. Terminal statuses have no outgoing edge.
 * - QUEUED → SUCCEEDED/FAILED/REJECTED: a device may finish (or refuse) a job without starting it.
 * - IN_PROGRESS → IN_PROGRESS: progress updates (statusDetails, step timer) keep the status.
 * - TIMED_OUT only from IN_PROGRESS: both timers start when the execution starts (docs/protocol.md,
 *   Timeouts).
 */
export const TRANSITIONS: readonly TransitionRule[] = [
  { from: 'QUEUED', to: 'IN_PROGRESS', actor: 'device' },
  { from: 'QUEUED', to: 'SUCCEEDED', actor: 'device' },
  { from: 'QUEUED', to: 'FAILED', actor: 'device' },
  { from: 'QUEUED', to: 'REJECTED', actor: 'device' },
  { from: 'IN_PROGRESS', to: 'IN_PROGRESS', actor: 'device' },
  { from: 'IN_PROGRESS', to: 'SUCCEEDED', actor: 'device' },
  { from: 'IN_PROGRESS', to: 'FAILED', actor: 'device' },
  { from: 'IN_PROGRESS', to: 'REJECTED', actor: 'device', gatedBy: 'allowRejectFromInProgress' },
  { from: 'QUEUED', to: 'CANCELED', actor: 'service' },
  { from: 'IN_PROGRESS', to: 'CANCELED', actor: 'service', requiresForce: true },
  { from: 'QUEUED', to: 'REMOVED', actor: 'service' },
  { from: 'IN_PROGRESS', to: 'REMOVED', actor: 'service' },
  { from: 'IN_PROGRESS', to: 'TIMED_OUT', actor: 'service' },
  { from: 'QUEUED', to: 'FAILED', actor: 'service' },
  { from: 'IN_PROGRESS', to: 'FAILED', actor: 'service' },
];

export interface TransitionContext {
  actor: TransitionActor;
  force?: boolean;
  /** Default true. */
  allowRejectFromInProgress?: boolean;
}

export type TransitionRefusal =
  /** The current status is terminal: nothing may follow it. */
  | 'terminal'
  /** The target status is not one this actor may write. */
  | 'not-settable'
  /** The table has no such edge (or it is switched off by an option). */
  | 'not-allowed'
  /** The edge exists but needs force=true. */
  | 'needs-force';

export type TransitionCheck = { ok: true } | { ok: false; reason: TransitionRefusal };

export function isTerminal(status: ExecutionStatus): boolean {
  return TERMINAL_EXECUTION_STATUSES.includes(status);
}

export function isExecutionStatus(value: unknown): value is ExecutionStatus {
  return typeof value === 'string' && (EXECUTION_STATUSES as readonly string[]).includes(value);
}

export function checkTransition(
  from: ExecutionStatus,
  to: ExecutionStatus,
  ctx: TransitionContext,
): TransitionCheck {
  const settable = ctx.actor === 'device' ? DEVICE_SETTABLE_STATUSES : SERVICE_STATUSES;
  if (!settable.includes(to)) return { ok: false, reason: 'not-settable' };
  if (isTerminal(from)) return { ok: false, reason: 'terminal' };
  const rule = TRANSITIONS.find((r) => r.from === from && r.to === to && r.actor === ctx.actor);
  if (rule === undefined) return { ok: false, reason: 'not-allowed' };
  if (rule.gatedBy === 'allowRejectFromInProgress' && ctx.allowRejectFromInProgress === false) {
    return { ok: false, reason: 'not-allowed' };
  }
  if (rule.requiresForce === true && ctx.force !== true) return { ok: false, reason: 'needs-force' };
  return { ok: true };
}

/** A refused transition; `code` is stable, `reason` says which rule refused it. */
export class InvalidStateTransition extends OtaError {
  readonly from: ExecutionStatus;
  readonly to: ExecutionStatus;
  readonly reason: TransitionRefusal;
  constructor(from: ExecutionStatus, to: ExecutionStatus, reason: TransitionRefusal) {
    super('OTA_INVALID_STATE_TRANSITION', describeRefusal(from, to, reason));
    this.from = from;
    this.to = to;
    this.reason = reason;
  }
}

function describeRefusal(from: ExecutionStatus, to: ExecutionStatus, reason: TransitionRefusal): string {
  switch (reason) {
    case 'terminal':
      return `the job execution is in the terminal status ${from} and cannot change to ${to}`;
    case 'not-settable':
      return `status ${to} cannot be set by this caller`;
    case 'needs-force':
      return `the job execution is ${from}; changing it to ${to} requires force=true`;
    case 'not-allowed':
      return `the job execution cannot change from ${from} to ${to}`;
  }
}

export function assertTransition(from: ExecutionStatus, to: ExecutionStatus, ctx: TransitionContext): void {
  const r = checkTransition(from, to, ctx);
  if (!r.ok) throw new InvalidStateTransition(from, to, r.reason);
}
