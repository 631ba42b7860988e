/**
 * What `ota sim` shows: the live tally while it runs, and the summary at the end. Elapsed times are the
 * wall time a person watching sees.
 */
import cliProgress from 'cli-progress';
import type { FleetEvent, FleetPhase, FleetSummary, FleetTally } from '../sim/fleet.ts';
import { configFlagsText } from './job-config-flags.ts';
import { formatBytes } from './progress-view.ts';

const sec = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

function tallyLine(t: FleetTally): string {
  const parts = [`${t.succeeded}/${t.total} succeeded`, `${t.inProgress} in progress`, `${t.queued} queued`];
  for (const [n, label] of [
    [t.failed, 'failed'],
    [t.rejected, 'rejected'],
    [t.timedOut, 'timed out'],
    [t.canceled, 'canceled'],
    [t.total - t.notified, 'not notified'],
  ] as const)
    if (n > 0) parts.push(`${n} ${label}`);
  return parts.join(', ');
}

/** The live summary bar: succeeded of all, and the other counts (a line every 2 s when not on a terminal). */
export class TallyView {
  private bar?: cliProgress.SingleBar;
  private lastLine = 0;
  private startedAt = 0;
  constructor(private readonly out: NodeJS.WriteStream) {}

  event(e: FleetEvent): void {
    if (e.type === 'phase') {
      this.phase(e.phase, e.detail);
      return;
    }
    if (e.type === 'setup-progress') {
      if (!this.out.isTTY && e.done !== e.total) return;
      this.out.write(`ota sim: ${e.phase} ${e.done}/${e.total}${this.out.isTTY ? '\r' : '\n'}`);
      if (this.out.isTTY && e.done === e.total) this.out.write('\n');
      return;
    }
    if (e.type === 'device-failed') {
      if (!this.bar)
        this.out.write(`ota sim: ${e.thingName} ${e.status}${e.reason ? `: ${e.reason}` : ''}\n`);
      return;
    }
    if (e.type === 'aborted') {
      this.stop();
      this.out.write(`ota sim: the job was ABORTED after ${sec(e.afterMs)}: ${e.reason}\n`);
      return;
    }
    this.tally(e.tally);
  }

  private phase(phase: FleetPhase, detail?: string): void {
    if (phase === 'run') {
      this.startedAt = Date.now();
      if (this.out.isTTY) {
        this.bar = new cliProgress.SingleBar(
          {
            stream: this.out,
            format: ' fleet |{bar}| {value}/{total} succeeded  {rest}  {elapsed}s',
            barsize: 30,
            hideCursor: true,
            fps: 5,
          },
          cliProgress.Presets.shades_classic,
        );
      }
      return;
    }
    if (phase === 'cleanup') this.stop();
    this.out.write(`ota sim: ${phase}${detail ? `: ${detail}` : ''}\n`);
  }

  private tally(t: FleetTally): void {
    if (this.bar) {
      const rest = tallyLine(t).split(', ').slice(1).join('  ');
      const elapsed = ((Date.now() - this.startedAt) / 1000).toFixed(0);
      if (!this.bar.isActive) this.bar.start(t.total, t.succeeded, { rest, elapsed });
      this.bar.update(t.succeeded, { rest, elapsed });
      return;
    }
    const now = Date.now();
    if (now - this.lastLine < 2000) return;
    this.lastLine = now;
    this.out.write(`ota sim: ${tallyLine(t)}\n`);
  }

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}

function outcomeLine(s: FleetSummary): string {
  const o = s.outcomes;
  const parts = [`${o.succeeded}/${s.devices} SUCCEEDED`];
  for (const [n, label] of [
    [o.failed, 'FAILED'],
    [o.rejected, 'REJECTED'],
    [o.timedOut, 'TIMED_OUT'],
    [o.canceled, 'CANCELED'],
    [o.queued, 'still QUEUED'],
    [o.inProgress, 'still IN_PROGRESS'],
    [o.neverNotified, 'never notified'],
  ] as const)
    if (n > 0) parts.push(`${n} ${label}`);
  return parts.join(', ');
}

function rolesLine(s: FleetSummary): string {
  const r = s.roles;
  const faults = (['fail', 'reject', 'timeout', 'offline'] as const).filter((k) => r[k] > 0);
  if (faults.length === 0) return 'none';
  return `${faults.map((k) => `${k} ${r[k]}`).join(', ')} (seed ${s.seed}); ok ${r.ok}`;
}

export function formatFleetSummary(s: FleetSummary): string {
  const flags = configFlagsText(s.jobConfig);
  const lines = [
    `ota sim: ${outcomeLine(s)}  (job ${s.jobId}, group ${s.groupName}, ${s.target})`,
    `  faults              ${rolesLine(s)}`,
    `  job                 ${flags || 'no rollout, abort, retry or timeout configuration'}; ended ${s.jobStatus}` +
      (s.canceledAtEnd ? ' (the sim cancelled it at the end: executions were left for offline devices)' : ''),
  ];
  const a = s.abort;
  if (a) {
    const c = a.countsAtAbort;
    lines.push(
      `  ABORTED             after ${sec(a.afterMs)}: ${a.reason}`,
      `  counts then         ${c.notified} notified (no more after the abort), ${c.succeeded} succeeded, ` +
        `${c.failed} failed, ${c.rejected} rejected, ${c.timedOut} timed out, ${c.inProgress} in progress, ${c.queued} queued`,
      `  spared              ${a.spared.total} devices: ${a.spared.neverNotified} never notified, ` +
        `${a.spared.canceledWhileQueued} cancelled while queued`,
    );
  }
  lines.push(
    `  image               ${formatBytes(s.imageSize)}  sha256 ${s.sha256.slice(0, 16)}…`,
    `  job → all done      ${sec(s.durationMs)}   (${s.devicesPerMinute} devices/min)`,
    `  download per device median ${s.downloadSeconds.median} s, max ${s.downloadSeconds.max} s`,
    `  MQTT                ${s.mqtt.devicePublishes} device publishes (${s.mqtt.devicePublishesPerSec}/s); ` +
      `${s.mqtt.progressMessages} progress, ${s.mqtt.jobUpdates} job status updates` +
      (s.mqtt.brokerPublishes !== undefined
        ? `; broker in+out ${s.mqtt.brokerPublishes} (${s.mqtt.brokerPublishesPerSec}/s)`
        : ''),
    s.stack
      ? `  stack process       pid ${s.stack.pid} (${s.stack.where === 'shared' ? 'shared with the agents' : 'separate'}): ` +
          `peak RSS ${s.stack.peakRssMiB} MiB, CPU ${s.stack.cpuSeconds} s (${s.stack.cpuPercent}% of a core)`
      : '  stack process       (not measurable here)',
    `  sim process         peak RSS ${s.simProcess.peakRssMiB} MiB, CPU ${s.simProcess.cpuSeconds} s during the run`,
    `  setup               things ${(s.setupMs.things / 1000).toFixed(1)} s (${s.certificates.issued} certs issued, ` +
      `${s.certificates.reused} reused), connect ${(s.setupMs.connect / 1000).toFixed(1)} s`,
    `  scratch dir         ${s.scratchRemoved ? 'removed' : 'NOT removed'}`,
    `  unexpected          ${s.unexpected === 0 ? 'none: every device ended as its role says' : `${s.unexpected} devices`}`,
  );
  for (const f of s.failures.slice(0, 10)) {
    lines.push(`    ${f.thingName} (${f.role}) ${f.status}${f.reason ? `: ${f.reason}` : ''}`);
  }
  if (s.failures.length > 10) lines.push(`    … and ${s.failures.length - 10} more`);
  return `${lines.join('\n')}\n`;
}
