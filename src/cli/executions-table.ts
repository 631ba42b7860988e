import type { ExecutionRow } from '../operator/jobs.ts';
import type { ExecutionWithProgress } from '../operator/live-progress.ts';
import { isoSeconds, table } from './format.ts';
import { formatBytePair } from './progress-view.ts';

/**
 * `ota job executions` as a table. PROGRESS is the last known figure (`(live)` when it came from the
 * progress topic, newer than the statusDetails); then STATUS DETAILS leaves out its own, older
 * `progress`/`percent`, so the row never shows two different counts.
 */
export function executionsTable(rows: Array<ExecutionRow | ExecutionWithProgress>): string {
  return table(
    ['THING', 'STATUS', 'EXEC#', 'VERSION', 'UPDATED', 'PROGRESS', 'STATUS DETAILS'],
    rows.map((r) => {
      const p = 'progress' in r ? r.progress : undefined;
      const details = { ...r.statusDetails };
      if (p?.source === 'progress-topic') {
        delete details.progress;
        delete details.percent;
      }
      return [
        r.thingName,
        r.status,
        r.executionNumber,
        r.versionNumber,
        isoSeconds(r.lastUpdatedAt),
        p
          ? `${p.percent.replace(' %', '%')} ${formatBytePair(p.bytes, p.total)}${p.source === 'progress-topic' ? ' (live)' : ''}`
          : '',
        r.statusDetails ? JSON.stringify(details) : '',
      ];
    }),
  );
}
