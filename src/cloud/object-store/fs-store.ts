import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, type ReadStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AwsChunkedDecoder, hasAwsChunked, stripAwsChunked } from './aws-chunked.ts';
import {
  FilesystemStore,
  S3Error,
  S3Object,
  type S3rverMetadata,
  type S3rverObject,
} from './s3rver-internals.ts';

function isEnoent(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === 'ENOENT';
}

function openReadStream(path: string, range?: { start: number; end: number }): Promise<ReadStream> {
  return new Promise((resolve, reject) => {
    const stream = createReadStream(path, range);
    stream.once('error', reject);
    stream.once('open', () => {
      stream.off('error', reject);
      resolve(stream);
    });
  });
}

/**
 * s3rver's FilesystemStore with the object read/write paths replaced. The layout on disk is unchanged
 * (`<dir>/<bucket>/<key>._S3rver_object` + `.md5` + `._S3rver_metadata.json`), so a directory written by
 * plain s3rver still reads back. What is fixed, all found by reading lib/stores/filesystem.js (3.7.1):
 *
 * - putObject resolved when its hashing Transform finished, not when the file was flushed, so the
 *   response could precede the last bytes reaching disk; a write-stream error was never handled (an
 *   'error' event with no listener crashes the process); and an aborted upload left a truncated object
 *   in place. Here the body goes through stream.pipeline to a temporary file that is renamed over the
 *   object only once complete.
 * - `Range: bytes=0-0` returned the whole object (`options.end || Infinity` treats 0 as absent).
 * - A range on an empty object claimed one byte. S3 answers 416 InvalidRange (RFC 9110 §14.1.2: no
 *   satisfiable range in an empty representation).
 * - An `aws-chunked` body was stored with its framing; it is decoded here (see aws-chunked.ts).
 * - putPart had the same flush race, and joined the request's `uploadId` / `partNumber` query values into a
 *   file path unchecked (`uploadId=../../x` writes outside the store). Here both are validated.
 *
 * Reads stay streaming from disk (fs.createReadStream over the requested byte window), so memory use is
 * constant in the object size.
 */
export class SafeFilesystemStore extends FilesystemStore {
  override async getObject(
    bucket: string,
    key: string,
    options?: { start?: number; end?: number },
  ): Promise<S3rverObject | null> {
    let metadata: S3rverMetadata;
    try {
      metadata = await this.getMetadata(bucket, key);
    } catch (err) {
      if (isEnoent(err)) return null;
      throw err;
    }
    const path = this.getResourcePath(bucket, key, 'object');
    const size = Number(metadata['content-length']);
    const ranged = options !== undefined && (options.start !== undefined || options.end !== undefined);
    try {
      if (!ranged) return new S3Object(bucket, key, await openReadStream(path), metadata);
      const start = options.start ?? 0;
      const end = Math.min(options.end ?? Number.POSITIVE_INFINITY, size - 1);
      const object = new S3Object(bucket, key, null, metadata);
      object.range = { start, end };
      // content stays null for an unsatisfiable range: the controller turns that into 416 InvalidRange.
      if (!Number.isSafeInteger(start) || start < 0 || start >= size || end < start) return object;
      object.content = await openReadStream(path, { start, end });
      return object;
    } catch (err) {
      // Deleted between the metadata read and the open.
      if (isEnoent(err)) return null;
      throw err;
    }
  }

  /** Streams source (decoding aws-chunked if asked) into a temp file renamed to `target` when complete. */
  async #writeFile(
    source: Readable,
    target: string,
    awsChunked: boolean,
  ): Promise<{ size: number; md5: string }> {
    await mkdir(dirname(target), { recursive: true });
    const tmpPath = `${target}.upload-${randomUUID()}`;
    const md5 = createHash('md5');
    let size = 0;
    const stages: Transform[] = awsChunked ? [new AwsChunkedDecoder()] : [];
    stages.push(
      new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          md5.update(chunk);
          size += chunk.length;
          callback(null, chunk);
        },
      }),
    );
    try {
      await pipeline([source, ...stages, createWriteStream(tmpPath)]);
      await rename(tmpPath, target);
    } catch (err) {
      await rm(tmpPath, { force: true });
      throw err;
    }
    return { size, md5: md5.digest('hex') };
  }

  async putPart(
    bucket: string,
    uploadId: string,
    partNumber: string | number,
    content: Readable & { headers?: Record<string, string | string[] | undefined> },
  ): Promise<{ size: number; md5: string }> {
    // UploadId is s3rver's randomBytes(16).toString('hex'); part numbers are 1..10000 (S3 API, UploadPart).
    if (typeof uploadId !== 'string' || !/^[0-9a-f]{32}$/.test(uploadId)) {
      throw new S3Error('NoSuchUpload', 'The specified upload does not exist.', {
        UploadId: String(uploadId),
      });
    }
    const part = Number(partNumber);
    if (!/^\d{1,5}$/.test(String(partNumber)) || part < 1 || part > 10000) {
      throw new S3Error('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive', {
        ArgumentName: 'partNumber',
        ArgumentValue: String(partNumber),
      });
    }
    const partPath = join(this.getResourcePath(bucket, undefined, 'uploads'), uploadId, String(part));
    const encoding = content.headers?.['content-encoding'];
    const result = await this.#writeFile(
      content,
      partPath,
      typeof encoding === 'string' && hasAwsChunked(encoding),
    );
    await writeFile(`${partPath}.md5`, result.md5);
    return result;
  }

  override async putObject(object: S3rverObject): Promise<{ size: number; md5: string }> {
    const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
    const content = object.content;
    const source = Buffer.isBuffer(content) ? Readable.from([content]) : content;
    if (source === null) throw new Error('putObject without content');
    const metadata = { ...object.metadata };
    const encoding = metadata['content-encoding'];
    const awsChunked = typeof encoding === 'string' && hasAwsChunked(encoding);
    if (awsChunked) {
      const rest = stripAwsChunked(encoding);
      if (rest === undefined) delete metadata['content-encoding'];
      else metadata['content-encoding'] = rest;
    }
    const { size, md5: digest } = await this.#writeFile(source, objectPath, awsChunked);
    await this.putMetadata(object.bucket, object.key, metadata, digest);
    return { size, md5: digest };
  }
}
