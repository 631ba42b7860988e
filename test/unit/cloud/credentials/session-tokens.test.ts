import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Sha256 } from '@aws-crypto/sha256-js';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { verifySigV4 } from '../../../../src/cloud/control-plane/sigv4.ts';
import {
  createSessionTokens,
  memorySessionTokenStore,
} from '../../../../src/cloud/credentials/session-tokens.ts';

const CREDS = { accessKeyId: 'AKIDSESSION', secretAccessKey: 'session-secret' };

test('session tokens: valid until they expire, then expired; unknown ones invalid (fake clock)', () => {
  let now = Date.UTC(2026, 0, 1);
  const store = memorySessionTokenStore();
  const tokens = createSessionTokens(store, { now: () => now });
  const { sessionToken, expiration } = tokens.issue(900);
  assert.equal(expiration.getTime(), now + 900_000);
  assert.equal(tokens.check(sessionToken), 'valid');
  assert.equal(tokens.check(`${sessionToken}x`), 'invalid');
  now += 900_000;
  assert.equal(tokens.check(sessionToken), 'expired');
  // Long after expiry the token is forgotten at the next issue.
  now += 2 * 24 * 3600_000;
  tokens.issue(900);
  assert.equal(tokens.check(sessionToken), 'invalid');
});

test('control-plane SigV4: a stack token passes, an expired or foreign one gets AWS’s error types', async () => {
  let now = Date.UTC(2026, 0, 1, 12);
  const tokens = createSessionTokens(memorySessionTokenStore(), { now: () => now });
  const { sessionToken } = tokens.issue(900);
  const signed = async (token?: string) => {
    const signer = new SignatureV4({
      credentials: { ...CREDS, ...(token ? { sessionToken: token } : {}) },
      region: 'us-west-2',
      service: 'iot',
      sha256: Sha256,
    });
    const req = await signer.sign(
      new HttpRequest({
        method: 'GET',
        protocol: 'http:',
        hostname: '127.0.0.1',
        path: '/things',
        headers: { host: '127.0.0.1' },
      }),
      { signingDate: new Date(now) },
    );
    return verifySigV4(
      { method: 'GET', path: '/things', rawQuery: '', headers: req.headers, body: new Uint8Array() },
      { credentials: CREDS, region: 'us-west-2', service: 'iot', now, checkSessionToken: tokens.check },
    );
  };
  assert.deepEqual(await signed(), { ok: true, accessKeyId: CREDS.accessKeyId });
  assert.deepEqual(await signed(sessionToken), { ok: true, accessKeyId: CREDS.accessKeyId, sessionToken });
  const foreign = await signed('FwoGZXIvYXdzEJr//////////wEaDAn');
  assert.equal(foreign.ok, false);
  assert.equal(!foreign.ok && foreign.errorType, 'UnrecognizedClientException');
  now += 901_000;
  const expired = await signed(sessionToken);
  assert.equal(!expired.ok && expired.errorType, 'ExpiredTokenException');
});
