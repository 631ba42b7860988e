// One device agent for the benchmarks: the compiled agent library (dist/, what `ota agent` runs, without
// the CLI's other commands loaded), configured exactly like `ota agent --local <dir> -n <thing> --once`.
// It prints one JSON line: the agent's summary plus the timestamps the benchmarks need. Plain JS so it
// runs without the TypeScript loader, whose own memory would be counted in the agent's peak RSS.
import { readFileSync } from 'node:fs';
import { resolveAgentConfig, startAgent } from '../dist/device/index.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const args = JSON.parse(process.argv[2] ?? '{}');
const config = resolveAgentConfig({
  flags: {
    local: args.local,
    thingName: args.thingName,
    downloadDir: args.downloadDir,
    currentVersion: '1',
    once: true,
    logLevel: 'silent',
    // Extra agent options of a benchmark (the ranges section: s3Endpoint through the link, connections, maxRate).
    ...args.flags,
  },
  env: {},
});

// Whole OTA: start-next accepted (with our execution) → SUCCEEDED accepted (report step done).
let lastStartNextEnd = 0;
let otaStart = 0;
let otaEnd = 0;
let startNextMs = 0;
// Where the whole OTA's time goes (informational): each step's duration, and the gaps between steps.
const steps = {};
let lastMark = 0;
const agent = startAgent({
  config,
  onEvent: (e) => {
    if (e.type === 'step-end' && e.step === 'start-next' && !e.error) {
      lastStartNextEnd = performance.now();
      if (otaStart === 0) startNextMs = e.ms;
    }
    if (e.jobId === args.jobId && (e.type === 'step-start' || e.type === 'step-end')) {
      const now = performance.now();
      if (e.type === 'step-start') {
        const gap = now - (lastMark || lastStartNextEnd);
        steps.gaps = (steps.gaps ?? 0) + gap;
      } else steps[e.step] = e.ms;
      lastMark = now;
    }
    if (e.type === 'step-start' && e.jobId === args.jobId && otaStart === 0) otaStart = lastStartNextEnd;
    if (e.type === 'step-end' && e.step === 'report' && e.jobId === args.jobId && !e.error) {
      otaEnd = performance.now();
    }
  },
});
const summary = await agent.done;
const status = readFileSync('/proc/self/status', 'utf8');
const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(status);
const usage = process.resourceUsage();
process.stdout.write(
  `${JSON.stringify({
    summary,
    otaSeconds: otaEnd > 0 && otaStart > 0 ? (otaEnd - otaStart) / 1000 : null,
    steps: { 'start-next (not in the OTA time)': startNextMs, ...steps },
    vmHWMKiB: hwm ? Number(hwm[1]) : null,
    maxRssKiB: usage.maxRSS,
    userSec: usage.userCPUTime / 1e6,
    sysSec: usage.systemCPUTime / 1e6,
  })}\n`,
);
