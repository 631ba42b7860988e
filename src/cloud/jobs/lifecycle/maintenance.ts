/**
 * Maintenance windows of SchedulingConfig: a `cron(...)` start in AWS's six-field form (minutes, hours,
 * day of month, month, day of week 1–7 = SUN–SAT, year; `?`, `L`, `W`, `#` as in EventBridge) and a
 * duration. Cron times are UTC wall-clock times; the duration is in the service's (scaled) minutes.
 * croner evaluates the expression (seconds pinned to 0, Quartz weekday numbering).
 */
import { Cron } from 'croner';
import { errorMessage } from '../../../shared/errors.ts';
import type { MaintenanceWindow } from '../types.ts';

const AWS_CRON = /^cron\(\s*(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*\)$/;

function compile(expression: string): Cron {
  const m = AWS_CRON.exec(expression);
  if (m === null) throw new Error('expected cron(minutes hours day-of-month month day-of-week year)');
  const [, min, hour, dom, month, dow, year] = m;
  if (dom !== '?' && dow !== '?') throw new Error('one of day-of-month and day-of-week must be ?');
  return new Cron(`0 ${min} ${hour} ${dom} ${month} ${dow} ${year}`, {
    timezone: 'UTC',
    paused: true,
    alternativeWeekdays: true,
  });
}

const cache = new Map<string, Cron>();
function cronOf(expression: string): Cron {
  let c = cache.get(expression);
  if (c === undefined) {
    c = compile(expression);
    if (cache.size > 1000) cache.clear();
    cache.set(expression, c);
  }
  return c;
}

/** Returns the problem with a window's start expression (judged at `now`, epoch ms), or undefined. */
export function cronProblem(expression: string, now: number): string | undefined {
  try {
    const c = compile(expression);
    if (c.nextRun(new Date(now)) === null) return `${expression} never occurs again`;
    return undefined;
  } catch (err) {
    return `${expression} is not a valid cron expression: ${errorMessage(err)}`;
  }
}

/** The window that contains `at`, as [start, end), if any. */
export function activeWindow(
  windows: readonly MaintenanceWindow[],
  at: number,
  minuteMs: number,
): { start: number; end: number } | undefined {
  let best: { start: number; end: number } | undefined;
  for (const w of windows) {
    const duration = w.durationInMinutes * minuteMs;
    // The first start after (at - duration) is the only one whose window can still contain `at`.
    const next = cronOf(w.startTime).nextRun(new Date(at - duration - 1));
    if (next === null) continue;
    const start = next.getTime();
    if (start <= at && at < start + duration && (best === undefined || start + duration > best.end)) {
      best = { start, end: start + duration };
    }
  }
  return best;
}

/** The earliest window start after `at`. */
export function nextWindowStart(windows: readonly MaintenanceWindow[], at: number): number | undefined {
  let best: number | undefined;
  for (const w of windows) {
    const next = cronOf(w.startTime).nextRun(new Date(at));
    if (next !== null && (best === undefined || next.getTime() < best)) best = next.getTime();
  }
  return best;
}

/** The next `count` window starts after `at`, across all windows (AWS `scheduledJobRollouts`). */
export function upcomingWindowStarts(windows: readonly MaintenanceWindow[], at: number, count = 7): number[] {
  const all: number[] = [];
  for (const w of windows) {
    for (const d of cronOf(w.startTime).nextRuns(count, new Date(at))) all.push(d.getTime());
  }
  return [...new Set(all)].sort((a, b) => a - b).slice(0, count);
}
