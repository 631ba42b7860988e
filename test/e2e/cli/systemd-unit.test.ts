import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { resolveAgentConfig } from '../../../src/device/index.ts';

/** packaging/systemd: the agent as a service (docs/install.md). */
const ROOT = resolve(import.meta.dirname, '../../..');
const UNIT = join(ROOT, 'packaging', 'systemd', 'ota-agent.service');
const EXAMPLE = join(ROOT, 'packaging', 'systemd', 'agent.example.json');
const unitText = readFileSync(UNIT, 'utf8');

/** `Key=value` lines of the unit (a key may repeat). */
function directives(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m?.[1]) out.set(m[1], [...(out.get(m[1]) ?? []), m[2] ?? '']);
  }
  return out;
}

const hasAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;

// In CI a missing systemd-analyze is a failure, not a skip (.ci/run installs systemd).
test('systemd-analyze verify accepts the unit, with no warning', {
  skip: !hasAnalyze && !process.env.CI && 'systemd-analyze is not installed (apt-get install systemd)',
}, () => {
  assert.ok(hasAnalyze, 'systemd-analyze is not installed: apt-get install -y systemd');
  const dir = mkdtempSync(join(tmpdir(), 'ota-unit-'));
  try {
    // verify checks that ExecStart exists: point it at this checkout's `ota`.
    const unit = join(dir, 'ota-agent.service');
    writeFileSync(unit, unitText.replace('/usr/local/bin/ota', join(ROOT, 'bin', 'ota.js')));
    const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    // Unknown or misspelt keys are only warnings (exit 0): there must be none.
    assert.equal(r.stderr.trim(), '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the unit restarts on failure, reads /etc/ota, writes only /var/lib/ota, and is hardened', () => {
  const d = directives(unitText);
  const one = (k: string) => d.get(k)?.at(-1);
  assert.equal(one('Restart'), 'on-failure');
  assert.equal(one('ExecStart'), '/usr/local/bin/ota agent --config /etc/ota/agent.json');
  assert.equal(one('StateDirectory'), 'ota');
  assert.equal(one('WorkingDirectory'), '/var/lib/ota');
  assert.equal(one('RestartPreventExitStatus'), '2');
  for (const [k, v] of [
    ['ProtectSystem', 'strict'],
    ['ProtectHome', 'yes'],
    ['PrivateTmp', 'yes'],
    ['NoNewPrivileges', 'yes'],
    ['PrivateDevices', 'yes'],
    ['RestrictSUIDSGID', 'yes'],
    ['CapabilityBoundingSet', ''],
  ]) {
    assert.equal(one(k as string), v, k);
  }
  // V8 needs writable+executable memory: this would kill node at start-up.
  assert.equal(d.has('MemoryDenyWriteExecute'), false);
  assert.equal(d.has('User'), true);
});

test('the example config is a valid agent config with its state under /var/lib/ota', () => {
  const config = resolveAgentConfig({ flags: { config: EXAMPLE }, env: {} });
  assert.equal(config.thingName, '861234567890123');
  assert.ok(config.downloadDir.startsWith('/var/lib/ota/'));
  assert.ok(config.stateDir.startsWith('/var/lib/ota/'));
  assert.ok(config.cert.startsWith('/etc/ota/'));
});
