/**
 * Rows that need not fit in memory: a float32 `.npy` written a block at a time and read back a
 * block at a time, so a candidate pool bigger than RAM can be searched exactly (RSS bounded by
 * the search's block, not the pool). The file is a tracked temp file: removed when the job ends,
 * fails or is interrupted.
 */
import { closeSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { npyHeader } from '../util/npy.js';
import { settled, tracked, withPath } from '../util/atomic.js';

/** What search reads its corpus through: `count` rows of `dim` floats, a range at a time. */
export interface RowSource {
  dim: number;
  count: number;
  /** Rows [lo, hi); the array may be reused by the next call. */
  rows(lo: number, hi: number): Float32Array;
}

/**
 * @example
 *   const f = RowFile.create('/tmp/.pool.npy.tmp', 1024, 1_000_000);
 *   f.append(block); …; const rows = f.rows(0, 65536); f.remove();
 */
export class RowFile implements RowSource {
  private written = 0;
  private readonly header: number;
  /** Reused across reads: fresh memory costs a page fault per 4 KB (a 100 MB block read 10× slower). */
  private buffer = new Float32Array(0);

  private constructor(
    readonly path: string,
    private readonly fd: number,
    readonly dim: number,
    readonly count: number,
  ) {
    const head = npyHeader(count, dim);
    this.header = head.length;
    writeSync(fd, head, 0, head.length, 0);
  }

  /** A new file for `count` rows of `dim` floats at `path` (overwritten). */
  static create(path: string, dim: number, count: number): RowFile {
    try {
      return new RowFile(tracked(path), openSync(path, 'w+'), dim, count);
    } catch (e) {
      settled(path);
      throw withPath(path, e);
    }
  }

  /** Appends the next rows (in order). */
  append(rows: Float32Array): void {
    const bytes = new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength);
    let done = 0;
    while (done < bytes.length) done += writeSync(this.fd, bytes, done, Math.min(bytes.length - done, 1 << 30), this.header + this.written * this.dim * 4 + done);
    this.written += rows.length / this.dim;
  }

  /** Rows [lo, hi), valid until the next call (copy them to keep them). */
  rows(lo: number, hi: number): Float32Array {
    if (hi > this.written) throw new Error(`${this.path}: rows ${lo}..${hi} asked, ${this.written} written`);
    const size = (hi - lo) * this.dim;
    if (this.buffer.length < size) this.buffer = new Float32Array(size);
    const out = this.buffer.subarray(0, size);
    const bytes = new Uint8Array(out.buffer, 0, size * 4);
    for (let done = 0; done < bytes.length; ) {
      const n = readSync(this.fd, bytes, done, Math.min(bytes.length - done, 1 << 30), this.header + lo * this.dim * 4 + done);
      if (n === 0) throw new Error(`${this.path}: truncated`);
      done += n;
    }
    return out;
  }

  /** Closes and deletes the file. */
  remove(): void {
    closeSync(this.fd);
    rmSync(this.path, { force: true });
    settled(this.path);
  }
}
