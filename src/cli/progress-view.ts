import cliProgress from 'cli-progress';
import type { DeviceProgress } from '../operator/watch.ts';

export function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(2)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

function formatEta(sec: number | undefined): string {
  if (sec === undefined || !Number.isFinite(sec)) return '--';
  const s = Math.max(0, Math.round(sec));
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

/**
 * One live bar per device (cli-progress) on a terminal; on a pipe or in CI, one line per device at each
 * 10 % step and on every state change, so logs stay short.
 */
export class FleetProgressView {
  private readonly multibar?: cliProgress.MultiBar;
  private readonly bars = new Map<string, cliProgress.SingleBar>();
  private readonly lastLine = new Map<string, string>();

  constructor(private readonly out: NodeJS.WriteStream = process.stdout) {
    if (out.isTTY) {
      this.multibar = new cliProgress.MultiBar(
        {
          stream: out,
          format: ' {device} |{bar}| {pct}% {done}/{size} {rate}/s ETA {eta} {state}',
          barsize: 30,
          hideCursor: true,
          clearOnComplete: false,
          stopOnComplete: false,
          fps: 10,
          // log() lines (the agent's sections) keep their full width.
          linewrap: true,
        },
        cliProgress.Presets.shades_classic,
      );
    }
  }

  update(d: DeviceProgress): void {
    const payload = {
      device: d.device.padEnd(16).slice(0, 24),
      pct: d.percent.toFixed(2).padStart(6),
      done: formatBytes(d.bytes),
      size: formatBytes(d.total),
      rate: formatBytes(d.bytesPerSecond),
      eta: formatEta(d.etaSeconds),
      state: d.state,
    };
    if (this.multibar) {
      const total = Math.max(1, d.total);
      let bar = this.bars.get(d.device);
      if (!bar) {
        bar = this.multibar.create(total, d.bytes, payload);
        this.bars.set(d.device, bar);
      }
      bar.setTotal(total);
      bar.update(d.bytes, payload);
      return;
    }
    const step = `${Math.floor(d.percent / 10)}:${d.state}`;
    if (this.lastLine.get(d.device) === step) return;
    this.lastLine.set(d.device, step);
    this.out.write(
      `${payload.device} ${payload.pct}% ${payload.done}/${payload.size} ${payload.rate}/s ETA ${payload.eta} ${payload.state}\n`,
    );
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
