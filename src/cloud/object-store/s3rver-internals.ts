import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { Readable } from 'node:stream';

/**
 * Typed views of the parts of s3rver@3 (CommonJS, untyped) this project touches. s3rver's package.json has
 * no "exports" map, so its lib/ modules can be required directly; the shapes below were read from
 * node_modules/s3rver/lib (3.7.1).
 */
const require = createRequire(import.meta.url);

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

export const S3rver = require('s3rver') as S3rverCtor;
export const FilesystemStore = require('s3rver/lib/stores/filesystem') as FilesystemStoreCtor;
export const S3Object = require('s3rver/lib/models/object') as S3rverObjectCtor;
export interface S3ErrorCtor {
  new (code: string, message: string, detail?: Record<string, string>): Error;
}
/** lib/models/error.js: thrown from store methods, it becomes an S3 XML error response. */
export const S3Error = require('s3rver/lib/models/error') as S3ErrorCtor;
export const DUMMY_ACCOUNT = (require('s3rver/lib/models/account') as { DUMMY_ACCOUNT: AwsAccount })
  .DUMMY_ACCOUNT;
