import { errorMessage } from '../../shared/errors.ts';
import { JobsRequestError } from '../errors.ts';
import type { StepEnv } from '../job-context.ts';
import type { OutboxReport } from './state.ts';

/**
 * The outbox of terminal reports. A job's SUCCEEDED, FAILED or REJECTED is written to state.json in the
 * same atomic write as the device change it reports (the commit; the end of an install's pending
 * record), then sent, then cleared. A power cut or an outage between the decision and the service's
 * answer leaves it in state.json, and the next start-next sends it first: the service learns the outcome
 * the device recorded, and the job is never run again from the top as if nothing had happened
 * (docs/agent.md, "Commit protocol").
 */

type OutboxEnv = Pick<StepEnv, 'jobs' | 'state' | 'logger' | 'timers'>;

/**
 * Records `report` as the job's outcome: the pending-commit and in-flight records go in the same write.
 * A state that cannot be written is logged, and the report is still sent by the caller.
 */
export async function recordReport(env: OutboxEnv, report: OutboxReport): Promise<void> {
  await env.state
    .update((s) => {
      const { pending: _ended, inFlight: _done, ...rest } = s;
      return { ...rest, report };
    })
    .catch((err: unknown) =>
      env.logger.error({ err: errorMessage(err) }, 'could not record the report; sending it anyway'),
    );
}

/**
 * Sends the report and, once the service has it, clears it from state.json and notes the job as the
 * last one. A service that no longer takes a status for the execution (cancelled, removed, or already
 * terminal) ends the report too. Anything else (no connection, a timeout) throws, and the report stays
 * for the next start-next. IN_PROGRESS → REJECTED is unconfirmed on AWS (docs/protocol.md,
 * Unconfirmed): refused, it becomes FAILED with the same details.
 */
export async function deliverReport(
  env: OutboxEnv,
  report: OutboxReport,
): Promise<OutboxReport['status'] | 'gone'> {
  let outcome: OutboxReport['status'] | 'gone' = report.status;
  try {
    await env.jobs.update(report.jobId, report.status, report.statusDetails);
  } catch (err) {
    if (!(err instanceof JobsRequestError)) throw err;
    if (report.status === 'REJECTED' && err.jobsCode === 'InvalidStateTransition') {
      const failed: OutboxReport = { ...report, status: 'FAILED' };
      await recordReport(env, failed);
      return deliverReport(env, failed);
    }
    if (!err.executionGone) throw err;
    env.logger.warn(
      { jobId: report.jobId, status: report.status, err: errorMessage(err) },
      'the service takes no status for this execution any more; the report is dropped',
    );
    outcome = 'gone';
  }
  const at = new Date(env.timers.now()).toISOString();
  const version = report.statusDetails.version;
  await env.state
    .update((s) => {
      const { report: sent, ...rest } = s;
      if (sent?.jobId !== report.jobId) return s;
      return outcome === 'gone'
        ? rest
        : {
            ...rest,
            lastJob: { jobId: report.jobId, status: report.status, ...(version ? { version } : {}), at },
          };
    })
    .catch((err: unknown) =>
      env.logger.error({ err: errorMessage(err) }, 'could not clear the sent report; it is sent again'),
    );
  return outcome;
}
