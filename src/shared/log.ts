import { type Logger, type LoggerOptions, pino } from 'pino';

export type { Logger };

/**
 * Structured logs (pino) for library code. Library code takes a Logger as an option and falls back to a
 * silent one, so embedding a component never prints anything the host did not ask for.
 */
export function createLogger(
  options: LoggerOptions & { destination?: NodeJS.WritableStream | number } = {},
): Logger {
  const { destination, ...rest } = options;
  const opts: LoggerOptions = { level: process.env.OTA_LOG_LEVEL ?? 'info', ...rest };
  if (destination === undefined) return pino(opts, pino.destination(2));
  if (typeof destination === 'number') return pino(opts, pino.destination(destination));
  return pino(opts, destination);
}

export const silentLogger: Logger = pino({ level: 'silent' });
