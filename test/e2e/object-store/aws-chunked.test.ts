import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { describe, test } from 'node:test';
import {
  AwsChunkedDecoder,
  hasAwsChunked,
  stripAwsChunked,
} from '../../../src/cloud/object-store/aws-chunked.ts';

// Decoder of the aws-chunked framing the store applies to uploads (kept next to the store's e2e tests).

function frame(payload: Buffer, chunkSize: number, signed: boolean, trailer: string[]): Buffer {
  const parts: Buffer[] = [];
  const sig = signed ? `;chunk-signature=${'a'.repeat(64)}` : '';
  for (let i = 0; i < payload.length; i += chunkSize) {
    const c = payload.subarray(i, i + chunkSize);
    parts.push(Buffer.from(`${c.length.toString(16)}${sig}\r\n`), c, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`0${sig}\r\n`));
  for (const t of trailer) parts.push(Buffer.from(`${t}\r\n`));
  parts.push(Buffer.from('\r\n'));
  return Buffer.concat(parts);
}

async function decode(wire: Buffer, pieceSize: number): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for (let i = 0; i < wire.length; i += pieceSize) pieces.push(wire.subarray(i, i + pieceSize));
  const decoder = new AwsChunkedDecoder();
  const [out] = await Promise.all([buffer(decoder), pipeline(Readable.from(pieces), decoder)]);
  return out;
}

describe('AwsChunkedDecoder', () => {
  const payload = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 13) % 256));

  for (const [signed, trailer] of [
    [false, ['x-amz-checksum-crc32:AAAAAA==']],
    [true, []],
    [true, ['x-amz-checksum-crc32:AAAAAA==', `x-amz-trailer-signature:${'b'.repeat(64)}`]],
  ] as const) {
    test(`signed=${signed} trailers=${trailer.length}: payload restored however the wire is split`, async () => {
      const wire = frame(payload, 1024, signed, [...trailer]);
      for (const pieceSize of [1, 7, 1024, wire.length]) {
        assert.deepEqual(await decode(wire, pieceSize), payload, `piece size ${pieceSize}`);
      }
    });
  }

  test('an empty payload', async () => {
    assert.equal((await decode(Buffer.from('0\r\n\r\n'), 1)).length, 0);
  });

  test('truncated or malformed framing is an error, never a short object', async () => {
    const wire = frame(payload, 1024, false, []);
    await assert.rejects(decode(wire.subarray(0, wire.length - 3), 100), /ended before the final chunk/);
    await assert.rejects(decode(Buffer.from('zz\r\nabc\r\n0\r\n\r\n'), 4), /bad chunk size/);
    await assert.rejects(decode(Buffer.from('3\r\nabcX\r\n0\r\n\r\n'), 4), /missing CR/);
    await assert.rejects(decode(Buffer.from('0\r\n\r\nextra'), 4), /data after the final chunk/);
  });

  test('Content-Encoding helpers', () => {
    assert.equal(hasAwsChunked('aws-chunked'), true);
    assert.equal(hasAwsChunked('gzip, AWS-Chunked'), true);
    assert.equal(hasAwsChunked('gzip'), false);
    assert.equal(hasAwsChunked(undefined), false);
    assert.equal(stripAwsChunked('aws-chunked'), undefined);
    assert.equal(stripAwsChunked('aws-chunked,gzip'), 'gzip');
  });
});
