/**
 * What every part of the Jobs service shares: the store, the clock, the settings, the outbound queue and
 * `mutate`, the one way to change state. The parts (MQTT API, control plane, executions, timers) are
 * plain functions over this context, composed in service.ts.
 */
import type { Clock } from '../../shared/clock.ts';
import type { Logger } from '../../shared/log.ts';
import type { Presign } from './document.ts';
import type { Outbound } from './mqtt/outbound.ts';
import type { JobsStore } from './store/store.ts';

export interface JobsContext {
  readonly store: JobsStore;
  readonly clock: Clock;
  readonly log: Logger;
  readonly region: string;
  readonly accountId: string;
  /** Length of a Jobs "minute" in milliseconds (every Jobs duration scales with it). */
  readonly minuteMs: number;
  readonly allowRejectFromInProgress: boolean;
  readonly presign: Presign;
  readonly fetchDocument: ((url: string) => Promise<string>) | undefined;
  readonly arn: {
    thing(name: string): string;
    group(name: string): string;
    job(jobId: string): string;
  };
  /** Told after a DeleteThing committed (the stack drops the thing's connection). */
  onThingDeleted(thingName: string): void;
  /** Queues messages for delivery (after the commit that caused them). */
  send(messages: Outbound[]): void;
  /**
   * Runs one state change: a single transaction (due timers are applied first), then the messages it
   * produced are sent and the timers re-armed. Whatever `fn` throws rolls the transaction back.
   */
  mutate<T>(fn: (at: number, out: Outbound[]) => T): T;
}
