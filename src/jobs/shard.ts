/**
 * Sharded jobs — the spec's 多卡 across machines, on the batch engines users already run
 * (Kubernetes Indexed Jobs, Slurm arrays, AWS Batch arrays). `--shard i/N` runs a job's
 * encoding for the i-th of N slices of every text list it encodes and writes those rows
 * (`call-K.npy`) and a manifest into `<shard-dir>/shard-i-of-N/`; `embedtune merge <shard-dir>`
 * checks the N shards agree and runs the rest of the job (greedy dedup, search, metrics) on
 * their rows. Encoding is planned in blocks of texts (BLOCK_TEXTS) and a shard takes whole
 * blocks, so the merged output is byte-identical to the unsharded run's. Rows are float32, or
 * with `dtype: 'f16'` float16 (half the files; the merge then works on rows rounded to half
 * precision, so its output is no longer byte-identical to the unsharded run's).
 */
import { openRun, type RunOptions } from '../run.js';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { writeAtomically, writeFileAtomic } from '../data/jsonl.js';
import { BLOCK_TEXTS, type EncodeOptions, type Embeddings, shareRows } from '../models/encoder.js';
import { EmbeddingCache } from '../models/cache.js';
import { withPath } from '../util/atomic.js';
import { fromHalfBits, toHalfBits } from '../models/safetensors.js';
import { clean } from './clean.js';
import { type BlockEncoder, loadEncoder, type ModelOptions, type TextEncoder } from './common.js';
import { encodeFile } from './encode.js';
import { npyHeader } from '../util/npy.js';
import { evaluate } from './evaluate.js';
import { mine } from './mine.js';

export interface Shard {
  index: number;
  count: number;
}

/** How a shard stores its rows. */
export type ShardDtype = 'f32' | 'f16';

/** The jobs that shard: what each runs, and whether it takes normalisation from the model. */
const JOBS = {
  encode: { run: encodeFile as (o: never) => Promise<unknown>, normalizeFromModel: true },
  clean: { run: clean as (o: never) => Promise<unknown>, normalizeFromModel: false },
  mine: { run: mine as (o: never) => Promise<unknown>, normalizeFromModel: false },
  eval: { run: evaluate as (o: never) => Promise<unknown>, normalizeFromModel: false },
};
export type ShardJob = keyof typeof JOBS;

/** Environment variables that carry an array job's index, in the order they are tried. */
const INDEX_VARIABLES = ['JOB_COMPLETION_INDEX', 'SLURM_ARRAY_TASK_ID', 'AWS_BATCH_JOB_ARRAY_INDEX'];

/**
 * `"i/N"`, or `"auto/N"` with i from the array job's environment (Kubernetes
 * JOB_COMPLETION_INDEX, Slurm SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN, AWS Batch
 * AWS_BATCH_JOB_ARRAY_INDEX).
 * @example parseShard('1/4'); // { index: 1, count: 4 }
 */
export function parseShard(spec: string, env: NodeJS.ProcessEnv = process.env): Shard {
  const m = /^(\d+|auto)\/(\d+)$/.exec(spec.trim());
  if (!m) throw new Error(`--shard "${spec}": expected i/N (e.g. 0/4) or auto/N`);
  const count = Number(m[2]);
  if (count < 1) throw new Error(`--shard ${spec}: the shard count must be at least 1`);
  let index: number;
  if (m[1] === 'auto') {
    const name = INDEX_VARIABLES.find((v) => env[v] !== undefined && env[v] !== '');
    if (!name) throw new Error(`--shard ${spec}: none of ${INDEX_VARIABLES.join(', ')} is set; give the index (i/${count})`);
    const offset = name === 'SLURM_ARRAY_TASK_ID' ? Number(env.SLURM_ARRAY_TASK_MIN ?? 0) : 0;
    index = Number(env[name]) - offset;
    if (!Number.isInteger(index) || index < 0) throw new Error(`--shard ${spec}: ${name}=${env[name]} is not a shard index`);
  } else index = Number(m[1]);
  if (index >= count) throw new Error(`--shard ${spec}: index ${index} is not below the shard count ${count}`);
  return { index, count };
}

/**
 * The rows [lo, hi) of `n` texts that shard i of N encodes: whole blocks, spread evenly.
 * @example shardRows(45, { index: 1, count: 3 }, 8); // [16, 32]
 */
export function shardRows(n: number, shard: Shard, block = BLOCK_TEXTS): [number, number] {
  const blocks = Math.ceil(n / block);
  const b0 = Math.floor((shard.index * blocks) / shard.count);
  const b1 = Math.floor(((shard.index + 1) * blocks) / shard.count);
  return [Math.min(n, b0 * block), Math.min(n, b1 * block)];
}

/** One encode call of a job, as a shard recorded it. */
interface CallRecord {
  label: string;
  count: number;
  rows: [number, number];
  texts: string;
  settings: Record<string, unknown>;
  file: string;
}

interface Manifest {
  format: 'embedtune-shard/1';
  job: ShardJob;
  shard: Shard;
  /** The job's options as given (model as named), without the shard settings. */
  options: Record<string, unknown>;
  /** What makes the rows: the model's files, pooling, normalisation, width; and how they are stored (absent: f32). */
  encoder: { fingerprint: string; pooling: string; normalize: boolean; dim: number; blockTexts: number; dtype?: ShardDtype };
  calls: CallRecord[];
}

/** Hash of a text list (order and boundaries included). */
function textsHash(texts: readonly string[]): string {
  const h = createHash('sha256');
  for (const t of texts) h.update(`${Buffer.byteLength(t)}:`).update(t);
  return h.digest('hex');
}

/** The encode options that decide the rows (the rest — labels, cache, quiet — do not). */
function settings(o: EncodeOptions = {}): Record<string, unknown> {
  return { maxLength: o.maxLength ?? null, template: o.template ?? null, role: o.role ?? null, batchSize: o.batchSize ?? 32, attentionBudget: o.attentionBudget ?? null };
}

/** A shard run's encoder: encodes its rows of each call, writes them, and ends the job. */
class ShardWriter implements TextEncoder {
  private readonly calls: CallRecord[] = [];
  readonly normalize: boolean;
  readonly dim: number;
  readonly dir: string;

  constructor(
    private readonly encoder: BlockEncoder,
    private readonly folder: string,
    private readonly manifest: Omit<Manifest, 'calls' | 'encoder'>,
    private readonly dtype: ShardDtype,
  ) {
    this.normalize = encoder.normalize;
    this.dim = encoder.dim;
    this.dir = encoder.dir;
  }

  async encode(texts: readonly string[], o: EncodeOptions = {}): Promise<Embeddings> {
    const rows = shardRows(texts.length, this.manifest.shard, this.encoder.blockTexts);
    const e = await this.encoder.encode(texts, { ...o, sink: undefined, rows });
    const file = `call-${this.calls.length}.npy`;
    await writeAtomically(join(this.folder, file), async (w) => {
      await w.writeBytes(npyHeader(e.count, e.dim, this.dtype === 'f16' ? '<f2' : '<f4'));
      const step = 1 << 24;
      for (let i = 0; i < e.data.length; i += step) {
        const part = this.dtype === 'f16' ? toHalfBits(e.data.subarray(i, i + step)) : e.data.subarray(i, i + step);
        await w.writeBytes(Buffer.from(part.buffer, part.byteOffset, part.byteLength));
      }
    });
    this.calls.push({ label: o.label ?? 'encode', count: texts.length, rows, texts: textsHash(texts), settings: settings(o), file });
    return { data: new Float32Array(0), dim: this.dim, count: 0 };
  }

  async endOfEncoding(): Promise<void> {
    const manifest: Manifest = {
      ...this.manifest,
      encoder: { fingerprint: EmbeddingCache.modelFingerprint(this.encoder.dir), pooling: this.encoder.pooling, normalize: this.normalize, dim: this.dim, blockTexts: this.encoder.blockTexts, dtype: this.dtype },
      calls: this.calls,
    };
    writeFileAtomic(join(this.folder, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n'); // last: its presence means complete
    throw new ShardWritten(this.folder, this.calls.reduce((n, c) => n + c.rows[1] - c.rows[0], 0));
  }
}

/** Thrown through the job when a shard has written its rows: the job's remaining work is the merge's. */
class ShardWritten {
  constructor(
    readonly folder: string,
    readonly rows: number,
  ) {}
}

export interface ShardResult {
  folder: string;
  /** Texts this shard encoded, over all of the job's encode calls. */
  rows: number;
}

/**
 * Runs shard `shard` of a job: its rows of every encoding, written to
 * `<dir>/shard-i-of-N/`. The job's options are those of the unsharded run.
 * `dtype` f16 stores the rows in half precision.
 * @example await runShard('clean', { model: 'm', input: 'q.jsonl', output: 'out.jsonl' }, parseShard('0/4'), 'out.shards');
 */
export async function runShard(job: ShardJob, options: ModelOptions & { model: string } & Record<string, unknown>, shard: Shard, dir: string, dtype: ShardDtype = 'f32'): Promise<ShardResult> {
  if (dtype !== 'f32' && dtype !== 'f16') throw new Error(`--shard-dtype must be f32 or f16, got "${dtype}"`);
  const folder = join(dir, `shard-${shard.index}-of-${shard.count}`);
  try {
    mkdirSync(folder, { recursive: true });
  } catch (e) {
    throw withPath(folder, e);
  }
  await using run = openRun(options);
  await using encoder = await loadEncoder(options, run, JOBS[job].normalizeFromModel);
  // Threads, cache and verbosity don't change a row: shards may differ in them.
  const { quiet: _q, threads: _t, cacheDir: _c, progressFormat: _p, run: _r, ...recorded } = options;
  const writer = new ShardWriter(encoder, folder, { format: 'embedtune-shard/1', job, shard, options: recorded }, dtype);
  try {
    await JOBS[job].run({ ...options, run, model: writer } as never);
  } catch (e) {
    if (!(e instanceof ShardWritten)) throw e;
    const idle = e.rows === 0 ? ` (nothing to do here: shards take whole blocks of ${encoder.blockTexts} texts, and this job has fewer blocks than shards)` : '';
    run.log(`${job}: shard ${shard.index + 1} of ${shard.count}: ${e.rows} texts encoded${idle} → ${folder}; run \`embedtune merge ${dir}\` once all ${shard.count} are done`);
    return { folder, rows: e.rows };
  }
  throw new Error(`${job}: finished without encoding anything to shard`);
}

/** A merge's encoder: answers each of the job's encode calls with the shards' rows. */
class ShardReplay implements TextEncoder {
  private next = 0;
  private readonly dtype: ShardDtype;
  readonly normalize: boolean;
  readonly dim: number;
  readonly dir: string;

  constructor(
    private readonly folder: string,
    private readonly shards: Manifest[],
  ) {
    this.normalize = shards[0]!.encoder.normalize;
    this.dim = shards[0]!.encoder.dim;
    this.dtype = shards[0]!.encoder.dtype ?? 'f32';
    this.dir = String(shards[0]!.options.model);
  }

  async encode(texts: readonly string[], o: EncodeOptions = {}): Promise<Embeddings> {
    const k = this.next++;
    const call = this.shards[0]!.calls[k];
    if (!call) throw new Error(`merge: the job encodes more than the shards recorded (${this.shards[0]!.calls.length} calls)`);
    if (texts.length !== call.count || textsHash(texts) !== call.texts) {
      throw new Error(`merge: the texts of "${call.label}" differ from those the shards encoded (${call.count} texts then, ${texts.length} now): did an input file change?`);
    }
    if (JSON.stringify(settings(o)) !== JSON.stringify(call.settings)) throw new Error(`merge: "${call.label}" is encoded with other settings than the shards used`);
    const file = (m: Manifest) => join(this.folder, `shard-${m.shard.index}-of-${m.shard.count}`, m.calls[k]!.file);
    if (o.sink) {
      // Streamed in shard order, a 65,536-row piece at a time: the merge holds no whole pool.
      for (const m of this.shards) {
        const n = m.calls[k]!.rows[1] - m.calls[k]!.rows[0];
        for (let r = 0; r < n; r += 65536) o.sink(readShardRows(file(m), this.dim, n, r, Math.min(n, r + 65536), this.dtype));
      }
      return { data: new Float32Array(0), dim: this.dim, count: texts.length };
    }
    const e: Embeddings = { data: new Float32Array(texts.length * this.dim), dim: this.dim, count: texts.length };
    for (const m of this.shards) {
      const [lo, hi] = m.calls[k]!.rows;
      e.data.set(readShardRows(file(m), this.dim, hi - lo, 0, hi - lo, this.dtype), lo * this.dim);
    }
    shareRows(texts, e);
    return e;
  }

  async endOfEncoding(): Promise<void> {
    if (this.next !== this.shards[0]!.calls.length) throw new Error(`merge: the job encoded ${this.next} lists, the shards ${this.shards[0]!.calls.length}`);
  }
}

/** Rows [from, to) of a shard's float32 (or float16) .npy of `count` × `dim` rows (the header checked), as float32. */
function readShardRows(path: string, dim: number, count: number, from: number, to: number, dtype: ShardDtype = 'f32'): Float32Array {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw withPath(path, err);
  }
  try {
    const head = Buffer.alloc(10);
    readSync(fd, head, 0, 10, 0);
    const headerLength = head.readUInt16LE(8);
    const header = Buffer.alloc(headerLength);
    readSync(fd, header, 0, headerLength, 10);
    const text = header.toString('latin1');
    const shape = /'shape': \((\d+), (\d+)\)/.exec(text);
    const descr = dtype === 'f16' ? '<f2' : '<f4';
    if (!shape || Number(shape[1]) !== count || Number(shape[2]) !== dim || !text.includes(`'descr': '${descr}'`)) throw new Error(`${path}: expected ${count} × ${dim} ${dtype === 'f16' ? 'float16' : 'float32'} rows`);
    const width = dtype === 'f16' ? 2 : 4;
    const bytes = new Uint8Array((to - from) * dim * width);
    for (let done = 0; done < bytes.length; ) {
      const n = readSync(fd, bytes, done, Math.min(1 << 30, bytes.length - done), 10 + headerLength + from * dim * width + done);
      if (n === 0) throw new Error(`${path}: truncated (${done} of ${bytes.length} bytes of rows)`);
      done += n;
    }
    const rows = dtype === 'f16' ? fromHalfBits(new Uint16Array(bytes.buffer)) : new Float32Array(bytes.buffer);
    const bad = rows.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) throw new Error(`${path}: row ${from + Math.floor(bad / dim)} holds ${rows[bad]}: the shard's rows must be finite; run that shard again`);
    return rows;
  } finally {
    closeSync(fd);
  }
}

/** Reads and cross-checks the shards of `dir`: all N present once, complete, from one run. */
function readShards(dir: string): Manifest[] {
  if (!existsSync(dir)) throw new Error(`merge: ${dir} does not exist`);
  const folders = readdirSync(dir).filter((f) => /^shard-\d+-of-\d+$/.test(f)).sort();
  if (!folders.length) throw new Error(`merge: ${dir} holds no shard folders (shard-i-of-N)`);
  const shards = folders.map((f) => {
    const path = join(dir, f, 'manifest.json');
    if (!existsSync(path)) throw new Error(`merge: ${join(dir, f)} is incomplete (no manifest.json): run that shard again`);
    let m: Manifest;
    try {
      m = JSON.parse(readFileSync(path, 'utf8')) as Manifest;
    } catch (e) {
      throw new Error(`merge: ${path} is not valid JSON (${(e as Error).message}): run that shard again`);
    }
    if (m?.format !== 'embedtune-shard/1' || typeof m.shard !== 'object' || !Array.isArray(m.calls) || typeof m.encoder !== 'object' || typeof m.options !== 'object') {
      throw new Error(`merge: ${path} is not a complete embedtune shard manifest: run that shard again`);
    }
    if (f !== `shard-${m.shard.index}-of-${m.shard.count}`) throw new Error(`merge: ${path} says shard ${m.shard.index} of ${m.shard.count}, not ${f}`);
    return m;
  });
  const first = shards[0];
  const name = (m: Manifest) => `shard-${m.shard.index}-of-${m.shard.count}`;
  for (const m of shards.slice(1)) {
    if (m.shard.count !== first!.shard.count) throw new Error(`merge: ${name(m)} and ${name(first!)} come from runs with different shard counts`);
    if (m.job !== first!.job) throw new Error(`merge: ${name(m)} is a ${m.job} shard, ${name(first!)} a ${first!.job} shard`);
    if (m.encoder.fingerprint !== first!.encoder.fingerprint) throw new Error(`merge: ${name(m)} was encoded with another model than ${name(first!)} (model files differ)`);
    for (const key of new Set([...Object.keys(m.options), ...Object.keys(first!.options)])) {
      if (JSON.stringify(m.options[key]) !== JSON.stringify(first!.options[key])) throw new Error(`merge: ${name(m)} and ${name(first!)} differ in "${key}" (${JSON.stringify(m.options[key])} vs ${JSON.stringify(first!.options[key])})`);
    }
    if (JSON.stringify(m.encoder) !== JSON.stringify(first!.encoder)) throw new Error(`merge: ${name(m)} and ${name(first!)} differ in pooling, normalisation, width or --shard-dtype (${JSON.stringify(m.encoder)} vs ${JSON.stringify(first!.encoder)})`);
    if (JSON.stringify(m.calls.map((c) => [c.count, c.texts, c.settings])) !== JSON.stringify(first!.calls.map((c) => [c.count, c.texts, c.settings]))) {
      throw new Error(`merge: ${name(m)} and ${name(first!)} encoded different texts or settings`);
    }
  }
  const count = first!.shard.count;
  const have = new Set(shards.map((m) => m.shard.index));
  const missing = Array.from({ length: count }, (_, i) => i).filter((i) => !have.has(i));
  if (missing.length) throw new Error(`merge: missing ${missing.map((i) => `shard-${i}-of-${count}`).join(', ')} in ${dir}`);
  // Every shard holds exactly its slice of every list, so together they cover each list once.
  for (const m of shards) {
    for (const c of m.calls) {
      const want = shardRows(c.count, m.shard, first!.encoder.blockTexts);
      if (!Array.isArray(c.rows) || c.rows[0] !== want[0] || c.rows[1] !== want[1]) {
        throw new Error(`merge: ${join(dir, name(m), 'manifest.json')}: "${c.label}" records rows ${JSON.stringify(c.rows)}, but shard ${m.shard.index} of ${count} encodes rows [${want}] of ${c.count}`);
      }
    }
  }
  return shards.sort((a, b) => a.shard.index - b.shard.index);
}

/**
 * Combines the shards in `dir` and finishes the job they came from, writing its output where
 * the unsharded command would have.
 * @example await merge('out.shards');
 */
export async function merge(dir: string, o: RunOptions = {}): Promise<{ job: ShardJob; result: unknown }> {
  await using run = openRun(o);
  const shards = readShards(dir);
  const first = shards[0];
  const replay = new ShardReplay(dir, shards);
  run.log(`merge: ${first!.shard.count} ${first!.job} shard(s) from ${dir}`);
  const result = await JOBS[first!.job].run({ ...first!.options, run, model: replay } as never);
  return { job: first!.job, result };
}
