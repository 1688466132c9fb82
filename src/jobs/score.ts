/**
 * score: a reranker's score for every (query, passage) pair of every record, written as
 * FlagEmbedding's `pos_scores` / `neg_scores` (teacher scores for distillation, or to inspect
 * false negatives). Pairs are de-duplicated, length-sorted into batches, and cached on disk
 * (`--cache-dir`) keyed by reranker, settings and pair.
 */
import { checkOutput, writeAtomically } from '../data/jsonl.js';
import { readRecords, SkipReport } from '../data/records.js';
import { EmbeddingCache } from '../models/cache.js';
import { type CrossEncoderOptions, type Reranker, RerankerThread } from '../models/cross-encoder.js';
import { requireRecords } from './common.js';
import { openRun, type RunOptions } from '../run.js';
import type { Reporter } from '../progress.js';
import type { PairTruncation } from '../models/tokenizer.js';
import { float32Value } from '../util/float.js';
import { resolveModel } from '../models/resolve.js';
import { DEFAULTS } from '../options.js';

export interface ScoreJobOptions extends CrossEncoderOptions, RunOptions {
  /** Reranker folder, alias or Hub id; or an already loaded CrossEncoder (left open). */
  reranker: string | Reranker;
  input: string;
  output: string;
  batchSize?: number;
  /** Token limit per pair (default: the reranker's). */
  maxLength?: number;
  /** σ(logit) instead of the logit. */
  sigmoid?: boolean;
  /** How a pair past the limit is cut (default `longest_first`, as sentence-transformers' CrossEncoder). */
  truncation?: PairTruncation;
  cacheDir?: string;
  skipInvalid?: boolean;
}

export interface ScoreJobResult {
  records: number;
  /** Distinct pairs scored (cache hits included). */
  pairs: number;
  skipped: number;
}

const pairKey = (q: string, p: string) => `${q}\u0000${p}`;

/**
 * Scores pairs with a reranker, with an optional on-disk cache.
 * @example const s = await scorePairs(reranker, [['what is lift?', 'Lift is …']], { cacheDir: '.cache' });
 */
export async function scorePairs(reranker: Reranker, pairs: readonly (readonly [string, string])[], o: Omit<ScoreJobOptions, 'reranker' | 'input' | 'output'> & { progressLabel?: string; progress?: Reporter } = {}): Promise<Float32Array> {
  const maxLength = Math.min(o.maxLength ?? reranker.maxLength, reranker.maxLength);
  const cache = o.cacheDir
    ? EmbeddingCache.open(o.cacheDir, JSON.stringify({ reranker: EmbeddingCache.modelFingerprint(reranker.dir), maxLength, truncation: o.truncation ?? DEFAULTS.score.truncation, sigmoid: !!o.sigmoid, label: o.label ?? 0, kind: 'pair-score' }), 1)
    : undefined;
  const out = new Float32Array(pairs.length);
  const todo: number[] = [];
  pairs.forEach(([q, p], i) => {
    const hit = cache?.get(pairKey(q, p));
    if (hit) out[i] = hit[0]!;
    else todo.push(i);
  });
  const scores = await reranker.score(todo.map((i) => pairs[i]!), { batchSize: o.batchSize, maxLength, truncation: o.truncation, sigmoid: o.sigmoid, progress: o.progress, label: o.progressLabel ?? 'score: pairs' });
  todo.forEach((i, j) => {
    out[i] = scores[j]!;
    cache?.put(pairKey(pairs[i]![0], pairs[i]![1]), scores.subarray(j, j + 1));
  });
  cache?.flush();
  return out;
}

/**
 * Runs `fn` with the reranker given, or with the one `load` loads (closed afterwards, also on error).
 * @example await withReranker('models/bge-reranker-base', () => RerankerThread.load(dir, {}), (r) => r.score(pairs));
 */
export async function withReranker<T>(given: string | Reranker, load: () => Promise<Reranker>, fn: (r: Reranker) => Promise<T>): Promise<T> {
  if (typeof given !== 'string') return fn(given);
  await using reranker = await load();
  return await fn(reranker);
}

/**
 * @example
 *   await score({ reranker: 'models/bge-reranker-base', input: 'mined.jsonl', output: 'scored.jsonl' });
 */
export async function score(o: ScoreJobOptions): Promise<ScoreJobResult> {
  await using run = openRun(o);
  const folder = typeof o.reranker === 'string' ? await resolveModel(o.reranker, { revision: o.revision, progress: run.progress }) : o.reranker.dir;
  checkOutput(o.output, [o.input, folder, ...(o.cacheDir ? [o.cacheDir] : [])]);
  const readOptions = { requirePositives: true, skipInvalid: o.skipInvalid };
  const skips = new SkipReport();
  const index = new Map<string, number>();
  const pairs: [string, string][] = [];
  let records = 0;
  const add = (q: string, p: string) => {
    const k = pairKey(q, p);
    if (!index.has(k)) index.set(k, pairs.push([q, p]) - 1);
  };
  for await (const r of readRecords(o.input, readOptions, skips)) {
    records++;
    [...r.pos, ...r.neg].forEach((p) => add(r.query, p));
  }
  requireRecords(records, o.input, skips.total);
  const scores = await withReranker(o.reranker, () => RerankerThread.load(folder, o), (reranker) => scorePairs(reranker, pairs, { ...o, progress: run.progress }));
  const of = (q: string, p: string) => float32Value(scores[index.get(pairKey(q, p))!]!);
  await writeAtomically(o.output, async (w) => {
    for await (const r of readRecords(o.input, readOptions, new SkipReport())) {
      await w.writeJson({ ...r.raw, pos_scores: r.pos.map((p) => of(r.query, p)), neg_scores: r.neg.map((p) => of(r.query, p)) });
    }
  });
  run.log(`score: ${records} records, ${pairs.length} distinct pairs → ${o.output}${skips.total ? `\nscore: ${skips.summary()}` : ''}`);
  return { records, pairs: pairs.length, skipped: skips.total };
}
