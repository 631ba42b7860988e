/** The markdown table of a bench run (docs/benchmarks.md keeps it with the machine it ran on). */

import { type Dist, f, fd, mib } from './lib/measure.ts';
import { type FleetFigures, fleetRows } from './sections/fleet.ts';
import { rangesRows } from './sections/ranges.ts';
import { type SoakFigures, soakRows } from './sections/soak.ts';

type Row = [string, string, string, string];
type Rec = Record<string, Dist | number | boolean | string | undefined>;

const d = (r: Rec, k: string): Dist =>
  (r[k] as Dist | undefined) ?? { median: Number.NaN, min: 0, max: 0, n: 0 };

export function table(r: Record<string, unknown>): string {
  const ok = (b: boolean) => (r.quick ? '(quick)' : b ? 'met' : '**missed**');
  const rows: Row[] = [];

  for (const key of ['throughput', 'tls'] as const) {
    const t = r[key] as Rec | undefined;
    if (!t) continue;
    const size = mib(t.size as number);
    const over = t.tls ? ' over HTTPS' : '';
    rows.push(
      [
        `Download ${size}${over}: curl -o`,
        `${fd(d(t, 'curlSec'), 3)} s (${f(t.curlMiBps as number, 0)} MiB/s)`,
        '',
        '',
      ],
      [
        `Download ${size}${over}: agent download phase`,
        `${fd(d(t, 'agentDownloadSec'), 3)} s (${f(t.agentDownloadMiBps as number, 0)} MiB/s)`,
        '',
        '',
      ],
      [
        `Download ${size}${over}: agent whole OTA (start-next → SUCCEEDED)`,
        `${fd(d(t, 'agentOtaSec'), 3)} s`,
        '',
        '',
      ],
      [
        `agent_download / curl${over}`,
        fd(d(t, 'ratioDownload')),
        key === 'throughput' ? '≤ 1.10' : '(info)',
        key === 'throughput' ? ok(d(t, 'ratioDownload').median <= 1.1) : '',
      ],
      [
        `agent_ota / curl${over}`,
        fd(d(t, 'ratioOta')),
        key === 'throughput' ? '≤ 1.25' : '(info)',
        key === 'throughput' ? ok(d(t, 'ratioOta').median <= 1.25) : '',
      ],
      [`agent_download / (curl + sha256sum + sync)${over}`, fd(d(t, 'ratioDownloadVerified')), '(info)', ''],
      [
        `CPU s/GiB${over}: agent (whole process) / curl`,
        `${fd(d(t, 'agentCpuPerGiB'))} / ${fd(d(t, 'curlCpuPerGiB'))}`,
        '',
        '',
      ],
      [`CPU agent / curl${over}, ${size}`, fd(d(t, 'ratioCpu')), '(info; at 1 GiB below)', ''],
    );
  }

  const c = r.clients as Record<string, Record<string, Rec>> | undefined;
  const floor = c?.tlsCipherFloor as { cpuPerGiB?: number } | undefined;
  for (const [transport, byClient] of Object.entries(c ?? {})) {
    if (transport === 'tlsCipherFloor') continue;
    for (const [client, x] of Object.entries(byClient)) {
      rows.push([
        `HTTP client ${client}, ${transport}: transfer CPU s/GiB · MiB/s · load+first-GET CPU · peak RSS`,
        `${fd(d(x, 'cpuPerGiB'))} · ${f(d(x, 'MiBps').median, 0)} · ${f(d(x, 'loadCpuMs').median, 0)} ms · ${f(d(x, 'peakRssMiB').median, 1)} MiB`,
        '(info)',
        '',
      ]);
    }
  }

  if (floor?.cpuPerGiB !== undefined)
    rows.push([
      'TLS floor: AES-256-GCM, 16 KiB records (`openssl speed`), CPU s/GiB',
      f(floor.cpuPerGiB, 3),
      '(info: raw https − raw http ≥ this)',
      '',
    ]);
  const s = r.startup as Rec | undefined;
  if (s) {
    rows.push(
      [
        '`ota agent --once`, empty queue: process start → MQTT connected',
        `${fd(d(s, 'connectedMs'), 0)} ms`,
        '',
        '',
      ],
      [
        '`ota agent --once`, empty queue: process start → start-next answered (connection closed)',
        `${fd(d(s, 'startNextAnsweredMs'), 0)} ms`,
        '≤ 250 ms',
        ok(d(s, 'startNextAnsweredMs').median <= 250),
      ],
      [
        '`ota agent --once`, empty queue: process exit',
        `${fd(d(s, 'onceExitMs'), 0)} ms`,
        '≈ 300 ms',
        ok(d(s, 'onceExitMs').median <= 330),
      ],
      [
        '`ota agent --once`, empty queue: CPU · peak RSS',
        `${fd(d(s, 'onceCpuMs'), 0)} ms · ${fd(d(s, 'oncePeakRssMiB'), 1)} MiB`,
        '',
        '',
      ],
      [
        "`ota agent --once` without the launcher's V8 flags: exit · CPU · peak RSS",
        `${fd(d(s, 'noFlagsExitMs'), 0)} ms · ${fd(d(s, 'noFlagsCpuMs'), 0)} ms · ${fd(d(s, 'noFlagsPeakRssMiB'), 1)} MiB`,
        '(A/B)',
        '',
      ],
      ...(s.baselineExitMs
        ? [
            [
              'BEFORE (`--baseline`) `ota agent --once`: exit · CPU · peak RSS',
              `${fd(d(s, 'baselineExitMs'), 0)} ms · ${fd(d(s, 'baselineCpuMs'), 0)} ms · ${fd(d(s, 'baselinePeakRssMiB'), 1)} MiB`,
              '(before)',
              '',
            ] as Row,
          ]
        : []),
      [
        'bare `node -e 0`: wall · peak RSS',
        `${fd(d(s, 'bareNodeMs'), 0)} ms · ${fd(d(s, 'bareNodePeakRssMiB'), 1)} MiB`,
        '(floor)',
        '',
      ],
    );
  }

  const g = r.gib as Rec | undefined;
  if (g) {
    const size = mib(g.size as number);
    rows.push(
      [`${size}: \`ota agent\` whole OTA (whole process)`, `${fd(d(g, 'agentSec'), 3)} s`, '', ''],
      [
        `${size}: curl -o + sync / curl -o`,
        `${fd(d(g, 'curlSyncSec'), 3)} s / ${fd(d(g, 'curlSec'), 3)} s`,
        '',
        '',
      ],
      [
        `${size}: agent / (curl -o + sync)`,
        fd(d(g, 'ratioCurlSync')),
        '≤ 1.10',
        ok(d(g, 'ratioCurlSync').median <= 1.1),
      ],
      [`${size}: agent / curl -o`, fd(d(g, 'ratioCurl')), '(info)', ''],
    );
    if (g.boto3Sec)
      rows.push(
        [`${size}: boto3 download_file`, `${fd(d(g, 'boto3Sec'), 3)} s`, '', ''],
        [`${size}: agent / boto3 download_file`, fd(d(g, 'ratioBoto3')), '(info)', ''],
      );
    rows.push(
      [
        `${size}: CPU s/GiB agent / curl${g.boto3CpuPerGiB ? ' / boto3' : ''}`,
        `${fd(d(g, 'agentCpuPerGiB'))} / ${fd(d(g, 'curlCpuPerGiB'))}${g.boto3CpuPerGiB ? ` / ${fd(d(g, 'boto3CpuPerGiB'))}` : ''}`,
        '',
        '',
      ],
      [`${size}: CPU agent / curl`, fd(d(g, 'ratioCpu')), '≤ 2', ok(d(g, 'ratioCpu').median <= 2)],
      [
        `${size}: CPU s/GiB curl -o + sync (sync's writeback counted)`,
        fd(d(g, 'curlSyncCpuPerGiB')),
        '(info)',
        '',
      ],
      [
        `Peak RSS \`ota agent\` CLI, ${mib(g.smallSize as number)}`,
        `${fd(d(g, 'smallAgentPeakRssMiB'), 1)} MiB`,
        '≤ 64 MiB',
        ok(d(g, 'smallAgentPeakRssMiB').median <= 64),
      ],
      [
        `Peak RSS \`ota agent\` CLI, ${size}`,
        `${fd(d(g, 'agentPeakRssMiB'), 1)} MiB`,
        '≤ 64 MiB',
        ok(d(g, 'agentPeakRssMiB').median <= 64),
      ],
      ...(g.baselineSec
        ? [
            [
              `BEFORE (\`--baseline\`) ${size}: whole OTA · / (curl + sync) · CPU s/GiB · peak RSS (and at ${mib(g.smallSize as number)})`,
              `${fd(d(g, 'baselineSec'), 3)} s · ${fd(d(g, 'baselineRatioCurlSync'))} · ${fd(d(g, 'baselineCpuPerGiB'))} · ${f(d(g, 'baselinePeakRssMiB').median, 1)} MiB (${f(d(g, 'baselineSmallPeakRssMiB').median, 1)} MiB)`,
              '(before)',
              '',
            ] as Row,
          ]
        : []),
      [
        `Peak RSS curl${g.boto3PeakRssMiB ? ' / boto3' : ''}, ${size}`,
        `${f(d(g, 'curlPeakRssMiB').median, 1)}${g.boto3PeakRssMiB ? ` / ${f(d(g, 'boto3PeakRssMiB').median, 1)}` : ''} MiB`,
        '(info)',
        '',
      ],
    );
  }

  const mem = r.memory as Rec | undefined;
  if (mem) {
    rows.push(
      [
        `Peak RSS agent library child, ${mib(mem.smallSize as number)} / ${mib(mem.largeSize as number)}`,
        `${f(mem.smallPeakMiB as number, 1)} / ${f(mem.largePeakMiB as number, 1)} MiB`,
        '(info)',
        '',
      ],
      ['Peak RSS large / small', f(mem.ratio as number), '≤ 1.10', ok((mem.ratio as number) <= 1.1)],
    );
  }
  const msg = r.messages as
    | Record<string, { size: number; progressMessages: number; jobUpdates: number; downloadSec: number }>
    | undefined;
  for (const v of Object.values(msg ?? {})) {
    const perSec = (v.progressMessages + v.jobUpdates) / v.downloadSec;
    // One per 1 s interval plus the first and the final progress message; one status update per 10 s
    // interval plus the first.
    const bound = Math.ceil(v.downloadSec) + 2 + Math.ceil(v.downloadSec / 10) + 1;
    rows.push([
      `Messages per OTA, ${mib(v.size)}`,
      `${v.progressMessages} progress + ${v.jobUpdates} job updates in ${f(v.downloadSec)} s download (${f(perSec)}/s)`,
      `≤ ${bound} (1/s + first + final)`,
      ok(v.progressMessages + v.jobUpdates <= bound),
    ]);
  }
  rows.push(...rangesRows(r.ranges, r.quick === true));
  rows.push(...fleetRows((r.fleet as FleetFigures[] | undefined) ?? [], r.quick === true));
  if (r.soak) rows.push(...soakRows(r.soak as SoakFigures, r.quick === true));

  const m = r.machine as {
    nproc: number;
    cpu: string;
    node: string;
    curl: string;
    kernel: string;
    loadAvgAtStart: string;
  };
  const head =
    `Machine: ${m.nproc} × ${m.cpu}, Node ${m.node}, ${m.curl.split(' ').slice(0, 2).join(' ')}, Linux ${m.kernel}, ` +
    `load average at start ${m.loadAvgAtStart}${r.quick ? ' — QUICK mode (small sizes; targets not meaningful)' : ''}`;
  const all: Row[] = [
    ['Benchmark', 'Figure (median, min–max)', 'Target', 'Result'],
    ['---', '---', '---', '---'],
    ...rows,
  ];
  return `${head}\n\n${all.map((row) => `| ${row.join(' | ')} |`).join('\n')}`;
}
