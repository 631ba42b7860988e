import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compareVersions } from '../../../../src/device/document/version.ts';
import { ValidationError } from '../../../../src/shared/errors.ts';

describe('compareVersions', () => {
  test('all-digit strings compare as integers of any length', () => {
    assert.equal(compareVersions('41811020', '41811019'), 1);
    assert.equal(compareVersions('41811019', '41811020'), -1);
    assert.equal(compareVersions('9', '10'), -1);
    assert.equal(compareVersions('007', '7'), 0);
    assert.equal(compareVersions('0010', '9'), 1);
    assert.equal(compareVersions('123456789012345678901234567890', '123456789012345678901234567889'), 1);
    assert.equal(compareVersions('0', '0000'), 0);
  });
  test('dotted numerics', () => {
    assert.equal(compareVersions('1.2.10', '1.2.9'), 1);
    assert.equal(compareVersions('1.2', '1.2.0'), 0);
    assert.equal(compareVersions('1.10', '1.9.9'), 1);
    assert.equal(compareVersions('2.0', '10.0'), -1);
  });
  test('semver with prerelease ordering (SemVer 2.0.0 section 11)', () => {
    const ordered = [
      '1.0.0-alpha',
      '1.0.0-alpha.1',
      '1.0.0-alpha.beta',
      '1.0.0-beta',
      '1.0.0-beta.2',
      '1.0.0-beta.11',
      '1.0.0-rc.1',
      '1.0.0',
      '1.0.1',
    ];
    for (let i = 0; i < ordered.length - 1; i++) {
      assert.equal(compareVersions(ordered[i]!, ordered[i + 1]!), -1, `${ordered[i]} < ${ordered[i + 1]}`);
      assert.equal(compareVersions(ordered[i + 1]!, ordered[i]!), 1);
    }
    assert.equal(compareVersions('v1.2.3', '1.2.3'), 0);
    assert.equal(compareVersions('1.2.3+build.5', '1.2.3+build.9'), 0);
  });
  test('unparseable input is a ValidationError', () => {
    for (const bad of ['', 'abc', '1..2', '1.2.', '-1', '1.0.0-', ' ', '1.2.x']) {
      assert.throws(
        () => compareVersions(bad, '1'),
        (e: unknown) => e instanceof ValidationError && e.code === 'OTA_VALIDATION',
        bad,
      );
    }
  });
});
