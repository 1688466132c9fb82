/**
 * eval with bge-m3's modes (`modes: ['dense', 'sparse', 'colbert', 'hybrid']`): one pass of the
 * model gives each text's three representations (models/m3.ts); dense and sparse rank the whole
 * corpus, ColBERT and the hybrid rescore the union of the dense and sparse top `candidates` (as
 * bge-m3 uses its multi-vectors: to rerank). The hybrid is bge-m3's weighted sum
 * (w_dense·dense + w_sparse·sparse + w_colbert·colbert) / Σw, FlagEmbedding's default weights
 * 0.4 / 0.2 / 0.4.
 */
import { meanMetrics, type MetricTable } from '../evaluation/metrics.js';
import { colbertScore, M3Encoder, type M3Output, sparseScore } from '../models/m3.js';
import type { Run } from '../run.js';
import { type RetrievalSet, tiesById } from './evaluate.js';

export const M3_MODES = ['dense', 'sparse', 'colbert', 'hybrid'] as const;
export type M3Mode = (typeof M3_MODES)[number];

export interface M3EvalOptions {
  model: string;
  modes: M3Mode[];
  /** Dense and sparse candidates per query that ColBERT and the hybrid rescore (default 100). */
  candidates?: number;
  /** Hybrid weights: dense, sparse, ColBERT (default 0.4, 0.2, 0.4). */
  weights?: [number, number, number];
  batchSize?: number;
  maxQueryLength?: number;
  maxPassageLength?: number;
  threads?: number;
}

/** Every text's three representations, length-sorted batches. */
async function encodeAll(m3: M3Encoder, texts: string[], batchSize: number, maxLength: number | undefined, bar: { tick(n: number): void }): Promise<M3Output[]> {
  const order = texts.map((_, i) => i).sort((a, b) => texts[b]!.length - texts[a]!.length);
  const out = new Array<M3Output>(texts.length);
  for (let i = 0; i < order.length; i += batchSize) {
    const rows = order.slice(i, i + batchSize);
    const reps = await m3.encode(rows.map((r) => texts[r]!), { maxLength });
    rows.forEach((r, j) => (out[r] = reps[j]!));
    bar.tick(rows.length);
  }
  return out;
}

const dot = (a: Float32Array, b: Float32Array) => {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += a[k]! * b[k]!;
  return s;
};

/** Metrics per mode: `{ dense: {...}, sparse: {...}, colbert: {...}, hybrid: {...} }` as asked. */
export async function evaluateM3(o: M3EvalOptions, set: RetrievalSet, ks: number[], run: Run): Promise<{ byMode: Record<string, MetricTable>; queries: number }> {
  const bad = o.modes.find((m) => !M3_MODES.includes(m));
  if (bad) throw new Error(`modes: "${bad}" is not one of ${M3_MODES.join(', ')}`);
  await using m3 = await M3Encoder.load(o.model, { threads: o.threads });
  const qids = [...set.queries.keys()].filter((q) => set.qrels.has(q));
  const ids = set.corpus.map((d) => d.id);
  const bar = run.progress('eval: encode (dense, sparse, colbert)', qids.length + ids.length);
  const q = await encodeAll(m3, qids.map((id) => set.queries.get(id)!), o.batchSize ?? 32, o.maxQueryLength, bar);
  const p = await encodeAll(m3, set.corpus.map((d) => d.text), o.batchSize ?? 32, o.maxPassageLength, bar);
  bar.done();
  const depth = ks[ks.length - 1]!;
  const candidates = Math.max(o.candidates ?? 100, depth);
  const [wd, ws, wc] = o.weights ?? [0.4, 0.2, 0.4];
  const rankings: Record<string, Map<string, string[]>> = Object.fromEntries(o.modes.map((m) => [m, new Map()]));
  /** Every document id, best first (each full ranking is sorted once, then cut). */
  const ranked = (scores: Float64Array) => tiesById(Array.from(scores, (score, j) => ({ id: ids[j]!, score })));
  const index = new Map(ids.map((id, j) => [id, j]));
  qids.forEach((qid, i) => {
    const dense = Float64Array.from(p, (d) => dot(q[i]!.dense, d.dense));
    const sparse = Float64Array.from(p, (d) => sparseScore(q[i]!.sparse, d.sparse));
    const [byDense, bySparse] = [ranked(dense), ranked(sparse)];
    if (rankings.dense) rankings.dense.set(qid, byDense.slice(0, depth));
    if (rankings.sparse) rankings.sparse.set(qid, bySparse.slice(0, depth));
    if (!rankings.colbert && !rankings.hybrid) return;
    const pool = [...new Set([...byDense.slice(0, candidates), ...bySparse.slice(0, candidates)])].map((id) => index.get(id)!);
    const colbert = new Map(pool.map((j) => [j, colbertScore(q[i]!, p[j]!)]));
    const rerank = (score: (j: number) => number) => tiesById(pool.map((j) => ({ id: ids[j]!, score: score(j) }))).slice(0, depth);
    if (rankings.colbert) rankings.colbert.set(qid, rerank((j) => colbert.get(j)!));
    if (rankings.hybrid) rankings.hybrid.set(qid, rerank((j) => (wd * dense[j]! + ws * sparse[j]! + wc * colbert.get(j)!) / (wd + ws + wc)));
  });
  const byMode: Record<string, MetricTable> = {};
  let queries = 0;
  for (const [mode, r] of Object.entries(rankings)) {
    const m = meanMetrics(r, set.qrels, ks);
    byMode[mode] = m.metrics;
    queries = m.queries;
  }
  return { byMode, queries };
}
