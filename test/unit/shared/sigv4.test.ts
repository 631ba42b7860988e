import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  canonicalQueryString,
  credentialScope,
  formatAmzDate,
  parseAmzDate,
  stringToSign,
  uriEncode,
} from '../../../src/shared/sigv4.ts';
import {
  hmacSha256,
  sha256Hex,
  signingKey,
  timingSafeEqualStrings,
} from '../../../src/shared/sigv4-crypto.ts';

// The AWS documentation's example credentials (IAM User Guide, SigV4 examples and test suite).
const SECRET = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';

describe('SigV4 signing key and signature (AWS published values)', () => {
  test('signing key of the IAM User Guide example (20120215, us-east-1, iam)', () => {
    assert.equal(
      signingKey(SECRET, '20120215', 'us-east-1', 'iam').toString('hex'),
      'f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d',
    );
  });

  test('aws-sig-v4-test-suite "get-vanilla": canonical request hash and signature', () => {
    const { amzDate, dateStamp } = formatAmzDate(new Date('2015-08-30T12:36:00Z'));
    assert.equal(amzDate, '20150830T123600Z');
    const canonicalRequest = [
      'GET',
      '/',
      canonicalQueryString([]),
      'host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n',
      'host;x-amz-date',
      sha256Hex(''),
    ].join('\n');
    const scope = credentialScope(dateStamp, 'us-east-1', 'service');
    assert.equal(scope, '20150830/us-east-1/service/aws4_request');
    const toSign = stringToSign(amzDate, scope, sha256Hex(canonicalRequest));
    assert.equal(
      toSign,
      'AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n' +
        'bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63',
    );
    const signature = hmacSha256(signingKey(SECRET, dateStamp, 'us-east-1', 'service'), toSign).toString(
      'hex',
    );
    assert.equal(signature, '5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31');
    assert.notEqual(
      hmacSha256(signingKey(`${SECRET}x`, dateStamp, 'us-east-1', 'service'), toSign).toString('hex'),
      signature,
    );
  });
});

describe('SigV4 string pieces', () => {
  test('uriEncode keeps only the RFC 3986 unreserved characters', () => {
    assert.equal(uriEncode("AZaz09-_.~ /!'()*+=&ü"), 'AZaz09-_.~%20%2F%21%27%28%29%2A%2B%3D%26%C3%BC');
  });

  test('canonicalQueryString sorts encoded names by code point, then values', () => {
    assert.equal(
      canonicalQueryString([
        ['b', '2'],
        ['a', 'z'],
        ['a', 'y'],
        ['X-Amz-Date', '1 2'],
      ]),
      'X-Amz-Date=1%202&a=y&a=z&b=2',
    );
  });

  test('parseAmzDate round-trips formatAmzDate', () => {
    const t = Date.UTC(2026, 1, 28, 23, 59, 59);
    assert.equal(parseAmzDate(formatAmzDate(new Date(t)).amzDate), t);
    assert.equal(parseAmzDate('20240229T000000Z'), Date.UTC(2024, 1, 29)); // leap day
  });

  test('parseAmzDate rejects malformed and impossible dates', () => {
    for (const bad of [
      '',
      '20260228T235959',
      '2026-02-28T23:59:59Z',
      '20260228t235959z',
      ' 20260228T235959Z',
      '20261301T000000Z', // month 13
      '20260001T000000Z', // month 0
      '20260230T000000Z', // 30 February
      '20250229T000000Z', // not a leap year
      '20260100T000000Z', // day 0
      '20260101T240000Z', // hour 24
      '20260101T006000Z', // minute 60
      '20260101T000060Z', // second 60
      '00500101T000000Z', // Date.UTC would map year 50 to 1950
      '２0260101T000000Z',
    ]) {
      assert.equal(parseAmzDate(bad), undefined, JSON.stringify(bad));
    }
  });
});

describe('timingSafeEqualStrings', () => {
  test('equal only for the same string', () => {
    assert.equal(timingSafeEqualStrings('abc', 'abc'), true);
    assert.equal(timingSafeEqualStrings('abc', 'abd'), false);
    assert.equal(timingSafeEqualStrings('abc', 'abcd'), false);
    assert.equal(timingSafeEqualStrings('', ''), true);
    assert.equal(timingSafeEqualStrings('é', 'e'), false);
  });
});
