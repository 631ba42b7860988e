import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import {
  assertS3rverInternals,
  loadedS3rverModules,
  S3RVER_READ_FROM,
  type S3rverModules,
  s3rverAppProblem,
  s3rverInternalsProblem,
} from '../../../../src/cloud/object-store/s3rver-internals.ts';

describe("the start-up check of s3rver's internals", () => {
  test('passes against the installed s3rver, which is the version package.json pins exactly', () => {
    assert.equal(s3rverInternalsProblem(loadedS3rverModules), undefined);
    assert.doesNotThrow(() => assertS3rverInternals());
    assert.equal(loadedS3rverModules.version, S3RVER_READ_FROM);
    const pkg = JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as {
      optionalDependencies: Record<string, string>;
    };
    assert.equal(pkg.optionalDependencies.s3rver, S3RVER_READ_FROM);
  });

  test('a module that lost a method, moved or changed its exports is named in one line', () => {
    class BentStore {
      getResourcePath() {}
      getMetadata() {}
      putMetadata() {}
      getBucket() {}
      putBucket() {}
      getObject() {}
      putObject() {}
      // putPart is gone
    }
    const bent: S3rverModules = {
      ...loadedS3rverModules,
      version: '3.8.0',
      'lib/stores/filesystem': BentStore,
      'lib/models/object': undefined,
      'lib/models/account': { DUMMY_ACCOUNT: { createKeyPair() {} } },
    };
    const problem = s3rverInternalsProblem(bent);
    assert.equal(
      problem,
      's3rver 3.8.0 is not the one the object store reaches into (read from 3.7.1; package.json pins it): ' +
        's3rver/lib/stores/filesystem: missing prototype.putPart(); ' +
        's3rver/lib/models/object: module not found; ' +
        's3rver/lib/models/account: missing DUMMY_ACCOUNT.revokeAccessKey()',
    );
    assert.doesNotMatch(problem ?? '', /\n/);
    assert.throws(() => assertS3rverInternals(bent), { message: problem });
  });

  test('an export that is no longer a class', () => {
    const bent: S3rverModules = { ...loadedS3rverModules, 'lib/models/error': { S3Error: class {} } };
    assert.match(
      s3rverInternalsProblem(bent) ?? '',
      /: s3rver\/lib\/models\/error: exports object, not a class$/,
    );
  });

  test('the constructed app: context, middleware and store', () => {
    assert.equal(s3rverAppProblem({ context: {}, middleware: [], store: {} }), undefined);
    assert.equal(
      s3rverAppProblem({ context: {}, store: {} }, '4.0.0'),
      's3rver 4.0.0 is not the one the object store reaches into (read from 3.7.1; package.json pins it): ' +
        's3rver: new S3rver() has no middleware[]',
    );
  });
});
