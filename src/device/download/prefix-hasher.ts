import { createHash, type Hash } from 'node:crypto';
import { read } from 'node:fs';
import { promisify } from 'node:util';
import { AbortedError } from '../../shared/errors.ts';
import type { ByteRanges } from './byte-ranges.ts';

const readAt = promisify(read);

/**
 * The sha256 of the file in order, while ranges arrive out of order: it covers the completed prefix and
 * grows with it. The connection writing at the prefix hashes its bytes as they reach the disk (the
 * StagedWriter's in-order hash: no extra read, the single-connection path is unchanged); bytes that other
 * connections wrote further on are read back from the `.part` (page cache) when the prefix reaches them.
 * Only bytes whose writes completed are ever hashed: the done set is updated after the write callback.
 */
export class PrefixHasher {
  readonly hash: Hash = createHash('sha256');
  /** Bytes hashed: `[0, pos)`. */
  pos = 0;
  private inline: object | undefined;
  private catching: Promise<void> | undefined;
  private buf: Buffer | undefined;

  constructor(
    private readonly fd: number,
    private readonly done: ByteRanges,
    private readonly signal: AbortSignal,
  ) {}

  /** A writer starting at `start` may hash inline (it is at the prefix and nobody else hashes). */
  claim(owner: object, start: number): Hash | undefined {
    if (this.inline || this.catching || start !== this.pos) return undefined;
    this.inline = owner;
    return this.hash;
  }

  /** The inline writer's on-disk prefix grew to `written`. */
  advanced(owner: object, written: number): void {
    if (this.inline === owner) this.pos = written;
  }

  /** The inline writer stopped (settled) at `written`; read back whatever others completed after it. */
  release(owner: object, written: number): void {
    if (this.inline !== owner) return;
    this.pos = written;
    this.inline = undefined;
    this.catchUp();
  }

  /** Hashes the done bytes after the prefix that no writer hashes inline (runs in the background). */
  catchUp(): void {
    if (this.inline || this.catching || this.done.runEnd(this.pos) <= this.pos) return;
    this.catching = this.readBack().finally(() => {
      this.catching = undefined;
    });
    this.catching.catch(() => {}); // surfaced by finish()
  }

  /** Resolves when no read-back is running (rejects with its error). */
  async idle(): Promise<void> {
    while (this.catching) await this.catching;
  }

  /** Hashes up to `size` (everything must be done by now) and returns the hex digest. */
  async finish(size: number): Promise<string> {
    await this.idle();
    if (this.pos < size) {
      this.catchUp();
      await this.idle();
    }
    if (this.pos !== size) throw new Error(`hash covers ${this.pos} of ${size} bytes`);
    return this.hash.digest('hex');
  }

  private async readBack(): Promise<void> {
    this.buf ??= Buffer.allocUnsafe(256 * 1024);
    const buf = this.buf;
    for (;;) {
      const end = this.done.runEnd(this.pos);
      if (end <= this.pos) return;
      if (this.signal.aborted) throw new AbortedError('download aborted');
      const want = Math.min(buf.length, end - this.pos);
      const { bytesRead } = await readAt(this.fd, buf, 0, want, this.pos);
      if (bytesRead <= 0) throw new Error(`short read of the .part at ${this.pos}`);
      this.hash.update(buf.subarray(0, bytesRead));
      this.pos += bytesRead;
    }
  }
}
