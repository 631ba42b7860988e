/** Display formats of the dashboard page (pure; unit-tested in Node). */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

/** 1023 B, 1.5 KiB, 83.2 MiB, 1.02 GiB. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '—';
  let v = n;
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${v} B`;
  return `${v.toFixed(v >= 100 || i < 3 ? 1 : 2)} ${UNITS[i]}`;
}

/** "1.2 / 3.0 MiB" when both are in the same unit, else "812.0 KiB / 3.0 MiB". */
export function formatBytePair(done: number, total: number): string {
  const a = formatBytes(done);
  const b = formatBytes(total);
  const unitA = a.slice(a.lastIndexOf(' '));
  return unitA === b.slice(b.lastIndexOf(' ')) ? `${a.slice(0, -unitA.length)} / ${b}` : `${a} / ${b}`;
}

export function formatRate(bytesPerSecond: number): string {
  return bytesPerSecond > 0 ? `${formatBytes(bytesPerSecond)}/s` : '—';
}

/** 42s, 3m05s, 1h02m, 2d03h; "—" for unknown. */
export function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '—';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

/** Age of a timestamp: "now", "12s", "3m05s" … */
export function formatAge(at: number | undefined, now: number): string {
  if (at === undefined) return '—';
  const sec = Math.max(0, (now - at) / 1000);
  return sec < 1 ? 'now' : formatDuration(sec);
}

export function formatPercent(p: number): string {
  return `${p >= 100 ? '100' : p.toFixed(1)} %`;
}
