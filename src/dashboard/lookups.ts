import type { IoTClient } from '@aws-sdk/client-iot';
import { errorMessage } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import { readExecution } from './iot-reads.ts';
import type { ExecutionFacts } from './tracker.ts';

/**
 * DescribeJobExecution calls for the executions whose final status and reason the dashboard needs: at
 * most `concurrency` in flight (AWS throttles the control plane per account), and one per execution
 * however often it is asked for while queued.
 */
export class ExecutionLookups {
  private readonly queued = new Map<string, { jobId: string; thing: string }>();
  private running = 0;
  private closed = false;

  constructor(
    private readonly iot: IoTClient,
    private readonly onFacts: (jobId: string, thing: string, facts: ExecutionFacts) => void,
    private readonly log: Logger,
    private readonly concurrency = 4,
  ) {}

  add(jobId: string, thing: string): void {
    this.queued.set(`${jobId}\n${thing}`, { jobId, thing });
    this.drain();
  }

  close(): void {
    this.closed = true;
    this.queued.clear();
  }

  private drain(): void {
    while (this.running < this.concurrency && this.queued.size > 0 && !this.closed) {
      const [key, next] = this.queued.entries().next().value as [string, { jobId: string; thing: string }];
      this.queued.delete(key);
      this.running++;
      readExecution(this.iot, next.jobId, next.thing)
        .then((facts) => {
          if (facts && !this.closed) this.onFacts(next.jobId, next.thing, facts);
        })
        .catch((err: unknown) =>
          this.log.warn({ err: errorMessage(err) }, 'dashboard: DescribeJobExecution failed'),
        )
        .finally(() => {
          this.running--;
          this.drain();
        });
    }
  }
}
