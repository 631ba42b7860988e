/**
 * The service's one timer: armed for the earliest deadline in the database, so timers survive restarts
 * (they are rows, re-armed at start; reference section 2). Time comes from the injected Scheduler.
 */

import type { TimerHandle } from './clock.ts';
import type { JobsContext } from './context.ts';
import { expireDue } from './executions.ts';

export interface TimerLoop {
  /** Re-arms the timer for the earliest deadline (call after every change). */
  schedule(): void;
  close(): void;
}

export function createTimerLoop(ctx: JobsContext): TimerLoop {
  let timer: TimerHandle | undefined;
  let closed = false;

  function onTimer(): void {
    timer = undefined;
    if (closed) return;
    try {
      const at = ctx.scheduler.now();
      ctx.send(ctx.store.transaction(() => expireDue(ctx, at)));
    } catch (err) {
      ctx.log.error({ err }, 'jobs: timer processing failed');
    }
    loop.schedule();
  }

  const loop: TimerLoop = {
    schedule() {
      if (closed) return;
      timer?.cancel();
      timer = undefined;
      const deadline = ctx.store.nextDeadline();
      if (deadline === undefined) return;
      timer = ctx.scheduler.setTimer(deadline - ctx.scheduler.now(), onTimer);
    },
    close() {
      closed = true;
      timer?.cancel();
      timer = undefined;
    },
  };
  return loop;
}
