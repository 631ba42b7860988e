/**
 * The device table as a virtual list: a spacer as tall as every row would be, and a small pool of row
 * elements placed over the part that is on screen. 10,000 devices cost the ~30 rows in view; each frame
 * writes only the cells whose text changed.
 */
import {
  formatAge,
  formatBytePair,
  formatDuration,
  formatPercent,
  formatRate,
} from '../../src/dashboard/format.ts';
import { type DeviceRow, displayState, percentOf } from '../../src/dashboard/model.ts';

const OVERSCAN = 6;
const CELLS = ['thing', 'bar', 'bytes', 'rate', 'eta', 'state', 'age', 'reason'] as const;
type Cell = (typeof CELLS)[number];

interface RowElement {
  el: HTMLElement;
  cells: Record<Cell, HTMLElement>;
  fill: HTMLElement;
  pct: HTMLElement;
  last: Map<string, string>;
}

export class RowsView {
  private readonly pool: RowElement[] = [];
  private rowHeight = 34;

  constructor(
    private readonly container: HTMLElement,
    private readonly spacer: HTMLElement,
    private readonly onScroll: () => void,
  ) {
    container.addEventListener('scroll', () => this.onScroll(), { passive: true });
    new ResizeObserver(() => {
      this.measure();
      this.onScroll();
    }).observe(container);
    this.measure();
  }

  /** The row height comes from CSS (--row-h), which a phone layout changes. */
  private measure(): void {
    const h = Number.parseFloat(getComputedStyle(this.container).getPropertyValue('--row-h'));
    if (Number.isFinite(h) && h > 0) this.rowHeight = h;
  }

  render(order: readonly string[], rows: ReadonlyMap<string, DeviceRow>, now: number): void {
    const h = this.rowHeight;
    this.spacer.style.height = `${order.length * h}px`;
    const first = Math.max(0, Math.floor(this.container.scrollTop / h) - OVERSCAN);
    const last = Math.min(
      order.length,
      Math.ceil((this.container.scrollTop + this.container.clientHeight) / h) + OVERSCAN,
    );
    let used = 0;
    for (let i = first; i < last; i++) {
      const row = rows.get(order[i] as string);
      if (!row) continue;
      const r = this.pool[used] ?? this.create();
      used++;
      r.el.hidden = false;
      r.el.style.top = `${i * h}px`;
      this.fill(r, row, now);
    }
    for (let k = used; k < this.pool.length; k++) (this.pool[k] as RowElement).el.hidden = true;
  }

  private create(): RowElement {
    const el = document.createElement('div');
    el.className = 'row';
    const cells = {} as Record<Cell, HTMLElement>;
    for (const c of CELLS) {
      const span = document.createElement('span');
      span.className = `c-${c}`;
      el.append(span);
      cells[c] = span;
    }
    const fill = document.createElement('span');
    fill.className = 'fill';
    const pct = document.createElement('span');
    pct.className = 'pct';
    cells.bar.append(fill, pct);
    this.spacer.append(el);
    const r: RowElement = { el, cells, fill, pct, last: new Map() };
    this.pool.push(r);
    return r;
  }

  private fill(r: RowElement, row: DeviceRow, now: number): void {
    const percent = percentOf(row);
    const set = (key: string, value: string, write: (v: string) => void) => {
      if (r.last.get(key) === value) return;
      r.last.set(key, value);
      write(value);
    };
    set('thing', row.thing, (v) => {
      r.el.dataset.thing = v;
      r.cells.thing.textContent = v;
      r.cells.thing.title = v;
    });
    set('status', row.status, (v) => {
      r.el.dataset.status = v;
    });
    set('width', `${percent.toFixed(2)}%`, (v) => {
      r.fill.style.width = v;
    });
    set('pct', formatPercent(percent), (v) => {
      r.pct.textContent = v;
    });
    const bytes = row.total > 0 ? formatBytePair(row.bytes, row.total) : '—';
    set('bytes', bytes, (v) => {
      r.cells.bytes.textContent = v;
    });
    const active = row.status === 'IN_PROGRESS';
    set('rate', active ? formatRate(row.rate) : '—', (v) => {
      r.cells.rate.textContent = v;
    });
    set('eta', active ? formatDuration(row.eta) : '—', (v) => {
      r.cells.eta.textContent = v;
    });
    set('state', displayState(row), (v) => {
      r.cells.state.textContent = v;
    });
    set('age', formatAge(row.lastMessageAt, now), (v) => {
      r.cells.age.textContent = v;
    });
    set('reason', row.reason ?? '', (v) => {
      r.cells.reason.textContent = v;
      r.cells.reason.title = v;
    });
  }
}
