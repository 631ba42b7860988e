/**
 * The OTA fleet dashboard page. One EventSource per selected job (`api/stream?job=…`) brings the job
 * list, the job, a snapshot of its rows and then batches of changed rows; the page never polls. Drawing
 * happens at most once per animation frame, and once a second for the ages and estimates.
 */
import type { JobInfo, JobListEntry, StatusCounts, StreamEvents } from '../../src/dashboard/model.ts';
import { HeaderView } from './header-view.ts';
import { RowsView } from './rows-view.ts';
import { RowStore } from './store.ts';

const $ = (id: string): HTMLElement => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing from index.html`);
  return el;
};

const store = new RowStore();
let jobs: JobListEntry[] = [];
let job: JobInfo | undefined;
let selected: string | undefined = new URLSearchParams(location.hash.slice(1)).get('job') ?? undefined;
/** Until the operator picks a job, the page follows the most recent one. */
let follow = selected === undefined;
/** Server clock minus ours, so ages are right even if the two clocks differ. */
let skew = 0;
let source: EventSource | undefined;
let frame = 0;
let drawnVersion = -1;

const header = new HeaderView(
  (jobId) => {
    follow = false;
    history.replaceState(null, '', `#job=${encodeURIComponent(jobId)}`);
    select(jobId);
  },
  (status) => {
    store.setFilter(status, ($('filter') as HTMLInputElement).value);
    schedule();
  },
);
const rowsView = new RowsView($('rows'), $('spacer'), () => draw(true));

$('filter').addEventListener('input', (e) => {
  store.setFilter(store.statusFilter, (e.target as HTMLInputElement).value);
  schedule();
});

function schedule(): void {
  if (frame === 0) frame = requestAnimationFrame(() => draw(false));
}

function draw(force: boolean): void {
  frame = 0;
  const now = Date.now() + skew;
  if (!force && drawnVersion === store.version) return;
  drawnVersion = store.version;
  const order = store.order();
  rowsView.render(order, store.rows, now);
  const counts = header.renderHealth(job, store.rows, now);
  drawJobs(counts);
  $('empty').hidden = store.rows.size > 0 || selected === undefined;
}

/** The job list, with the selected job's status and counts as this page sees them live. */
function drawJobs(live?: StatusCounts): void {
  const entries = jobs.map((j) =>
    j.jobId === selected
      ? { ...j, status: job?.status ?? j.status, counts: live && store.rows.size > 0 ? live : j.counts }
      : j,
  );
  header.renderJobs(entries, selected);
}

function problem(message: string | undefined): void {
  const p = $('problem');
  p.textContent = message ?? '';
  p.hidden = !message;
}

function feedState(state: string, detail?: string): void {
  const f = $('feed');
  f.dataset.state = state;
  f.textContent = state === 'connected' ? 'live' : detail ? `${state}: ${detail}` : `${state}…`;
}

function on<K extends keyof StreamEvents>(
  es: EventSource,
  name: K,
  fn: (data: StreamEvents[K]) => void,
): void {
  es.addEventListener(name, (ev) => {
    if (es !== source) return;
    const data = JSON.parse((ev as MessageEvent<string>).data) as StreamEvents[K];
    skew = data.now - Date.now();
    fn(data);
  });
}

function select(jobId: string | undefined): void {
  source?.close();
  selected = jobId;
  job = undefined;
  store.replace([]);
  problem(undefined);
  header.renderJob(undefined, selected);
  drawJobs();
  schedule();
  const es = new EventSource(`api/stream${jobId ? `?job=${encodeURIComponent(jobId)}` : ''}`);
  source = es;
  on(es, 'jobs', (d) => {
    jobs = d.jobs;
    if (d.selected !== undefined && selected === undefined) selected = d.selected;
    const newest = jobs[0]?.jobId;
    if (follow && newest !== undefined && newest !== selected) {
      select(newest);
      return;
    }
    drawJobs();
    store.version++;
    schedule();
    if (!job) header.renderJob(undefined, selected);
  });
  on(es, 'job', (d) => {
    job = d.job;
    header.renderJob(job, selected);
    store.version++;
    schedule();
  });
  on(es, 'snapshot', (d) => {
    store.replace(d.rows);
    schedule();
  });
  on(es, 'rows', (d) => {
    store.apply(d.rows);
    schedule();
  });
  on(es, 'feed', (d) => feedState(d.state, d.detail));
  es.addEventListener('problem', (ev) => {
    if (es === source)
      problem((JSON.parse((ev as MessageEvent<string>).data) as { message: string }).message);
  });
  es.addEventListener('open', () => {
    if (es === source) problem(undefined);
  });
  es.addEventListener('error', () => {
    if (es === source) feedState('offline', 'the dashboard server is unreachable; retrying');
  });
}

// Ages and estimates move with time even when no message arrives.
setInterval(() => draw(true), 1000);
window.addEventListener('hashchange', () => {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('job') ?? undefined;
  if (fromHash && fromHash !== selected) {
    follow = false;
    select(fromHash);
  }
});
select(selected);
