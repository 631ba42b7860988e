/**
 * Everything above the device table: the job list (with per-status counts), the selected job's status
 * and cancellation reason, its rollout health (pace, abort state, time to fleet) and the status chips
 * that filter the table.
 */
import { formatBytes, formatDuration } from '../../src/dashboard/format.ts';
import {
  countByStatus,
  type DeviceRow,
  type JobInfo,
  type JobListEntry,
  type StatusCounts,
} from '../../src/dashboard/model.ts';
import {
  abortState,
  configuredPace,
  NONE,
  observedPerMinute,
  timeToFleet,
} from '../../src/dashboard/rollout.ts';
import { EXECUTION_STATUSES } from '../../src/shared/execution-status.ts';

const $ = (id: string): HTMLElement => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing from index.html`);
  return el;
};

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  cls?: string,
  text?: string,
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

const setText = (id: string, text: string) => {
  const e = $(id);
  if (e.textContent !== text) e.textContent = text;
};

/** "12 ✓ · 1 ✗ · 3 ⟳ · 40 queued" from per-status counts. */
function countsLine(c: Partial<StatusCounts> | undefined): string {
  if (!c) return NONE;
  const failed = (c.FAILED ?? 0) + (c.REJECTED ?? 0) + (c.TIMED_OUT ?? 0);
  const parts = [
    `${c.SUCCEEDED ?? 0} ok`,
    failed > 0 ? `${failed} failed` : '',
    c.IN_PROGRESS ? `${c.IN_PROGRESS} running` : '',
    c.QUEUED ? `${c.QUEUED} queued` : '',
    c.CANCELED ? `${c.CANCELED} canceled` : '',
  ];
  return parts.filter(Boolean).join(' · ');
}

export class HeaderView {
  constructor(
    private readonly onSelectJob: (jobId: string) => void,
    private readonly onStatusFilter: (status: string | undefined) => void,
  ) {}

  private jobsKey = '';

  renderJobs(jobs: readonly JobListEntry[], selected: string | undefined): void {
    const key = JSON.stringify([jobs, selected]);
    if (key === this.jobsKey) return;
    this.jobsKey = key;
    const byStatus = new Map<string, number>();
    for (const j of jobs) byStatus.set(j.status ?? '?', (byStatus.get(j.status ?? '?') ?? 0) + 1);
    setText(
      'job-totals',
      [...byStatus].map(([s, n]) => `${n} ${s.toLowerCase().replace('_', ' ')}`).join(' · '),
    );
    const list = $('job-list');
    const items = jobs.map((j) => {
      const li = el('li');
      const b = el('button');
      b.type = 'button';
      b.dataset.job = j.jobId;
      if (j.jobId === selected) b.setAttribute('aria-current', 'true');
      b.append(
        el('span', 'job-id', j.jobId),
        el('span', 'job-meta', `${j.status ?? NONE} · ${countsLine(j.counts)}`),
      );
      b.addEventListener('click', () => this.onSelectJob(j.jobId));
      li.append(b);
      return li;
    });
    list.replaceChildren(...items);
  }

  renderJob(job: JobInfo | undefined, selected: string | undefined): void {
    setText('job-title', job?.jobId ?? selected ?? 'No job yet');
    const badge = $('job-status');
    setText('job-status', job?.status ?? '');
    badge.dataset.status = job?.status ?? '';
    const reason = $('job-reason');
    const parts = [job?.reasonCode, job?.comment].filter(Boolean);
    if (job?.status === 'CANCELED' || parts.length > 0) {
      const forced = job?.forceCanceled ? ' (forced)' : '';
      reason.textContent = `${job?.status === 'CANCELED' ? 'Canceled' : 'Note'}${forced}: ${parts.join(' — ') || 'no reason given'}`;
      reason.hidden = false;
    } else {
      reason.hidden = true;
    }
  }

  renderHealth(job: JobInfo | undefined, rows: ReadonlyMap<string, DeviceRow>, now: number): StatusCounts {
    const list = [...rows.values()];
    const counts = countByStatus(list);
    let bytes = 0;
    let total = 0;
    for (const r of list) {
      bytes += r.bytes;
      total += r.total;
    }
    const targets = job?.processDetails
      ? Object.values(job.processDetails).reduce((a, b) => a + (b ?? 0), 0)
      : undefined;
    const failed = counts.FAILED + counts.REJECTED + counts.TIMED_OUT;
    this.health(
      'fleet-progress',
      `${counts.SUCCEEDED} / ${Math.max(list.length, targets ?? 0)} succeeded${failed ? `, ${failed} failed` : ''}`,
      total > 0 ? `${formatBytes(bytes)} of ${formatBytes(total)}` : '',
    );
    this.health(
      'pace',
      configuredPace(job?.rollout),
      `${observedPerMinute(list, now)} started in the last minute`,
    );
    const abort = abortState(job, counts);
    this.health('abort', abort.state, abort.criteria.map((c) => c.text).join('\n'));
    const ttf = timeToFleet(list, now, job?.rollout, targets);
    this.health('ttf', ttf === 0 ? 'done' : formatDuration(ttf), '');
    this.renderCounts(counts, list.length);
    return counts;
  }

  private health(id: string, value: string, detail: string): void {
    const dd = $(id);
    const key = `${value}\n${detail}`;
    if (dd.dataset.key === key) return;
    dd.dataset.key = key;
    dd.replaceChildren(value);
    if (detail) dd.append(el('small', undefined, detail));
  }

  private renderCounts(counts: StatusCounts, all: number): void {
    const box = $('counts');
    const current = box.dataset.filter || undefined;
    const key = `${current}|${all}|${EXECUTION_STATUSES.map((s) => counts[s]).join(',')}`;
    if (box.dataset.key === key) return;
    box.dataset.key = key;
    const chip = (label: string, n: number, status: string | undefined) => {
      const b = el('button', undefined, `${label} ${n}`);
      b.type = 'button';
      b.dataset.status = status ?? 'ALL';
      b.setAttribute('aria-pressed', String(current === status));
      b.addEventListener('click', () => {
        box.dataset.filter = status ?? '';
        this.onStatusFilter(status);
      });
      return b;
    };
    const chips = [chip('All', all, undefined)];
    for (const s of EXECUTION_STATUSES) if (counts[s] > 0 || current === s) chips.push(chip(s, counts[s], s));
    box.replaceChildren(...chips);
  }
}
