/**
 * The page's copy of the selected job: its rows (from the `snapshot` event, then `rows` batches), the
 * order they are shown in, and the filters. Sorting is by device name and happens only when devices are
 * added; a filter is one pass over that sorted list.
 */
import { type DeviceRow, decodeRow, type WireRow } from '../../src/dashboard/model.ts';

const collator = new Intl.Collator(undefined, { numeric: true });

export class RowStore {
  readonly rows = new Map<string, DeviceRow>();
  private sorted: string[] = [];
  private visible: string[] = [];
  private sortDirty = false;
  private filterDirty = false;
  private status: string | undefined;
  private text = '';
  /** Bumped on every change, so views redraw only when something changed. */
  version = 0;

  replace(rows: WireRow[]): void {
    this.rows.clear();
    for (const w of rows) this.rows.set(w[0], decodeRow(w));
    this.sortDirty = true;
    this.version++;
  }

  apply(rows: WireRow[]): void {
    for (const w of rows) {
      const next = decodeRow(w);
      const prev = this.rows.get(next.thing);
      if (!prev) this.sortDirty = true;
      else if (this.status !== undefined && prev.status !== next.status) this.filterDirty = true;
      this.rows.set(next.thing, next);
    }
    if (rows.length > 0) this.version++;
  }

  setFilter(status: string | undefined, text: string): void {
    this.status = status;
    this.text = text.trim().toLowerCase();
    this.filterDirty = true;
    this.version++;
  }

  get statusFilter(): string | undefined {
    return this.status;
  }

  /** The things to show, in order. */
  order(): string[] {
    if (this.sortDirty) {
      this.sorted = [...this.rows.keys()].sort(collator.compare);
      this.sortDirty = false;
      this.filterDirty = true;
    }
    if (this.filterDirty) {
      const { status, text } = this;
      this.visible =
        status === undefined && text === ''
          ? this.sorted
          : this.sorted.filter((t) => {
              if (text !== '' && !t.toLowerCase().includes(text)) return false;
              return status === undefined || this.rows.get(t)?.status === status;
            });
      this.filterDirty = false;
    }
    return this.visible;
  }
}
