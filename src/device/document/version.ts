import { ValidationError } from '../../shared/errors.ts';

/**
 * Firmware version ordering. The original JobProgress.py compared `41811020 > 41811019` as integers; real
 * fleets also use dotted numerics (`1.2.10`) and semver with prereleases (`1.0.0-rc.1`). One parser covers
 * all three: an optional `v`, numeric components separated by dots, an optional `-prerelease` and an
 * optional `+build` (ignored for ordering, SemVer 2.0.0 section 10). Numbers compare by value at any length
 * (no parseInt overflow: leading zeros are stripped and the digit strings compared by length, then
 * lexicographically), so `"9" < "10"` and 20-digit build numbers work.
 */
export interface ParsedVersion {
  readonly core: readonly string[];
  readonly prerelease: readonly string[];
}

const VERSION_RE =
  /^v?(\d+(?:\.\d+)*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/;
const DIGITS = /^\d+$/;

export function parseVersion(input: string, field = 'version'): ParsedVersion {
  const s = typeof input === 'string' ? input.trim() : '';
  const m = VERSION_RE.exec(s);
  if (!m || s.length > 256) {
    throw new ValidationError(field, `not a version: ${JSON.stringify(String(input).slice(0, 80))}`);
  }
  return {
    core: (m[1] ?? '').split('.').map(stripZeros),
    prerelease: m[2] ? m[2].split('.') : [],
  };
}

export function isValidVersion(input: string): boolean {
  try {
    parseVersion(input);
    return true;
  } catch {
    return false;
  }
}

function stripZeros(d: string): string {
  const t = d.replace(/^0+/, '');
  return t === '' ? '0' : t;
}

/** Compares two digit strings without leading zeros by numeric value. */
function compareDigits(a: string, b: string): number {
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** SemVer 2.0.0 section 11: numeric identifiers < alphanumeric; a shorter set of equal prefix is lower. */
function comparePrerelease(a: readonly string[], b: readonly string[]): number {
  if (a.length === 0 && b.length === 0) return 0;
  if (a.length === 0) return 1; // a release is higher than any of its prereleases
  if (b.length === 0) return -1;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i] as string;
    const y = b[i] as string;
    const xn = DIGITS.test(x);
    const yn = DIGITS.test(y);
    let c: number;
    if (xn && yn) c = compareDigits(stripZeros(x), stripZeros(y));
    else if (xn) c = -1;
    else if (yn) c = 1;
    else c = x < y ? -1 : x > y ? 1 : 0;
    if (c !== 0) return c;
  }
  return Math.sign(a.length - b.length);
}

/**
 * Returns -1, 0 or 1. Missing trailing components count as 0 (`1.2` == `1.2.0`). Throws ValidationError
 * (field `version`) for an unparseable input.
 */
export function compareVersions(a: string, b: string): -1 | 0 | 1 {
  const pa = parseVersion(a, 'version');
  const pb = parseVersion(b, 'version');
  const n = Math.max(pa.core.length, pb.core.length);
  for (let i = 0; i < n; i++) {
    const c = compareDigits(pa.core[i] ?? '0', pb.core[i] ?? '0');
    if (c !== 0) return c as -1 | 1;
  }
  return Math.sign(comparePrerelease(pa.prerelease, pb.prerelease)) as -1 | 0 | 1;
}
