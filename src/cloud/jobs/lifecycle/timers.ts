/**
 * The service's one timer: armed for the earliest deadline in the database — an execution's step or
 * in-progress timer, or a job's rollout wake-up (start, next release, window, end) — so timers survive
 * restarts (they are rows, re-armed at start; docs/protocol.md, Timeouts). Time comes from the injected
 * clock; the timer never keeps the process alive (the service's owner closes it).
 */
import { type TimerHandle, unrefTimer } from '../../../shared/clock.ts';
import type { JobsContext } from '../context.ts';
import type { Outbound } from '../mqtt/outbound.ts';
import { expireDue } from './outcomes.ts';
import { tickJob } from './rollout.ts';

export interface TimerLoop {
  /** Re-arms the timer for the earliest deadline (call after every change). */
  schedule(): void;
  close(): void;
}

/** Everything due at `at`: expired execution timers, then the rollout ticks of due jobs. */
export function runDue(ctx: JobsContext, at: number): Outbound[] {
  const out = expireDue(ctx, at);
  for (const jobId of ctx.store.rollout.dueJobs(at)) {
    // One savepoint per job: a job whose tick fails is parked (no wake-up) instead of failing every tick.
    const mine: Outbound[] = [];
    try {
      ctx.store.transaction(() => tickJob(ctx, jobId, at, mine));
      out.push(...mine);
    } catch (err) {
      ctx.log.error({ err, jobId }, 'jobs: rollout tick failed; the job waits for the next change');
      ctx.store.rollout.setWake(jobId, undefined);
    }
  }
  return out;
}

export function createTimerLoop(ctx: JobsContext): TimerLoop {
  let timer: TimerHandle | undefined;
  let closed = false;

  function onTimer(): void {
    timer = undefined;
    if (closed) return;
    try {
      const at = ctx.clock.now();
      ctx.send(ctx.store.transaction(() => runDue(ctx, at)));
    } catch (err) {
      ctx.log.error({ err }, 'jobs: timer processing failed');
    }
    loop.schedule();
  }

  const loop: TimerLoop = {
    schedule() {
      if (closed) return;
      ctx.clock.clear(timer);
      timer = undefined;
      const deadlines = [ctx.store.nextDeadline(), ctx.store.rollout.nextWake()].filter(
        (d): d is number => d !== undefined,
      );
      if (deadlines.length === 0) return;
      timer = unrefTimer(ctx.clock.setTimeout(onTimer, Math.min(...deadlines) - ctx.clock.now()));
    },
    close() {
      closed = true;
      ctx.clock.clear(timer);
      timer = undefined;
    },
  };
  return loop;
}
