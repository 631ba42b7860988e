import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Sha256 } from '@aws-crypto/sha256-js';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import {
  checkSignature,
  parseAuthorizationHeader,
  parseCredential,
  parseQuery,
  presignLifetime,
  queryValue,
  type SignatureClaim,
  splitRequestUrl,
} from '../../../../src/cloud/sigv4/verify.ts';
import { localS3ClientConfig } from '../../../../src/shared/s3-client-config.ts';
import { parseAmzDate } from '../../../../src/shared/sigv4.ts';
import { presignWebSocketUrlSync } from '../../../../src/shared/ws-url.ts';

const CREDS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
const DATE = new Date('2026-03-04T05:06:07Z');

/** What a server receives for a presigned URL, and the claim its query makes. */
function presigned(url: string, opts: Partial<SignatureClaim> = {}) {
  const u = new URL(url);
  const { path, rawQuery } = splitRequestUrl(`${u.pathname}${u.search}`);
  const query = parseQuery(rawQuery);
  const q = (k: string) => queryValue(query, k) ?? '';
  const scope = parseCredential(q('X-Amz-Credential'));
  assert.ok(scope);
  const req = { method: 'GET', path, query, headers: { host: u.host } };
  const claim: SignatureClaim = {
    form: 'query',
    credentials: CREDS,
    scope,
    signedHeaders: q('X-Amz-SignedHeaders').split(';'),
    signedAt: parseAmzDate(q('X-Amz-Date')) ?? Number.NaN,
    expiresIn: Number(q('X-Amz-Expires')),
    signature: q('X-Amz-Signature'),
    uriEscapePath: false,
    ...opts,
  };
  return { req, claim };
}

describe('checkSignature, query form', () => {
  test('S3: accepts what the SDK presigner signs (odd key, session token), refuses tampering', async () => {
    const creds = { ...CREDS, sessionToken: 'FwoGZXIvYXdzE/abc+def==' };
    const client = new S3Client(localS3ClientConfig('http://127.0.0.1:45678', creds, 'eu-west-3'));
    try {
      const url = await getSignedUrl(
        client,
        new GetObjectCommand({ Bucket: 'firmware', Key: 'dir with spaces/ünïcode+plus(1)*!~.bin' }),
        { expiresIn: 900, signingDate: DATE },
      );
      const payloadHash = queryValue(parseQuery(new URL(url).search.slice(1)), 'X-Amz-Content-Sha256');
      const { req, claim } = presigned(url, { ...(payloadHash ? { payloadHash } : {}) });
      assert.deepEqual(await checkSignature(req, claim), { ok: true });
      const wrongSecret = { ...claim, credentials: { ...CREDS, secretAccessKey: 'nope' } };
      assert.deepEqual(await checkSignature(req, wrongSecret), { ok: false, failure: 'mismatch' });
      const otherKey = { ...req, path: req.path.replace('firmware', 'firmwarf') };
      assert.deepEqual(await checkSignature(otherKey, claim), { ok: false, failure: 'mismatch' });
      const longer = { ...req, query: { ...req.query, 'X-Amz-Expires': '3600' } };
      assert.deepEqual(await checkSignature(longer, { ...claim, expiresIn: 3600 }), {
        ok: false,
        failure: 'mismatch',
      });
      const otherHost = { ...req, headers: { host: '127.0.0.1:1' } };
      assert.deepEqual(await checkSignature(otherHost, claim), { ok: false, failure: 'mismatch' });
      assert.deepEqual(await checkSignature({ ...req, headers: {} }, claim), {
        ok: false,
        failure: 'missing-header',
        header: 'host',
      });
    } finally {
      client.destroy();
    }
  });

  test('AWS IoT WebSocket: the session token appended after signing is left out; path normalised', async () => {
    const url = presignWebSocketUrlSync(
      'ws://127.0.0.1:8083/mqtt?a=b%20c',
      { ...CREDS, sessionToken: 'tok/en+=' },
      'us-east-1',
      300,
      DATE,
    );
    const { req, claim } = presigned(url, { uriEscapePath: true, unsignedParams: ['X-Amz-Security-Token'] });
    assert.equal(req.query['X-Amz-Security-Token'], 'tok/en+=');
    assert.equal(req.query.a, 'b c');
    assert.deepEqual(await checkSignature(req, claim), { ok: true });
    const { unsignedParams: _, ...signsToken } = claim;
    assert.deepEqual(await checkSignature(req, signsToken), { ok: false, failure: 'mismatch' });
  });
});

describe('checkSignature, header form', () => {
  async function signed(service: string, path: string, uriEscapePath: boolean, body?: string) {
    const signer = new SignatureV4({
      credentials: CREDS,
      region: 'us-west-2',
      service,
      sha256: Sha256,
      uriEscapePath,
      // No x-amz-content-sha256 header: the body itself is hashed (with one, its value is).
      applyChecksum: false,
    });
    const r = await signer.sign(
      new HttpRequest({
        method: 'PUT',
        hostname: '127.0.0.1',
        port: 4000,
        path,
        query: { force: 'true', token: 'a+b/c= d~*' },
        headers: { host: '127.0.0.1:4000', 'content-type': 'application/json' },
        ...(body !== undefined ? { body } : {}),
      }),
      { signingDate: DATE },
    );
    const auth = parseAuthorizationHeader(String(r.headers.authorization));
    assert.ok(typeof auth === 'object');
    const scope = parseCredential(auth.credential);
    assert.ok(scope);
    const req = {
      method: 'PUT',
      path,
      query: { force: 'true', token: 'a+b/c= d~*' },
      headers: r.headers,
      ...(body !== undefined ? { body: Buffer.from(body) } : {}),
    };
    const claim: SignatureClaim = {
      form: 'header',
      credentials: CREDS,
      scope,
      signedHeaders: auth.signedHeaders,
      signedAt: DATE.getTime(),
      signature: auth.signature,
      uriEscapePath,
    };
    return { req, claim };
  }

  test('IoT control plane: escaped path label (double-encoded), JSON body', async () => {
    const { req, claim } = await signed(
      'iot',
      `/things/${encodeURIComponent('thing:one')}/jobs`,
      true,
      '{"a":1}',
    );
    assert.deepEqual(await checkSignature(req, claim), { ok: true });
    assert.deepEqual(await checkSignature({ ...req, body: Buffer.from('{"a":2}') }, claim), {
      ok: false,
      failure: 'mismatch',
    });
  });

  test('S3: the path is signed as sent', async () => {
    const { req, claim } = await signed('s3', '/bucket/a%20b/c%2Bd', false);
    assert.deepEqual(await checkSignature(req, claim), { ok: true });
    assert.deepEqual(await checkSignature(req, { ...claim, uriEscapePath: true }), {
      ok: false,
      failure: 'mismatch',
    });
  });
});

describe('parsing', () => {
  test('parseQuery decodes percent-encoding and keeps repeated keys; lenient keeps bad escapes', () => {
    assert.deepEqual(parseQuery('a=1&b=x%20y&a=2&c'), { a: ['1', '2'], b: 'x y', c: '' });
    assert.deepEqual(parseQuery(''), {});
    assert.throws(() => parseQuery('a=%E0%A4%A'));
    assert.deepEqual(parseQuery('a=%E0%A4%A&b=1+2', { lenient: true }), { a: '%E0%A4%A', b: '1+2' });
  });

  test('parseAuthorizationHeader: scheme, missing parts, signature shape', () => {
    const sig = 'ab'.repeat(32);
    assert.equal(parseAuthorizationHeader('AWS AKID:sig'), 'scheme');
    assert.equal(parseAuthorizationHeader('AWS4-HMAC-SHA256 Credential=A/x'), 'malformed');
    assert.equal(
      parseAuthorizationHeader(
        'AWS4-HMAC-SHA256 Credential=A/1/r/s/aws4_request, SignedHeaders=host, Signature=xyz',
      ),
      'malformed',
    );
    assert.deepEqual(
      parseAuthorizationHeader(
        `AWS4-HMAC-SHA256 Credential=A/1/r/s/aws4_request,SignedHeaders=Host;x-amz-date,Signature=${sig.toUpperCase()}`,
      ),
      { credential: 'A/1/r/s/aws4_request', signedHeaders: ['host', 'x-amz-date'], signature: sig },
    );
    assert.equal(parseCredential('A/1/r/s'), undefined);
  });

  test('presignLifetime: signing time and expiry, or which part is malformed', () => {
    const signedAt = Date.UTC(2026, 2, 4, 5, 6, 7);
    assert.deepEqual(presignLifetime('20260304T050607Z', '60'), {
      signedAt,
      expiresIn: 60,
      expiresAt: signedAt + 60_000,
    });
    assert.equal(presignLifetime('20261304T050607Z', '60'), 'date');
    assert.equal(presignLifetime(undefined, '60'), 'date');
    assert.equal(presignLifetime('20260304T050607Z', '6e1'), 'expires');
    assert.equal(presignLifetime('20260304T050607Z', undefined), 'expires');
    assert.equal(presignLifetime('20260304T050607Z', '0'), 'range');
    assert.equal(presignLifetime('20260304T050607Z', '604801'), 'range');
  });
});
