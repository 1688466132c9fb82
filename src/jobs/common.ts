/** What every job shares: which model, how to encode, how loud to be. */
import { type EncodeOptions, Encoder, type EncoderOptions, type Embeddings } from '../models/encoder.js';
import { EncoderPool, parseDevices } from '../models/encoder-pool.js';
import type { Pooling } from '../models/pooling.js';
import { resolveModel } from '../models/resolve.js';
import { openRun, type Run, type RunOptions } from '../run.js';

/**
 * What jobs need of an encoder: an Encoder, or a stand-in (a shard run's writer, a merge's
 * replay of the shards' rows).
 */
export interface TextEncoder {
  readonly normalize: boolean;
  readonly dim: number;
  /** The model it stands for (a folder, or a merge's original model argument). */
  readonly dir: string;
  encode(texts: readonly string[], options?: EncodeOptions): Promise<Embeddings>;
  /** Called once a job has encoded everything it needs (a shard run ends the job here). */
  endOfEncoding?(): Promise<void>;
}

/** An encoder that plans in blocks (Encoder, EncoderPool): what shard runs and jobs load. */
export interface BlockEncoder extends TextEncoder {
  readonly pooling: Pooling;
  readonly blockTexts: number;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface ModelOptions extends EncoderOptions, RunOptions {
  /** Several encoders in worker threads: `cpu:NxT` or `cuda:0,cuda:1` (see encoder-pool.ts). */
  devices?: string;
  /** Run the model's session on this thread instead of one worker thread (the default). */
  inThread?: boolean;
  /** A Hugging Face model directory, or an already loaded encoder (left open). */
  model: string | TextEncoder;
  batchSize?: number;
  /** On-disk embedding cache directory; unset = no cache. */
  cacheDir?: string;
}

/**
 * Runs `fn` with an Encoder, loading (and afterwards closing) it when given a path; the model's
 * download, if any, shows progress as `run` does. Jobs that compare cosine similarities
 * normalise unless told not to; `encode` (`normalizeFromModel`) follows the model's modules.json
 * as sentence-transformers does.
 */
export async function withEncoder<T>(o: ModelOptions, run: Run, fn: (e: TextEncoder) => Promise<T>, { normalizeFromModel = false } = {}): Promise<T> {
  if (typeof o.model !== 'string') return fn(o.model);
  await using encoder = await loadEncoder({ ...o, model: o.model }, run, normalizeFromModel);
  return await fn(encoder);
}

/**
 * What a job reads besides its data files — the model folder (a Hub id or alias resolved to its
 * snapshot, which the returned options then load) and the cache — so its outputs are checked
 * against them before any work.
 * @example const { options, reads } = await modelReads(o, run); checkOutput(o.output, [o.input, ...reads]);
 */
export async function modelReads<T extends ModelOptions>(o: T, run: Run): Promise<{ options: T; reads: string[] }> {
  const cache = o.cacheDir ? [o.cacheDir] : [];
  if (typeof o.model !== 'string') return { options: o, reads: [o.model.dir, ...cache] };
  const dir = await resolveModel(o.model, { revision: o.revision, progress: run.progress });
  return { options: { ...o, model: dir }, reads: [dir, ...cache] };
}

/**
 * Resolves and loads the model a job names (see withEncoder for `normalizeFromModel`): in one
 * worker thread, or with `devices` a pool of workers, or (`inThread`) on this thread.
 */
export async function loadEncoder(o: ModelOptions & { model: string }, run: Run = openRun(o), normalizeFromModel = false): Promise<BlockEncoder> {
  const dir = await resolveModel(o.model, { revision: o.revision, progress: run.progress });
  const normalize = o.normalize ?? (normalizeFromModel ? undefined : true);
  const options = { pooling: o.pooling, normalize, dimensions: o.dimensions, threads: o.threads, blockTexts: o.blockTexts, quantize: o.quantize, device: o.device };
  if (o.devices && o.device) throw new Error('give --device or --devices, not both');
  if (o.devices) return EncoderPool.load(dir, { ...options, devices: parseDevices(o.devices) });
  if (o.inThread) return Encoder.load(dir, options);
  // One worker thread by default: onnxruntime's run blocks its thread, and in a worker it leaves
  // the main thread free for the progress bar, the JSON progress stream and Ctrl-C.
  return EncoderPool.load(dir, { ...options, devices: [{ device: o.device ?? 'cpu', threads: o.threads }] });
}

/**
 * Runs a job's encodings in order and returns their embeddings; the one place a shard run stops
 * a job (after writing its rows), before any search or output.
 * @example const [q, p] = await encodeAll(encoder, [[queries, { role: 'query' }], [passages, { role: 'passage' }]]);
 */
export async function encodeAll(e: TextEncoder, calls: [readonly string[], EncodeOptions][]): Promise<Embeddings[]> {
  const out: Embeddings[] = [];
  for (const [texts, options] of calls) out.push(await e.encode(texts, options));
  await e.endOfEncoding?.();
  return out;
}

/** Cosine scores need unit vectors. */
export function requireNormalized(e: TextEncoder, job: string): void {
  if (!e.normalize) throw new Error(`${job} compares cosine similarities and needs normalized embeddings; load the encoder with normalize: true`);
}

/** Zero records is an error, not an empty output: says whether everything was skipped. */
export function requireRecords(count: number, input: string, skipped = 0): void {
  if (count > 0) return;
  throw new Error(`${input}: no records to work on${skipped ? ` (all ${skipped} were invalid and skipped)` : ' (the file is empty)'}`);
}

/** `out/train.jsonl` + `.dropped.jsonl` → `out/train.dropped.jsonl`. */
export function sidePath(path: string, suffix: string): string {
  return path.replace(/\.jsonl?$/i, '') + suffix;
}
