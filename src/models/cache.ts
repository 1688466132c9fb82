/**
 * On-disk embedding cache. One file per (model, settings) key under the cache directory:
 * records of [20-byte SHA-1 of the text][dim float32][8-byte checksum of both], appended. A
 * second run over the same texts with the same model and settings re-encodes nothing. A record
 * whose checksum fails, or whose values are not finite (bytes overwritten on disk), is not
 * served: the text is encoded again, and the count is reported.
 */
import { createHash } from 'node:crypto';
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, statSync, truncateSync } from 'node:fs';
import { basename, join } from 'node:path';
import { weightFiles } from './weights.js';
import { withPath } from '../util/atomic.js';

const HASH_BYTES = 20;
const CHECK_BYTES = 8;
/** Part of every cache file's key: files of the earlier format (no checksums) are not read. */
const FORMAT = 2;

export class EmbeddingCache {
  private readonly entries = new Map<string, Float32Array>();
  private pending: Buffer[] = [];
  /** Records dropped at load: checksum failed or values not finite. */
  corrupt = 0;

  private constructor(
    private readonly path: string,
    private readonly dim: number,
  ) {}

  /** Opens (or creates) the cache file for `key` in `dir`. */
  static open(dir: string, key: string, dim: number): EmbeddingCache {
    const name = createHash('sha256').update(`${FORMAT}\u0000${key}`).digest('hex').slice(0, 32);
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
   * Fingerprint of a model directory: its config and tokenizer files whole, and for every weight
   * file (one, or the shards of model.safetensors.index.json) its size, modification and status
   * change times — an edit in place changes the ctime even where a tool restores the mtime —
   * and a sampled hash: the first 64 KiB (the safetensors header) and 64 blocks of 4 KiB spread
   * over the file. Hashing gigabytes of weights on every run would cost seconds.
   */
  static modelFingerprint(dir: string): string {
    const h = createHash('sha256');
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', '1_Pooling/config.json', 'sentence_bert_config.json', 'modules.json']) {
      const p = join(dir, f);
      if (existsSync(p)) h.update(f).update(readFileSync(p));
    }
    for (const weights of weightFiles(dir)) {
      const st = statSync(weights);
      h.update(`${basename(weights)}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`);
      const fd = openSync(weights, 'r');
      try {
        const head = Buffer.alloc(Math.min(st.size, 65536));
        readSync(fd, head, 0, head.length, 0);
        h.update(head);
        const block = Buffer.alloc(Math.min(st.size, 4096));
        for (let i = 0; i < 64 && st.size > 0; i++) {
          readSync(fd, block, 0, block.length, Math.floor(((st.size - block.length) * i) / 63));
          h.update(block);
        }
      } finally {
        closeSync(fd);
      }
    }
    return h.digest('hex');
  }

  private load(): void {
    if (!existsSync(this.path)) return;
    const buf = readFileSync(this.path);
    const body = HASH_BYTES + 4 * this.dim;
    const record = body + CHECK_BYTES;
    // A torn final record (a crash or a full disk mid-append) is cut off, so appends stay aligned.
    if (buf.length % record) truncateSync(this.path, buf.length - (buf.length % record));
    for (let off = 0; off + record <= buf.length; off += record) {
      const vec = new Float32Array(this.dim);
      new Uint8Array(vec.buffer).set(buf.subarray(off + HASH_BYTES, off + body));
      if (!checksum(buf.subarray(off, off + body)).equals(buf.subarray(off + body, off + record)) || !vec.every(Number.isFinite)) {
        this.corrupt++;
        continue;
      }
      this.entries.set(buf.toString('hex', off, off + HASH_BYTES), vec);
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
    const copy = vec.slice();
    this.entries.set(key, copy);
    const body = Buffer.concat([Buffer.from(key, 'hex'), Buffer.from(copy.buffer)]);
    this.pending.push(body, checksum(body));
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

function checksum(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest().subarray(0, CHECK_BYTES);
}

function hashText(text: string): string {
  return createHash('sha1').update(text).digest('hex');
}
