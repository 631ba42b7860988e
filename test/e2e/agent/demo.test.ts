import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ota } from '../cli/helpers.ts';

/** `ota demo` shows install → reboot → self-test → commit with the A/B slots, or a rollback. */
describe('ota demo: A/B install, reboot, self-test', () => {
  const demo = async (extra: string[]) => {
    const dir = mkdtempSync(join(tmpdir(), 'ota-demo-ab-'));
    try {
      return await ota(
        ['demo', '--data-dir', dir, '--size', String(2 * 1024 * 1024), '--rate', '0', ...extra],
        {
          timeoutMs: 120_000,
        },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  test('--scenario rollback: the self-test fails after the reboot and slot a comes back', async () => {
    const r = await demo(['--scenario', 'rollback']);
    assert.equal(r.code, 0, `${r.stderr}\n${r.stdout}`);
    // the A/B cycle up to the self-test, in order (the commit path is `npm start`'s, tested in cli.test.ts)
    const order = [
      /install…/,
      /reboot: 41811020 is in the inactive slot; restarting/,
      /the device reboots into slot b/,
      /health…/,
      /rollback…/,
      /"status": "FAILED"/,
    ];
    let at = 0;
    for (const re of order) {
      const m = re.exec(r.stdout.slice(at));
      assert.ok(m, `missing after offset ${at}: ${re}\n${r.stdout}`);
      at += m.index + m[0].length;
    }
    assert.match(r.stdout, /"status": "FAILED"/);
    assert.match(
      r.stdout,
      /"reason": "rolled back to 41811019: self-test failed: the camera service did not come up on slot b/,
    );
    assert.match(r.stdout, /installed version now 41811019; slot a runs, slot a is committed/);
  });
});
