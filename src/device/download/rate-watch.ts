import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { errorMessage } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { MaxRateSchema } from '../config/download.ts';
import type { TokenBucket } from './token-bucket.ts';

/**
 * `maxRate` from the config file, live: while a download runs, the file is polled (`fs.watchFile`, one
 * stat per second; robust against editors that replace the file, and it does not keep the process
 * alive) and a changed `maxRate` goes to the download's token bucket at once — no restart, no lost
 * bytes. A file that does not parse, or a bad value, is logged and ignored (the current rate stays).
 * A `maxRate` removed from the file means unlimited, as at start-up.
 */
export function watchMaxRate(file: string, bucket: TokenBucket, log: Logger, intervalMs = 1000): () => void {
  const reread = () => {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      log.warn({ file, err: errorMessage(err) }, 'config file unreadable; keeping the current max rate');
      return;
    }
    const v = raw !== null && typeof raw === 'object' ? (raw as Record<string, unknown>).maxRate : undefined;
    const parsed = MaxRateSchema.safeParse(v ?? 0);
    if (!parsed.success) {
      log.warn(
        { file, maxRate: v },
        'config file: maxRate must be bytes per second like 500kB; keeping the current rate',
      );
      return;
    }
    if (parsed.data === bucket.bytesPerSecond) return;
    log.info({ file, from: bucket.bytesPerSecond, to: parsed.data }, 'max rate changed (config file)');
    bucket.setRate(parsed.data);
  };
  reread();
  const listener = () => reread();
  watchFile(file, { interval: intervalMs, persistent: false }, listener);
  return () => unwatchFile(file, listener);
}
