/** What every job shares: which model, how to encode, how loud to be. */
import { Encoder, type EncoderOptions } from '../models/encoder.js';
import { resolveModel } from '../models/resolve.js';
import { progress } from '../progress.js';

export interface ModelOptions extends EncoderOptions {
  /** A Hugging Face model directory, or an already loaded Encoder (left open). */
  model: string | Encoder;
  batchSize?: number;
  /** On-disk embedding cache directory; unset = no cache. */
  cacheDir?: string;
  quiet?: boolean;
}

/**
 * Runs `fn` with an Encoder, loading (and afterwards closing) it when given a path. Jobs that
 * compare cosine similarities normalise unless told not to; `encode` (`normalizeFromModel`)
 * follows the model's modules.json as sentence-transformers does.
 */
export async function withEncoder<T>(o: ModelOptions, fn: (e: Encoder) => Promise<T>, { normalizeFromModel = false } = {}): Promise<T> {
  if (typeof o.model !== 'string') return fn(o.model);
  const dir = await resolveModel(o.model, { revision: o.revision, progress: (label, total) => progress(label, total, { quiet: o.quiet }) });
  const normalize = o.normalize ?? (normalizeFromModel ? undefined : true);
  const encoder = await Encoder.load(dir, { pooling: o.pooling, normalize, dimensions: o.dimensions, threads: o.threads });
  try {
    return await fn(encoder);
  } finally {
    await encoder.close();
  }
}

/** Cosine scores need unit vectors. */
export function requireNormalized(e: Encoder, job: string): void {
  if (!e.normalize) throw new Error(`${job} compares cosine similarities and needs normalized embeddings; load the encoder with normalize: true`);
}

/** Zero records is an error, not an empty output: says whether everything was skipped. */
export function requireRecords(count: number, input: string, skipped = 0): void {
  if (count > 0) return;
  throw new Error(`${input}: no records to work on${skipped ? ` (all ${skipped} were invalid and skipped)` : ' (the file is empty)'}`);
}

export function log(quiet: boolean | undefined, message: string): void {
  if (!quiet) process.stderr.write(message + '\n');
}

/** `out/train.jsonl` + `.dropped.jsonl` → `out/train.dropped.jsonl`. */
export function sidePath(path: string, suffix: string): string {
  return path.replace(/\.jsonl?$/i, '') + suffix;
}
