import { createCipheriv, createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/**
 * Deterministic firmware images for the demo, the tests, the benchmarks and the simulator: an AES-256-CTR
 * keystream over a fixed key derived from `seed`, so the same (seed, size) gives the same bytes on every
 * machine, at memory speed, without holding the image in memory. Incompressible, like a real ubifs image.
 */
export function deterministicImageStream(size: number, seed = 'ota-progress'): Readable {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const block = Buffer.alloc(1024 * 1024);
  let remaining = size;
  return new Readable({
    highWaterMark: block.length,
    read() {
      if (remaining <= 0) {
        this.push(null);
        return;
      }
      const n = Math.min(remaining, block.length);
      remaining -= n;
      this.push(cipher.update(n === block.length ? block : block.subarray(0, n)));
    },
  });
}

export async function writeDeterministicImage(
  path: string,
  size: number,
  seed?: string,
): Promise<{ path: string; size: number; sha256: string }> {
  const hash = createHash('sha256');
  const source = deterministicImageStream(size, seed);
  source.on('data', (chunk: Buffer) => hash.update(chunk));
  await pipeline(source, createWriteStream(path));
  return { path, size, sha256: hash.digest('hex') };
}
