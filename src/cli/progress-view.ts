import cliProgress from 'cli-progress';
import type { DeviceProgress } from '../operator/watch.ts';

export function formatBytes(n: number): string {
  const [v, unit] = scaled(n);
  return unit === 'B' ? `${n} B` : `${v} ${unit}`;
}

function scaled(n: number): [string, string] {
  if (n >= 1024 ** 3) return [(n / 1024 ** 3).toFixed(2), 'GiB'];
  if (n >= 1024 ** 2) return [(n / 1024 ** 2).toFixed(1), 'MiB'];
  if (n >= 1024) return [(n / 1024).toFixed(1), 'KiB'];
  return [String(n), 'B'];
}

/** `83.2/83.2 MiB` when both have the same unit, else `512.0 KiB/83.2 MiB`: the terminal line is short. */
export function formatBytePair(done: number, total: number): string {
  const [d, du] = scaled(done);
  const [t, tu] = scaled(total);
  return du === tu ? `${d}/${t} ${tu}` : `${formatBytes(done)}/${formatBytes(total)}`;
}

export function formatEta(sec: number | null | undefined): string {
  if (sec === undefined || sec === null || !Number.isFinite(sec)) return '--';
  const s = Math.max(0, Math.round(sec));
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

/** The text of one device's line, without the bar. */
export interface DeviceFields {
  device: string;
  pct: string;
  bytes: string;
  rate: string;
  eta: string;
  state: string;
}

export function deviceFields(d: DeviceProgress): DeviceFields {
  return {
    device: d.device,
    pct: `${d.percent.toFixed(2).padStart(6)}%`,
    bytes: formatBytePair(d.bytes, d.total),
    rate: `${formatBytes(d.bytesPerSecond)}/s`,
    eta: `ETA ${formatEta(d.etaSeconds)}`,
    state: d.state,
  };
}

const BAR_MAX = 30;
const BAR_MIN = 6;
const DEVICE_MAX = 24;

/**
 * One device's line for a terminal `width` columns wide. What matters most stays: the state, the rate,
 * the ETA and the percentage; the bar takes what is left (up to 30), then goes; then the byte counts go;
 * then the device name is shortened. One column is kept free, because writing the last column makes
 * many terminals wrap. `deviceWidth` aligns the names of several devices.
 */
export function fitLine(f: DeviceFields, fraction: number, width: number, deviceWidth = 0): string {
  const room = Math.max(1, width - 1);
  const name = (w: number) => {
    const cut = f.device.length > w ? `${f.device.slice(0, Math.max(1, w - 1))}…` : f.device;
    return cut.padEnd(w);
  };
  const nameWidth = Math.min(DEVICE_MAX, Math.max(deviceWidth, f.device.length));
  const tail = [f.pct, f.bytes, f.rate, f.eta, f.state].join(' ');
  const short = [f.pct, f.rate, f.eta, f.state].join(' ');
  const withBar = (rest: string) => {
    const size = Math.min(BAR_MAX, room - nameWidth - rest.length - 4); // 2 spaces, 2 `|`
    return size >= BAR_MIN ? `${name(nameWidth)} ${bar(fraction, size)} ${rest}` : undefined;
  };
  const fits = (rest: string) =>
    nameWidth + 1 + rest.length <= room ? `${name(nameWidth)} ${rest}` : undefined;
  const line = withBar(tail) ?? fits(tail) ?? withBar(short) ?? fits(short);
  if (line) return line;
  // Too narrow even for the name: shorten it and keep the rest.
  return `${name(Math.max(4, room - 1 - short.length))} ${short}`.slice(0, room);
}

function bar(fraction: number, size: number): string {
  const full = Math.round(Math.min(1, Math.max(0, fraction)) * size);
  return `|${'\u2588'.repeat(full)}${'\u2591'.repeat(size - full)}|`;
}

/** The line off a terminal (pipes, CI logs): every field, no bar, no width limit. */
export function plainLine(f: DeviceFields): string {
  return `${f.device.padEnd(16)} ${f.pct} ${f.bytes} ${f.rate} ${f.eta} ${f.state}`;
}

interface BarPayload {
  fields: DeviceFields;
  fraction: number;
}

/**
 * One live bar per device (cli-progress) on a terminal; on a pipe or in CI, one line per device at each
 * 10 % step and on every state change, so logs stay short.
 *
 * The line is drawn by our own format function, not by cli-progress's template: its template fills
 * `{eta}` from cli-progress's own estimate (of its update calls, not of the device's download), which
 * printed `ETA NULL`, `ETA INF` or a bare `ETA 14` in place of the agent's ETA; and it knew nothing of
 * the width, so an 80-column terminal cut the line before the rate and the state.
 */
export class FleetProgressView {
  private readonly multibar?: cliProgress.MultiBar;
  private readonly bars = new Map<string, cliProgress.SingleBar>();
  private readonly lastLine = new Map<string, string>();
  private deviceWidth = 0;

  constructor(private readonly out: NodeJS.WriteStream = process.stdout) {
    if (out.isTTY) {
      this.multibar = new cliProgress.MultiBar({
        stream: out,
        // params.maxWidth is the stream's current `columns` (80 when unknown), read at every redraw,
        // so a resized terminal gets lines of its new width.
        format: (_options, params, payload: BarPayload) =>
          fitLine(payload.fields, payload.fraction, params.maxWidth, this.deviceWidth),
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: false,
        fps: 10,
        // log() lines (the agent's sections) keep their full width.
        linewrap: true,
      });
    }
  }

  update(d: DeviceProgress): void {
    const fields = deviceFields(d);
    if (this.multibar) {
      this.deviceWidth = Math.max(this.deviceWidth, Math.min(DEVICE_MAX, d.device.length));
      const payload: BarPayload = { fields, fraction: d.total > 0 ? d.bytes / d.total : 0 };
      const total = Math.max(1, d.total);
      let b = this.bars.get(d.device);
      if (!b) {
        b = this.multibar.create(total, d.bytes, payload);
        this.bars.set(d.device, b);
      }
      b.setTotal(total);
      b.update(d.bytes, payload);
      return;
    }
    const step = `${Math.floor(d.percent / 10)}:${d.state}`;
    if (this.lastLine.get(d.device) === step) return;
    this.lastLine.set(d.device, step);
    this.out.write(`${plainLine(fields)}\n`);
  }

  /** Prints text above the bars (or plainly, off a terminal). */
  log(text: string): void {
    const t = text.endsWith('\n') ? text : `${text}\n`;
    if (this.multibar) this.multibar.log(t);
    else this.out.write(t);
  }

  stop(): void {
    this.multibar?.stop();
  }
}
