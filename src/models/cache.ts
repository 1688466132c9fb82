/**
 * On-disk embedding cache. One file per (model, settings) key under the cache directory:
 * records of [20-byte SHA-1 of the text][dim float32], appended. A second run over the same
 * texts with the same model and settings re-encodes nothing.
 */
import { createHash } from 'node:crypto';
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { withPath } from '../util/atomic.js';

const HASH_BYTES = 20;

export class EmbeddingCache {
  private readonly entries = new Map<string, Float32Array>();
  private pending: Buffer[] = [];

  private constructor(
    private readonly path: string,
    private readonly dim: number,
  ) {}

  /** Opens (or creates) the cache file for `key` in `dir`. */
  static open(dir: string, key: string, dim: number): EmbeddingCache {
    const name = createHash('sha256').update(key).digest('hex').slice(0, 32);
    const path = join(dir, `${name}.bin`);
    try {
      mkdirSync(dir, { recursive: true });
      closeSync(openSync(path, 'a')); // writable, checked before anything is encoded
    } catch (e) {
      throw withPath(path, e);
    }
    const cache = new EmbeddingCache(path, dim);
    cache.load();
    return cache;
  }

  /**
   * Fingerprint of a model directory: config, tokenizer, and the weights file's header, size
   * and modification time (hashing gigabytes of weights on every run would cost seconds).
   */
  static modelFingerprint(dir: string): string {
    const h = createHash('sha256');
    for (const f of ['config.json', 'tokenizer.json']) {
      const p = join(dir, f);
      if (existsSync(p)) h.update(readFileSync(p));
    }
    const weights = join(dir, 'model.safetensors');
    const st = statSync(weights);
    h.update(`${st.size}:${st.mtimeMs}`);
    const fd = openSync(weights, 'r');
    const head = Buffer.alloc(Math.min(st.size, 65536));
    readSync(fd, head, 0, head.length, 0);
    closeSync(fd);
    return h.update(head).digest('hex');
  }

  private load(): void {
    if (!existsSync(this.path)) return;
    const buf = readFileSync(this.path);
    const record = HASH_BYTES + 4 * this.dim;
    // A torn final record (a crash or a full disk mid-append) is cut off, so appends stay aligned.
    if (buf.length % record) truncateSync(this.path, buf.length - (buf.length % record));
    for (let off = 0; off + record <= buf.length; off += record) {
      const key = buf.toString('hex', off, off + HASH_BYTES);
      const vec = new Float32Array(this.dim);
      new Uint8Array(vec.buffer).set(buf.subarray(off + HASH_BYTES, off + record));
      this.entries.set(key, vec);
    }
  }

  get size(): number {
    return this.entries.size;
  }

  get(text: string): Float32Array | undefined {
    return this.entries.get(hashText(text));
  }

  put(text: string, vec: Float32Array): void {
    const key = hashText(text);
    if (this.entries.has(key)) return;
    const copy = Float32Array.from(vec);
    this.entries.set(key, copy);
    this.pending.push(Buffer.from(key, 'hex'), Buffer.from(copy.buffer));
    if (this.pending.length > 2048) this.flush();
  }

  flush(): void {
    if (this.pending.length === 0) return;
    try {
      appendFileSync(this.path, Buffer.concat(this.pending));
    } catch (e) {
      throw withPath(this.path, e);
    }
    this.pending = [];
  }
}

function hashText(text: string): string {
  return createHash('sha1').update(text).digest('hex');
}
