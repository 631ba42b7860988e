import { createRequire } from 'node:module';
import { hostname } from 'node:os';
import { isatty } from 'node:tty';
import { type Bindings, type ChildLoggerOptions, type Logger, type LoggerOptions, pino } from 'pino';

export type { Logger };

/** `json`: one JSON object a line (for machines, journald, files); `pretty`: for a person at a terminal. */
export type LogFormat = 'json' | 'pretty';

export interface CreateLoggerOptions extends LoggerOptions {
  destination?: NodeJS.WritableStream | number;
  /** Default: env `OTA_LOG_FORMAT`, else `pretty` when the destination is a terminal, else `json`. */
  format?: LogFormat;
}

/**
 * Structured logs (pino) for library code. Library code takes a Logger as an option and falls back to a
 * silent one, so embedding a component never prints anything the host did not ask for.
 *
 * Children never repeat a key. pino appends a child's bindings to its parent's serialised ones without
 * looking (pino docs, "logger.child": "can potentially result in duplicate keys"), so an agent whose
 * host logger already had `{thing}` and which adds `child({thing})` itself logged `"thing":"X","thing":"X"`,
 * and `child({component:"s3rver"})` under `child({component:"object-store"})` logged both. Here every
 * child is made from one binding-less root with its ancestors' bindings merged in: a key appears once,
 * and the innermost value wins.
 */
export function createLogger(options: CreateLoggerOptions = {}): Logger {
  const { destination, format, base, ...rest } = options;
  const fd = destination ?? 2;
  const opts: LoggerOptions = { level: process.env.OTA_LOG_LEVEL ?? 'info', ...rest };
  const useFormat = format ?? formatFromEnv() ?? (isTerminal(fd) ? 'pretty' : 'json');
  const stream =
    useFormat === 'pretty' ? prettyStream(fd) : typeof fd === 'number' ? pino.destination(fd) : fd;
  // pino's default base is {pid, hostname}; `base: null` drops it; an object replaces it.
  const rootBindings: Bindings = base === null ? {} : (base ?? { pid: process.pid, hostname: hostname() });
  const bare = pino({ ...opts, base: null }, stream);
  return withMergedChildren(bare).child(rootBindings);
}

function formatFromEnv(): LogFormat | undefined {
  const v = process.env.OTA_LOG_FORMAT;
  return v === 'json' || v === 'pretty' ? v : undefined;
}

function isTerminal(dest: NodeJS.WritableStream | number): boolean {
  if (typeof dest === 'number') return isatty(dest);
  return (dest as NodeJS.WriteStream).isTTY === true;
}

const require = createRequire(import.meta.url);

/**
 * pino-pretty as a synchronous stream in this thread (no transport worker: an agent on a small device
 * should not start a thread to colour its logs). Loaded only when a person is watching, so JSON-only
 * runs (services, CI) never load it.
 */
function prettyStream(dest: NodeJS.WritableStream | number): NodeJS.WritableStream {
  const pretty = require('pino-pretty') as (o: Record<string, unknown>) => NodeJS.WritableStream;
  return pretty({
    destination: dest,
    sync: true,
    colorize: isTerminal(dest),
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
  });
}

type ChildFn = (this: Logger, bindings: Bindings, options?: ChildLoggerOptions) => Logger;

/** Makes `bare.child` (and so every descendant's, through the prototype chain) merge bindings. */
function withMergedChildren(bare: Logger): Logger {
  const protoChild = bare.child as unknown as ChildFn;
  const own = new WeakMap<Logger, Bindings>();
  const child: ChildFn = function (this: Logger, bindings, childOptions) {
    const merged = { ...own.get(this), ...bindings };
    // The new child is made from the root, so it would take the root's level: keep the parent's.
    const made = protoChild.call(bare, merged, { level: this.level, ...childOptions });
    own.set(made, merged);
    return made;
  };
  Object.defineProperty(bare, 'child', { value: child, configurable: true, writable: true });
  return bare;
}

export const silentLogger: Logger = pino({ level: 'silent' });
