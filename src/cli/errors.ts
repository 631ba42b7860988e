import { OtaError } from '../shared/errors.ts';

/** Prints an error for a person and returns the exit code. Known errors get one line, not a stack. */
export function reportError(err: unknown): number {
  if (err instanceof OtaError) {
    process.stderr.write(`ota: ${err.message}\n`);
    return 2;
  }
  const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  if (e?.$metadata) {
    // An AWS SDK service error: name is the AWS exception (ResourceNotFoundException, ...).
    process.stderr.write(`ota: ${e.name}: ${e.message}\n`);
    return 1;
  }
  const errno = err as NodeJS.ErrnoException;
  if (errno?.code && errno.path) {
    // A file the user named could not be read or written: one line, no stack.
    process.stderr.write(`ota: ${errno.message}\n`);
    return 2;
  }
  if ((err as NodeJS.ErrnoException)?.code === 'ECONNREFUSED') {
    process.stderr.write(`ota: ${(err as Error).message}: is \`ota dev\` running for this data dir?\n`);
    return 1;
  }
  process.stderr.write(`ota: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return 1;
}
