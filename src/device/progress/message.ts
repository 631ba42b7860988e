/**
 * The progress message of the original JobProgress.py (docs/original.md), byte for byte:
 *
 *   {"camera_id": "RaspberryPi_2", "OTA_start_time": "2018-10-25 17:35:24", "Download time": "0 hour 3 min
 *   52 second", "Firmware version": "CV150-C3_0.6.6", "Firmware filename": "cv150_ubifs.img", "Progress":
 *   "84.37 %", "Total size": 87232512, "Downloading": 73601024}
 *
 * Dashboards built for the original parse these keys and formats, so the key order, the separators of
 * Python's json.dumps (", " and ": ") and the number formats are part of the contract. Extra fields (job
 * id, state, rate, ETA) are appended after them so a consumer reading the original keys is unaffected.
 */
import type { Clock } from '../../shared/clock.ts';

export interface ProgressFields {
  cameraId: string;
  /** Epoch ms when the OTA started. */
  startedAt: number;
  /** Epoch ms now (for "Download time"). */
  now: number;
  /** IANA zone; undefined = the system's local time. */
  timeZone?: string;
  firmwareVersion: string;
  firmwareFilename: string;
  totalSize: number;
  downloaded: number;
  /** Appended after the original keys, in insertion order. */
  extra?: Record<string, string | number | boolean | null>;
}

/**
 * "YYYY-MM-DD HH:MM:SS" in the given IANA zone (the original used America/Chicago), or in the system's
 * local time (TZ / /etc/localtime) without one: Date's local getters, so the default path never loads
 * ICU's time-zone data (~7 MiB of RSS).
 */
export function formatStartTime(epochMs: number, timeZone?: string): string {
  if (timeZone === undefined) {
    const d = new Date(epochMs);
    const p2 = (n: number) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p2(d.getMonth() + 1)}-${p2(d.getDate())} ${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}`;
  }
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(new Date(epochMs));
  const get = (t: Intl.DateTimeFormatPartTypes) => parts.find((p) => p.type === t)?.value ?? '00';
  return `${get('year')}-${get('month')}-${get('day')} ${get('hour')}:${get('minute')}:${get('second')}`;
}

/** Whether `tz` is a zone Intl knows. */
export function isValidTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** "H hour M min S second" of the elapsed whole seconds, as the original printed it. */
export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return `${h} hour ${m} min ${s} second`;
}

/**
 * Python's `str(round(x, 2))` for 0 <= x <= 100: `84.37`, `100.0`, `0.0`, `50.5`. Python's round() rounds
 * the exact binary value half-to-even; Number#toFixed rounds the exact value half-up, so the two differ only
 * on exact binary ties (e.g. 0.125), which are detected from the exact decimal expansion.
 */
export function pythonRound2(x: number): number {
  if (!Number.isFinite(x)) return x;
  const exact = Math.abs(x).toFixed(100);
  const dot = exact.indexOf('.');
  const tail = exact.slice(dot + 3);
  let r = Number(x.toFixed(2));
  if (tail[0] === '5' && /^50*$/.test(tail)) {
    // exact tie: toFixed picked the larger magnitude; Python picks the even last digit
    const lastDigit = Number(exact[dot + 2]);
    if (lastDigit % 2 === 0) r = Number((Math.sign(x) * Number(exact.slice(0, dot + 3))).toFixed(2));
  }
  return r;
}

/** Python's str() of a float: always shows a fractional part. */
export function pythonFloatStr(x: number): string {
  if (Number.isInteger(x)) return `${x}.0`;
  return String(x);
}

/** "84.37 %" — `str(round(done / total * 100, 2)) + " %"`. */
export function formatPercent(done: number, total: number): string {
  const pct = total > 0 ? (done / total) * 100 : 0;
  return `${pythonFloatStr(pythonRound2(pct))} %`;
}

/**
 * json.dumps with its defaults (separators ", " and ": ", ensure_ascii=True). Only the value kinds the
 * progress message uses: strings, finite numbers (integers print as integers), booleans, null, plain
 * objects and arrays.
 */
export function pythonJsonDumps(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return 'null';
    return String(value);
  }
  if (typeof value === 'string') {
    // JSON.stringify escapes control characters and quotes like Python; ensure_ascii additionally escapes
    // every non-ASCII UTF-16 unit as \uXXXX.
    return JSON.stringify(value).replace(
      /[\u007f-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
  }
  if (Array.isArray(value)) return `[${value.map(pythonJsonDumps).join(', ')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    return `{${entries.map(([k, v]) => `${pythonJsonDumps(k)}: ${pythonJsonDumps(v)}`).join(', ')}}`;
  }
  return 'null';
}

/** The original's eight keys, in the original's order. */
export const ORIGINAL_PROGRESS_KEYS = [
  'camera_id',
  'OTA_start_time',
  'Download time',
  'Firmware version',
  'Firmware filename',
  'Progress',
  'Total size',
  'Downloading',
] as const;

export function buildProgressMessage(f: ProgressFields): Record<string, string | number | boolean | null> {
  const msg: Record<string, string | number | boolean | null> = {
    camera_id: f.cameraId,
    OTA_start_time: formatStartTime(f.startedAt, f.timeZone),
    'Download time': formatDuration(f.now - f.startedAt),
    'Firmware version': f.firmwareVersion,
    'Firmware filename': f.firmwareFilename,
    Progress: formatPercent(f.downloaded, f.totalSize),
    'Total size': f.totalSize,
    Downloading: f.downloaded,
  };
  if (f.extra) {
    for (const [k, v] of Object.entries(f.extra)) {
      if (!(k in msg)) msg[k] = v;
    }
  }
  return msg;
}

export function serializeProgress(f: ProgressFields): string {
  return pythonJsonDumps(buildProgressMessage(f));
}

/**
 * Decides when to publish. The download calls `update()` once per chunk, so it must stay cheap: a clock
 * read and two comparisons, no allocation; only an emitted message allocates. Policy: the first message
 * at start (0 %, or the resumed offset), then at most one per `intervalMs` and only when the byte count
 * changed, and always a final one at completion.
 */
export class ProgressThrottle {
  private lastSentAt = Number.NEGATIVE_INFINITY;
  private lastSentBytes = -1;
  private started = false;
  private finished = false;

  constructor(
    private readonly intervalMs: number,
    private readonly clock: Pick<Clock, 'now'>,
    private readonly emit: (done: number, total: number, final: boolean) => void,
  ) {}

  start(done: number, total: number): void {
    if (this.started) return;
    this.started = true;
    this.send(done, total, false);
  }

  update(done: number, total: number): void {
    if (this.finished) return;
    if (!this.started) {
      this.start(done, total);
      return;
    }
    if (done === this.lastSentBytes) return;
    if (done >= total) return; // the final message comes from finish()
    const now = this.clock.now();
    if (now - this.lastSentAt < this.intervalMs) return;
    this.send(done, total, false, now);
  }

  /** Emits the final message (100.0 % on success) exactly once. */
  finish(done: number, total: number): void {
    if (this.finished) return;
    this.finished = true;
    this.started = true;
    this.send(done, total, true);
  }

  get messagesEmitted(): number {
    return this.count;
  }

  private count = 0;

  private send(done: number, total: number, final: boolean, now = this.clock.now()): void {
    this.lastSentAt = now;
    this.lastSentBytes = done;
    this.count++;
    this.emit(done, total, final);
  }
}

const STATUS_KEY = /^[a-zA-Z0-9:_-]{1,128}$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: statusDetails values must not contain them
const CONTROL = /[\u0000-\u001f\u007f]/g;

/**
 * AWS limits on statusDetails (docs/protocol.md, Documents and statusDetails): keys 1–128 of
 * `[a-zA-Z0-9:_-]`, values 1–1024 characters without control characters, at most 10 entries. Invalid keys and
 * empty values are dropped, long values truncated (keeping the end, where an error's cause usually is).
 */
export function sanitizeStatusDetails(input: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  let n = 0;
  for (const [k, raw] of Object.entries(input)) {
    if (n >= 10) break;
    if (!STATUS_KEY.test(k) || raw === undefined || raw === null) continue;
    let v = String(raw).replace(CONTROL, ' ');
    if (v.length === 0) continue;
    if (v.length > 1024) v = `…${v.slice(v.length - 1023)}`;
    out[k] = v;
    n++;
  }
  return out;
}
