import { Transform, type TransformCallback } from 'node:stream';

/** Longest chunk-size line / trailer line we accept (the signed form carries a 64-hex signature). */
const MAX_LINE = 4096;

/**
 * Decodes an `aws-chunked` request body back into the object bytes.
 *
 * Framing (AWS S3 API "Signature Calculations for the Authorization Header: Transferring Payload in
 * Multiple Chunks" and "... Including Trailing Headers"):
 *
 *   <hex-size>[;chunk-signature=<sig>]\r\n<bytes>\r\n ... 0[;chunk-signature=<sig>]\r\n[<trailer>\r\n]*\r\n
 *
 * s3rver stores request bodies verbatim, so without this a client that streams with aws-chunked (the
 * default of @aws-sdk/client-s3 >= 3.729 and boto3 >= 1.36 unless told `WHEN_REQUIRED`) would get the
 * framing back inside its object. Chunk signatures and trailing checksums are not verified (see
 * docs/object-store.md); only the framing is checked, so a truncated body is an error, never a short object.
 */
export class AwsChunkedDecoder extends Transform {
  #state: 'header' | 'data' | 'data-cr' | 'data-lf' | 'trailer' | 'done' = 'header';
  #line: Buffer[] = [];
  #lineLength = 0;
  #remaining = 0;
  /** Bytes of payload produced so far (compare with x-amz-decoded-content-length if needed). */
  decodedLength = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      let i = 0;
      while (i < chunk.length) {
        switch (this.#state) {
          case 'data': {
            const n = Math.min(this.#remaining, chunk.length - i);
            this.push(chunk.subarray(i, i + n));
            this.decodedLength += n;
            this.#remaining -= n;
            i += n;
            if (this.#remaining === 0) this.#state = 'data-cr';
            break;
          }
          case 'data-cr':
            if (chunk[i] !== 0x0d) throw new Error('aws-chunked: missing CR after chunk data');
            i++;
            this.#state = 'data-lf';
            break;
          case 'data-lf':
            if (chunk[i] !== 0x0a) throw new Error('aws-chunked: missing LF after chunk data');
            i++;
            this.#state = 'header';
            break;
          case 'header':
          case 'trailer': {
            const nl = chunk.indexOf(0x0a, i);
            const end = nl === -1 ? chunk.length : nl + 1;
            this.#line.push(chunk.subarray(i, end));
            this.#lineLength += end - i;
            i = end;
            if (this.#lineLength > MAX_LINE) throw new Error('aws-chunked: header line too long');
            if (nl !== -1) this.#onLine();
            break;
          }
          case 'done':
            // Anything after the terminating empty line is not part of the framing.
            throw new Error('aws-chunked: data after the final chunk');
        }
      }
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    if (this.#state !== 'done') callback(new Error('aws-chunked: body ended before the final chunk'));
    else callback();
  }

  #onLine(): void {
    const raw = Buffer.concat(this.#line).toString('latin1');
    this.#line = [];
    this.#lineLength = 0;
    if (!raw.endsWith('\r\n')) throw new Error('aws-chunked: line not terminated by CRLF');
    const text = raw.slice(0, -2);
    if (this.#state === 'trailer') {
      // Trailing headers (x-amz-checksum-*, x-amz-trailer-signature) end with an empty line.
      if (text === '') this.#state = 'done';
      return;
    }
    const hex = (text.split(';')[0] ?? '').trim();
    if (!/^[0-9a-fA-F]{1,16}$/.test(hex)) throw new Error('aws-chunked: bad chunk size line');
    const size = Number.parseInt(hex, 16);
    if (!Number.isSafeInteger(size)) throw new Error('aws-chunked: chunk size too large');
    if (size === 0) this.#state = 'trailer';
    else {
      this.#remaining = size;
      this.#state = 'data';
    }
  }
}

/** True when a Content-Encoding header value lists `aws-chunked`. */
export function hasAwsChunked(contentEncoding: string | undefined): boolean {
  return (contentEncoding ?? '').split(',').some((t) => t.trim().toLowerCase() === 'aws-chunked');
}

/** Content-Encoding with `aws-chunked` removed (S3 does not store it), or undefined if nothing is left. */
export function stripAwsChunked(contentEncoding: string | undefined): string | undefined {
  const rest = (contentEncoding ?? '')
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '' && t.toLowerCase() !== 'aws-chunked');
  return rest.length > 0 ? rest.join(', ') : undefined;
}
