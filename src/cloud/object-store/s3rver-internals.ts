import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { Readable } from 'node:stream';

/**
 * Typed views of the parts of s3rver@3 (CommonJS, untyped) this project touches. s3rver's package.json has
 * no "exports" map, so its lib/ modules can be required directly; the shapes below were read from
 * node_modules/s3rver/lib of {@link S3RVER_READ_FROM}, the exact version package.json pins. Private
 * modules can change in any release, so startObjectStore first calls {@link assertS3rverInternals}: a
 * module that moved or lost a function stops the store at start with one line naming it, instead of a
 * TypeError in the middle of a request.
 */
const require = createRequire(import.meta.url);

/** The s3rver release these internals were read from (package.json pins it exactly). */
export const S3RVER_READ_FROM = '3.7.1';

export type S3rverMetadata = Record<string, string | number>;

export interface S3rverObject {
  bucket: string;
  key: string;
  content: Readable | Buffer | null;
  metadata: S3rverMetadata;
  range?: { start: number; end: number };
}

export interface S3rverObjectCtor {
  new (
    bucket: string,
    key: string,
    content: Readable | Buffer | null,
    metadata: S3rverMetadata,
  ): S3rverObject;
}

/** lib/stores/filesystem.js */
export interface FilesystemStoreInstance {
  rootDirectory: string;
  getResourcePath(bucket: string, key: string | undefined, resource: string): string;
  getMetadata(bucket: string, key: string): Promise<S3rverMetadata>;
  putMetadata(bucket: string, key: string, metadata: S3rverMetadata, md5?: string): Promise<void>;
  putBucket(bucket: string): Promise<unknown>;
  getBucket(bucket: string): Promise<unknown>;
  getObject(
    bucket: string,
    key: string,
    options?: { start?: number; end?: number },
  ): Promise<S3rverObject | null>;
  putObject(object: S3rverObject): Promise<{ size: number; md5: string }>;
}

export interface FilesystemStoreCtor {
  new (rootDirectory: string): FilesystemStoreInstance;
}

/** The parts of winston's Logger that s3rver's controllers call through `ctx.logger`. */
export interface S3rverLogger {
  info(message: string, ...args: unknown[]): unknown;
  warn(message: string, ...args: unknown[]): unknown;
  error(message: string, ...args: unknown[]): unknown;
  debug(message: string, ...args: unknown[]): unknown;
}

/** lib/s3rver.js: a Koa application. */
export interface S3rverApp {
  store: FilesystemStoreInstance;
  context: { store: FilesystemStoreInstance; logger: S3rverLogger };
  logger: S3rverLogger & { close(): void };
  silent: boolean;
  /** Koa's middleware stack, outermost first (s3rver.js pushes its koa-logger first). */
  middleware: Array<{ name: string }>;
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  on(event: 'error', listener: (err: Error) => void): unknown;
}

export interface S3rverOptions {
  address?: string;
  port?: number;
  silent?: boolean;
  serviceEndpoint?: string;
  directory: string;
  resetOnClose?: boolean;
  allowMismatchedSignatures?: boolean;
  vhostBuckets?: boolean;
  configureBuckets?: { name: string; configs?: unknown[] }[];
}

export interface S3rverCtor {
  new (options: S3rverOptions): S3rverApp;
}

interface AwsAccount {
  createKeyPair(accessKeyId: string, secretAccessKey: string): void;
  revokeAccessKey(accessKeyId: string): void;
}

/** The loaded modules, as they are: the start-up check looks at these before anything uses them. */
export interface S3rverModules {
  /** node_modules/s3rver/package.json's version. */
  version: string | undefined;
  /** lib/s3rver.js (the package's main). */
  s3rver: unknown;
  'lib/stores/filesystem': unknown;
  'lib/models/object': unknown;
  'lib/models/error': unknown;
  'lib/models/account': unknown;
}

/** Requires one of s3rver's private modules; undefined when it is no longer there (the check says so). */
function optionalRequire(id: string): unknown {
  try {
    return require(id);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException | null)?.code;
    if (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') return undefined;
    throw err;
  }
}

// s3rver itself is required plainly: when the package is not installed (an agent-only install leaves
// the optional dependencies out), that MODULE_NOT_FOUND is what the CLI explains (src/cli/errors.ts).
const s3rverMain: unknown = require('s3rver');

export const loadedS3rverModules: S3rverModules = {
  version: (optionalRequire('s3rver/package.json') as { version?: string } | undefined)?.version,
  s3rver: s3rverMain,
  'lib/stores/filesystem': optionalRequire('s3rver/lib/stores/filesystem'),
  'lib/models/object': optionalRequire('s3rver/lib/models/object'),
  'lib/models/error': optionalRequire('s3rver/lib/models/error'),
  'lib/models/account': optionalRequire('s3rver/lib/models/account'),
};

type Shape = { kind: 'class'; methods: readonly string[] } | { kind: 'object'; functions: readonly string[] };

/** What this project calls or overrides in each module, as read from s3rver 3.7.1. */
const EXPECTED: Record<Exclude<keyof S3rverModules, 'version'>, Shape> = {
  // A Koa application: store.ts sets app.store / app.context, drops app.middleware[0] and takes callback().
  s3rver: { kind: 'class', methods: ['callback', 'use', 'on'] },
  // SafeFilesystemStore (fs-store.ts) extends it, overrides getObject / putObject / putPart, calls the rest.
  'lib/stores/filesystem': {
    kind: 'class',
    methods: [
      'getResourcePath',
      'getMetadata',
      'putMetadata',
      'getBucket',
      'putBucket',
      'getObject',
      'putObject',
      'putPart',
    ],
  },
  'lib/models/object': { kind: 'class', methods: [] },
  'lib/models/error': { kind: 'class', methods: ['toXML'] },
  'lib/models/account': {
    kind: 'object',
    functions: ['DUMMY_ACCOUNT.createKeyPair', 'DUMMY_ACCOUNT.revokeAccessKey'],
  },
};

function isFunction(v: unknown): v is (...args: unknown[]) => unknown {
  return typeof v === 'function';
}

function at(root: unknown, path: string): unknown {
  let v = root;
  for (const part of path.split('.')) {
    if ((typeof v !== 'object' && typeof v !== 'function') || v === null) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

/** What one module lacks ('' when it has all of it). */
function moduleProblem(mod: unknown, shape: Shape): string {
  if (mod === undefined) return 'module not found';
  if (shape.kind === 'class') {
    if (!isFunction(mod)) return `exports ${typeof mod}, not a class`;
    const proto = (mod as { prototype?: unknown }).prototype;
    const missing = shape.methods.filter((m) => !isFunction(at(proto, m)));
    return missing.length > 0 ? `missing ${missing.map((m) => `prototype.${m}()`).join(', ')}` : '';
  }
  const missing = shape.functions.filter((f) => !isFunction(at(mod, f)));
  return missing.length > 0 ? `missing ${missing.map((f) => `${f}()`).join(', ')}` : '';
}

/**
 * The one-line reason s3rver's internals are not what this store was written against, or undefined when
 * they are. Every module is checked; their problems are joined with `; `.
 */
export function s3rverInternalsProblem(mods: S3rverModules): string | undefined {
  const problems: string[] = [];
  for (const [name, shape] of Object.entries(EXPECTED) as [keyof typeof EXPECTED, Shape][]) {
    const problem = moduleProblem(mods[name], shape);
    if (problem) problems.push(`${name === 's3rver' ? 's3rver' : `s3rver/${name}`}: ${problem}`);
  }
  if (problems.length === 0) return undefined;
  return (
    `s3rver ${mods.version ?? '(unknown version)'} is not the one the object store reaches into ` +
    `(read from ${S3RVER_READ_FROM}; package.json pins it): ${problems.join('; ')}`
  );
}

/** Throws the one-line {@link s3rverInternalsProblem} if there is one. */
export function assertS3rverInternals(mods: S3rverModules = loadedS3rverModules): void {
  const problem = s3rverInternalsProblem(mods);
  if (problem) throw new Error(problem);
}

/**
 * What a constructed s3rver app lacks of what store.ts uses on the instance (Koa's `context` and
 * `middleware`, s3rver's `store`), as one line; undefined when it has all of it.
 */
export function s3rverAppProblem(app: unknown, version = loadedS3rverModules.version): string | undefined {
  const missing: string[] = [];
  if (typeof at(app, 'context') !== 'object' || at(app, 'context') === null) missing.push('context');
  if (!Array.isArray(at(app, 'middleware'))) missing.push('middleware[]');
  if (typeof at(app, 'store') !== 'object' || at(app, 'store') === null) missing.push('store');
  if (missing.length === 0) return undefined;
  return (
    `s3rver ${version ?? '(unknown version)'} is not the one the object store reaches into ` +
    `(read from ${S3RVER_READ_FROM}; package.json pins it): s3rver: new S3rver() has no ${missing.join(', ')}`
  );
}

/** Stands in for a module that is not there, so that importing still works and the check can say so. */
class Missing {}
const orMissing = <T>(mod: unknown): T => (isFunction(mod) ? mod : Missing) as T;

export const S3rver = orMissing<S3rverCtor>(loadedS3rverModules.s3rver);
export const FilesystemStore = orMissing<FilesystemStoreCtor>(loadedS3rverModules['lib/stores/filesystem']);
export const S3Object = orMissing<S3rverObjectCtor>(loadedS3rverModules['lib/models/object']);
export interface S3ErrorCtor {
  new (code: string, message: string, detail?: Record<string, string>): Error;
}
/** lib/models/error.js: thrown from store methods, it becomes an S3 XML error response. */
export const S3Error = orMissing<S3ErrorCtor>(loadedS3rverModules['lib/models/error']);
export const DUMMY_ACCOUNT = (
  loadedS3rverModules['lib/models/account'] as { DUMMY_ACCOUNT?: AwsAccount } | undefined
)?.DUMMY_ACCOUNT as AwsAccount;
