import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeDeterministicImage } from '../../../src/operator/image.ts';

test('deterministic images: same seed and size give the same bytes; the sha256 returned is the file’s', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ota-image-'));
  try {
    const size = 3 * 1024 * 1024 + 17; // not a multiple of the block size
    const a = await writeDeterministicImage(join(dir, 'a.img'), size);
    const b = await writeDeterministicImage(join(dir, 'b.img'), size);
    const c = await writeDeterministicImage(join(dir, 'c.img'), size, 'other-seed');
    assert.equal(statSync(a.path).size, size);
    assert.equal(a.sha256, b.sha256);
    assert.notEqual(a.sha256, c.sha256);
    assert.equal(createHash('sha256').update(readFileSync(a.path)).digest('hex'), a.sha256);
    // Incompressible like a real image: not a run of one byte.
    assert.ok(new Set(readFileSync(a.path).subarray(0, 4096)).size > 200);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
