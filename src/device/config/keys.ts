import { ValidationError } from '../../shared/errors.ts';

/**
 * The agent's config keys as a person writes them: durations in two units, and keys the schema does not
 * know. Kept apart from agent-config.ts (the schema) so that the rules a user reads in docs/agent.md
 * ("Units" and "Unknown keys") live in one small place.
 */

/**
 * Every duration has two names: the flag's, in seconds (`--progress-interval 1.5`, `"progressInterval":
 * 1.5`, `OTA_PROGRESS_INTERVAL=1.5`), and the same name with `Ms`, in milliseconds
 * (`"progressIntervalMs": 1500`, `OTA_PROGRESS_INTERVAL_MS=1500`). The name says the unit; the schema
 * keeps milliseconds.
 */
export const DURATION_KEYS = {
  progressInterval: 'progressIntervalMs',
  statusDetailsInterval: 'statusDetailsIntervalMs',
  requestTimeout: 'requestTimeoutMs',
  downloadRetryWindow: 'downloadRetryWindowMs',
  hookTimeout: 'hookTimeoutMs',
  connectTimeout: 'connectTimeoutMs',
  stallTimeout: 'stallTimeoutMs',
} as const;

export type SecondsKey = keyof typeof DURATION_KEYS;
export type MillisKey = (typeof DURATION_KEYS)[SecondsKey];

/** Keys that once meant something: a specific word instead of "unknown key". */
const RETIRED_KEYS: Readonly<Record<string, string>> = {
  downloadRetries:
    'is no longer used: the download now retries for a time, not a count; set downloadRetryWindowMs ' +
    '(milliseconds) or downloadRetryWindow (seconds), default 300 s',
};

/** Keys that configure the command line, not the agent: accepted in a config file without a warning. */
const IGNORED_KEYS = new Set(['config', '$schema']);

/**
 * One converted value, or `undefined` when `v` is not a number of seconds (the schema then names the
 * key with its own message, as for any other bad value).
 */
function secondsToMs(v: unknown): unknown {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return v;
  return Math.round(n * 1000);
}

/**
 * Rewrites a source's seconds keys as milliseconds keys, so precedence between sources works on one
 * name. Both names in the same source with different values is a mistake a person must resolve.
 */
export function normaliseDurations(src: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...src };
  for (const [sec, ms] of Object.entries(DURATION_KEYS) as [SecondsKey, MillisKey][]) {
    if (!(sec in out)) continue;
    const v = out[sec];
    delete out[sec];
    if (v === undefined || v === null || v === '') continue;
    const converted = secondsToMs(v);
    const given = out[ms];
    if (given !== undefined && given !== null && given !== '' && Number(given) !== converted) {
      throw new ValidationError(
        sec,
        `given in seconds, and ${ms} in milliseconds says otherwise (${String(given)}): keep one`,
      );
    }
    out[ms] = converted;
  }
  return out;
}

/** Levenshtein distance, small strings only (config keys). */
function distance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const cur = [i];
    for (let j = 1; j <= y.length; j++) {
      const cost = x[i - 1] === y[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = cur;
  }
  return prev[y.length] ?? 0;
}

/** The known key closest to `key`, when it is close enough to be a typo (or a different case). */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const k of known) {
    const d = distance(key, k);
    if (d < bestD) {
      best = k;
      bestD = d;
    }
  }
  // A third of the key's length: `thingname`, `progresIntervalMs`, `rootCA` yes; `foo` → `key` no.
  return best !== undefined && bestD <= Math.max(1, Math.floor(key.length / 3)) ? best : undefined;
}

export interface ConfigWarning {
  /** The key as written. */
  key: string;
  /** Where it was: the config file's path. */
  source: string;
  message: string;
  /** The known key it probably meant. */
  suggestion?: string;
}

/**
 * Warnings for the keys of a config file the agent does not know: ignored silently, a typo (`thingname`)
 * or an old key (`downloadRetries`) would change nothing and say nothing.
 */
export function unknownKeyWarnings(
  file: Record<string, unknown>,
  known: readonly string[],
  source: string,
): ConfigWarning[] {
  const names = [...known, ...Object.keys(DURATION_KEYS)];
  const knownSet = new Set(names);
  const out: ConfigWarning[] = [];
  for (const key of Object.keys(file)) {
    if (knownSet.has(key) || IGNORED_KEYS.has(key)) continue;
    const retired = RETIRED_KEYS[key];
    if (retired) {
      out.push({ key, source, message: `${source}: ${key} ${retired}; it is ignored` });
      continue;
    }
    const suggestion = closestKey(key, names);
    const hint = suggestion ? ` (did you mean ${suggestion}?)` : '';
    out.push({
      key,
      source,
      message: `${source}: unknown key ${JSON.stringify(key)}${hint}; it is ignored`,
      ...(suggestion ? { suggestion } : {}),
    });
  }
  return out;
}
