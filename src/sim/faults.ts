/**
 * Which simulated device misbehaves, and how. Each fault is real device behaviour through the agent
 * (device.ts), never a status published on the device's behalf:
 *
 * - `fail`: the install hook throws, so the agent reports FAILED;
 * - `reject`: the device already runs the job's version, so the agent's own check-version step rejects;
 * - `timeout`: the device takes the job, downloads, then hangs in install and never reports; the service
 *   times the execution out (timeoutConfig);
 * - `offline`: the device never connects (its agent is never started).
 *
 * A rate is a fraction 0–1 of the fleet: exactly round(rate × devices) devices get that fault, and which
 * ones is drawn from `seed`, so the same seed gives the same devices the same faults on every run.
 */
import { ValidationError } from '../shared/errors.ts';

export type DeviceRole = 'ok' | 'fail' | 'reject' | 'timeout' | 'offline';

export interface FaultRates {
  fail?: number;
  reject?: number;
  timeout?: number;
  offline?: number;
}

const FAULTS = ['fail', 'reject', 'timeout', 'offline'] as const;

/** Refuses a rate outside 0–1, or rates that add up to more than the whole fleet. */
export function checkFaultRates(rates: FaultRates): void {
  let sum = 0;
  for (const f of FAULTS) {
    const r = rates[f];
    if (r === undefined) continue;
    if (!Number.isFinite(r) || r < 0 || r > 1)
      throw new ValidationError(`${f}-rate`, `must be a fraction from 0 to 1 (got ${r})`);
    sum += r;
  }
  if (sum > 1 + 1e-9)
    throw new ValidationError('fail-rate', `the fault rates add up to ${sum.toFixed(3)}, more than 1`);
}

/** mulberry32: a small, fast 32-bit PRNG; deterministic for a seed (not for anything secret). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The role of each of `n` devices (index i = the i-th thing). */
export function planRoles(n: number, rates: FaultRates, seed: number): DeviceRole[] {
  checkFaultRates(rates);
  const roles = new Array<DeviceRole>(n).fill('ok');
  const random = seededRandom(seed);
  // A seeded Fisher–Yates shuffle of the indices; the faults take consecutive runs of it.
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  let next = 0;
  for (const f of FAULTS) {
    const count = Math.min(n - next, Math.round((rates[f] ?? 0) * n));
    for (let k = 0; k < count; k++) roles[order[next++] as number] = f;
  }
  return roles;
}

export function countRoles(roles: readonly DeviceRole[]): Record<DeviceRole, number> {
  const out: Record<DeviceRole, number> = { ok: 0, fail: 0, reject: 0, timeout: 0, offline: 0 };
  for (const r of roles) out[r]++;
  return out;
}
