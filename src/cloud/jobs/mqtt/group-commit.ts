/**
 * Group commit: the messages caused by committed changes leave only once those commits are on disk
 * (store.ts, "Durability"). One fdatasync of the WAL covers every commit made before it started, so while
 * one sync is in flight (on the thread pool: the event loop never waits for the disk) the messages of the
 * changes that commit meanwhile gather into the next batch. An idle service syncs per change, as with
 * synchronous=FULL; a busy one syncs once per batch. Batches leave in order, so the per-thing order of
 * outbound.ts holds.
 */
import type { Logger } from '../../../shared/log.ts';
import type { Outbound } from './outbound.ts';

export interface GroupCommitDeps {
  /** Makes every commit so far durable, then calls back (store.syncWal). */
  sync: (done: (err?: Error) => void) => void;
  /** Hands durable messages on (the outbound queue). */
  deliver: (messages: Outbound[]) => void;
  log: Logger;
}

export interface GroupCommit {
  /** Queues messages to leave once every commit made so far is durable. */
  send(messages: Outbound[]): void;
  /** Resolves once every message queued so far has been handed to `deliver`. */
  idle(): Promise<void>;
  /** Messages not yet delivered are dropped. */
  close(): void;
}

export function createGroupCommit(deps: GroupCommitDeps): GroupCommit {
  let waiting: Outbound[] = [];
  let syncing = false;
  let closed = false;
  let idleWaiters: (() => void)[] = [];

  function settleIdle(): void {
    if (syncing || waiting.length > 0) return;
    const w = idleWaiters;
    idleWaiters = [];
    for (const r of w) r();
  }

  function flush(): void {
    if (syncing || closed || waiting.length === 0) {
      settleIdle();
      return;
    }
    const batch = waiting;
    waiting = [];
    syncing = true;
    deps.sync((err) => {
      syncing = false;
      if (closed) return settleIdle();
      // A failed fdatasync leaves the state in the page cache (it survives a process crash); the service
      // goes on rather than going silent, and says so.
      if (err) deps.log.error({ err }, 'jobs: could not sync the database; sending anyway');
      deps.deliver(batch);
      flush();
    });
  }

  return {
    send(messages) {
      if (closed || messages.length === 0) return;
      for (const m of messages) waiting.push(m);
      flush();
    },
    idle() {
      if (!syncing && waiting.length === 0) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
    close() {
      closed = true;
      waiting = [];
      settleIdle();
      const w = idleWaiters;
      idleWaiters = [];
      for (const r of w) r();
    },
  };
}
