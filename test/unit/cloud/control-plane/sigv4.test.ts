import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Sha256 } from '@aws-crypto/sha256-js';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { type SigV4Result, verifySigV4 } from '../../../../src/cloud/control-plane/sigv4.ts';

const CREDS = { accessKeyId: 'AKIDLOCALTEST', secretAccessKey: 'local-secret-key' };
const REGION = 'us-west-2';

/**
 * A plain http server that runs verifySigV4 over exactly what it received and answers with the result.
 * Requests are signed client-side with @smithy/signature-v4, as @aws-sdk/client-iot signs them.
 */
let server: Server;
let port: number;
/** What the server's clock says; tests move it to exercise the skew window. */
let serverNow = Date.now();

before(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      void verifySigV4(
        {
          method: req.method ?? 'GET',
          path: q === -1 ? url : url.slice(0, q),
          rawQuery: q === -1 ? '' : url.slice(q + 1),
          headers: req.headers,
          body: Buffer.concat(chunks),
        },
        { credentials: CREDS, region: REGION, service: 'iot', now: serverNow },
      ).then((r) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(r));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

interface SendOptions {
  method?: string;
  path?: string;
  query?: Record<string, string>;
  body?: string;
  /** Body actually sent, when it should differ from the signed one. */
  sentBody?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string };
  region?: string;
  service?: string;
  signingDate?: Date;
  applyChecksum?: boolean;
  extraHeaders?: Record<string, string>;
  /** Rewrites the signed request before it is sent (tampering). */
  mutate?: (r: { path: string; query: Record<string, string>; headers: Record<string, string> }) => void;
  unsigned?: boolean;
}

function encodeQuery(query: Record<string, string>): string {
  const parts = Object.entries(query).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
  return parts.length ? `?${parts.join('&')}` : '';
}

async function send(o: SendOptions = {}): Promise<SigV4Result> {
  const method = o.method ?? 'GET';
  const path = o.path ?? '/jobs';
  const query = o.query ?? {};
  const headers: Record<string, string> = { host: `127.0.0.1:${port}`, ...o.extraHeaders };
  if (o.body !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(Buffer.byteLength(o.body));
  }
  let signedHeaders = headers;
  if (!o.unsigned) {
    const signer = new SignatureV4({
      credentials: o.credentials ?? CREDS,
      region: o.region ?? REGION,
      service: o.service ?? 'iot',
      sha256: Sha256,
      applyChecksum: o.applyChecksum ?? true,
    });
    const signed = await signer.sign(
      new HttpRequest({
        method,
        protocol: 'http:',
        hostname: '127.0.0.1',
        port,
        path,
        query,
        headers,
        ...(o.body !== undefined && { body: o.body }),
      }),
      o.signingDate ? { signingDate: o.signingDate } : {},
    );
    signedHeaders = signed.headers as Record<string, string>;
  }
  const target = { path, query: { ...query }, headers: { ...signedHeaders } };
  o.mutate?.(target);
  const sentBody = o.sentBody ?? o.body;
  if (sentBody !== undefined) target.headers['content-length'] = String(Buffer.byteLength(sentBody));
  const { host: _host, ...fetchHeaders } = target.headers;
  const res = await fetch(`http://127.0.0.1:${port}${target.path}${encodeQuery(target.query)}`, {
    method,
    headers: fetchHeaders,
    ...(sentBody !== undefined && { body: sentBody }),
  });
  return (await res.json()) as SigV4Result;
}

function assertRefused(r: SigV4Result, pattern: RegExp): void {
  assert.equal(r.ok, false, 'request should have been refused');
  if (!r.ok) assert.match(r.message, pattern);
}

describe('verifySigV4', () => {
  test('accepts a signed GET with query parameters that need escaping', async () => {
    serverNow = Date.now();
    const r = await send({ query: { maxResults: '5', nextToken: 'a+b/c= d~*' } });
    assert.deepEqual(r, { ok: true, accessKeyId: CREDS.accessKeyId });
  });

  test('accepts a PUT with a JSON body and an escaped path label', async () => {
    serverNow = Date.now();
    const r = await send({
      method: 'PUT',
      path: `/things/${encodeURIComponent('thing:one')}/jobs/job-1/cancel`,
      query: { force: 'true' },
      body: JSON.stringify({ statusDetails: { a: 'b' } }),
    });
    assert.deepEqual(r, { ok: true, accessKeyId: CREDS.accessKeyId });
  });

  test('accepts a body signed without x-amz-content-sha256', async () => {
    serverNow = Date.now();
    const r = await send({ method: 'POST', path: '/things/t1', body: '{"x":1}', applyChecksum: false });
    assert.deepEqual(r, { ok: true, accessKeyId: CREDS.accessKeyId });
  });

  test('refuses an unsigned request', async () => {
    assertRefused(await send({ unsigned: true }), /Missing Authentication Token/);
  });

  test('refuses a wrong secret key', async () => {
    serverNow = Date.now();
    const r = await send({ credentials: { accessKeyId: CREDS.accessKeyId, secretAccessKey: 'wrong' } });
    assertRefused(r, /signature we calculated does not match/);
  });

  test('refuses an unknown access key id', async () => {
    serverNow = Date.now();
    const r = await send({
      credentials: { accessKeyId: 'AKIDOTHER', secretAccessKey: CREDS.secretAccessKey },
    });
    assertRefused(r, /security token included in the request is invalid/);
  });

  test('refuses a signature scoped to another region or service', async () => {
    serverNow = Date.now();
    assertRefused(await send({ region: 'eu-west-1' }), /valid region: expected 'us-west-2', got 'eu-west-1'/);
    assertRefused(await send({ service: 's3' }), /correct service: 'iot'/);
  });

  test('refuses a tampered body (with and without the checksum header)', async () => {
    serverNow = Date.now();
    const withHeader = await send({ method: 'PUT', path: '/jobs/j1', body: '{"a":1}', sentBody: '{"a":2}' });
    assertRefused(withHeader, /x-amz-content-sha256 header does not match/);
    const withoutHeader = await send({
      method: 'PUT',
      path: '/jobs/j1',
      body: '{"a":1}',
      sentBody: '{"a":2}',
      applyChecksum: false,
    });
    assertRefused(withoutHeader, /signature we calculated does not match/);
  });

  test('refuses a tampered query, path or signed header', async () => {
    serverNow = Date.now();
    const q = await send({
      query: { force: 'false' },
      mutate: (t) => {
        t.query.force = 'true';
      },
    });
    assertRefused(q, /does not match/);
    const p = await send({
      path: '/jobs/a',
      mutate: (t) => {
        t.path = '/jobs/b';
      },
    });
    assertRefused(p, /does not match/);
    const h = await send({
      extraHeaders: { 'x-amz-user-agent': 'one' },
      mutate: (t) => {
        t.headers['x-amz-user-agent'] = 'two';
      },
    });
    assertRefused(h, /does not match/);
  });

  test('refuses UNSIGNED-PAYLOAD', async () => {
    serverNow = Date.now();
    const r = await send({
      method: 'PUT',
      path: '/jobs/j1',
      body: '{}',
      extraHeaders: { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
    });
    assertRefused(r, /UNSIGNED-PAYLOAD is not accepted/);
  });

  test('enforces the 15 minute clock-skew window both ways', async () => {
    const signingDate = new Date();
    serverNow = signingDate.getTime() + 14 * 60_000;
    assert.equal((await send({ signingDate })).ok, true, '14 minutes late is accepted');
    serverNow = signingDate.getTime() + 16 * 60_000;
    assertRefused(await send({ signingDate }), /Signature expired/);
    serverNow = signingDate.getTime() - 16 * 60_000;
    assertRefused(await send({ signingDate }), /Signature not yet current/);
    serverNow = Date.now();
  });

  test('refuses a malformed Authorization header', async () => {
    serverNow = Date.now();
    const r = await send({
      mutate: (t) => {
        t.headers.authorization = 'AWS4-HMAC-SHA256 Credential=AKIDLOCALTEST/x';
      },
    });
    assertRefused(r, /requires Credential, SignedHeaders and Signature/);
    const basic = await send({
      mutate: (t) => {
        t.headers.authorization = 'Basic Zm9vOmJhcg==';
      },
    });
    assertRefused(basic, /only AWS4-HMAC-SHA256/);
  });
});
