import { ConnectError } from '../device/link/connect-diagnosis.ts';
import { stackNotRunningMessage } from '../shared/endpoints.ts';
import { OtaError } from '../shared/errors.ts';

/**
 * What the CLI knows about the command being run, for the messages below: the local stack it read
 * (`--data-dir`). Set by options.ts when a command reads endpoints.json.
 */
export interface ErrorContext {
  dataDir?: string;
}

const context: ErrorContext = {};

export function noteLocalStack(dataDir: string): void {
  context.dataDir = dataDir;
}

/**
 * package.json's optionalDependencies: what the local stack (`ota dev`, `demo`, `sim`) and the operator's
 * IoT calls (`ota job`, `thing`) load, and the agent never does. An agent-only install leaves them out.
 */
export const NOT_FOR_THE_AGENT = [
  'better-sqlite3',
  'aedes',
  's3rver',
  '@peculiar/x509',
  'reflect-metadata',
  '@aws-sdk/client-iot',
  'croner',
];

/** The name of the package an agent-only install (`npm install --omit=optional`) left out, if that is why. */
export function missingOptionalPackage(err: unknown): string | undefined {
  const e = err as { code?: string; message?: string } | undefined;
  if (e?.code !== 'ERR_MODULE_NOT_FOUND' && e?.code !== 'MODULE_NOT_FOUND') return undefined;
  return NOT_FOR_THE_AGENT.find((p) => e.message?.includes(`'${p}'`) === true);
}

export interface Explained {
  line: string;
  exitCode: number;
}

/**
 * One line for a person, for every mistake a user can be expected to make: a wrong flag value, a file
 * that is not there, a stack that is not running, missing AWS credentials, a key that is not the
 * certificate's. Anything else is a bug and keeps its stack.
 */
export function explainError(err: unknown, ctx: ErrorContext = context): Explained {
  // The agent's own diagnosis (nothing listening, the certificate's CN, a refused CONNECT) is complete.
  if (err instanceof ConnectError) return { line: err.message, exitCode: err.definitive ? 2 : 1 };
  const refused = findErrno(err, 'ECONNREFUSED');
  if (refused) {
    const where = refused.address ? `${refused.address}:${refused.port}` : refused.message;
    if (ctx.dataDir) return { line: stackNotRunningMessage(ctx.dataDir, where), exitCode: 1 };
    return { line: `cannot connect to ${where}: nothing is listening there`, exitCode: 1 };
  }
  const ossl = findCode(err, (c) => c.startsWith('ERR_OSSL_'));
  if (ossl) {
    if (ossl.code === 'ERR_OSSL_X509_KEY_VALUES_MISMATCH') {
      return {
        line: 'the private key does not belong to the certificate: pass the key that was issued with it (--key)',
        exitCode: 2,
      };
    }
    return {
      line: `TLS credentials: ${ossl.message}: check that --cert, --key and --root-ca are the right PEM files`,
      exitCode: 2,
    };
  }
  const e = err as { name?: string; message?: string; $metadata?: unknown; code?: string };
  if (e?.name === 'CredentialsProviderError') {
    return {
      line:
        'no AWS credentials found (--aws uses the AWS SDK default chain): pass --profile or set AWS_PROFILE, ' +
        'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run `aws configure` (or `aws sso login`)',
      exitCode: 2,
    };
  }
  if (e?.message === 'Region is missing') {
    return {
      line: 'no AWS region: pass --region or set AWS_REGION (or a region in ~/.aws/config)',
      exitCode: 2,
    };
  }
  const missing = missingOptionalPackage(err);
  if (missing) {
    return {
      line:
        `this command needs ${missing}, which an agent-only install (npm install --omit=optional) leaves ` +
        'out: install the package with its optional dependencies to run `ota dev`, `demo`, `sim`, `job` or `thing` ' +
        '(docs/install.md)',
      exitCode: 2,
    };
  }
  if (err instanceof OtaError) return { line: err.message, exitCode: 2 };
  if (e?.$metadata) {
    // An AWS SDK service error: name is the AWS exception (ResourceNotFoundException, ...).
    return { line: `${e.name}: ${e.message}`, exitCode: 1 };
  }
  const errno = err as NodeJS.ErrnoException;
  if (errno?.code && errno.path) {
    // A file the user named could not be read or written: one line, no stack.
    return { line: errno.message, exitCode: 2 };
  }
  return { line: err instanceof Error ? (err.stack ?? err.message) : String(err), exitCode: 1 };
}

/** Prints an error for a person and returns the exit code. Known errors get one line, not a stack. */
export function reportError(err: unknown): number {
  const { line, exitCode } = explainError(err);
  process.stderr.write(`ota: ${line}\n`);
  return exitCode;
}

type ErrnoLike = Error & { code?: string; address?: string; port?: number };

/** The first error in `err`'s cause chain (and AggregateError members) whose code matches. */
function findCode(err: unknown, match: (code: string) => boolean, depth = 0): ErrnoLike | undefined {
  if (!err || typeof err !== 'object' || depth > 8) return undefined;
  const e = err as ErrnoLike & { cause?: unknown; errors?: unknown[] };
  if (typeof e.code === 'string' && match(e.code)) return e;
  for (const inner of [e.cause, ...(Array.isArray(e.errors) ? e.errors : [])]) {
    const found = findCode(inner, match, depth + 1);
    if (found) return found;
  }
  return undefined;
}

function findErrno(err: unknown, code: string): ErrnoLike | undefined {
  return findCode(err, (c) => c === code);
}
