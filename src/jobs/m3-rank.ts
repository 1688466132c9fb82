/**
 * Retrieval with bge-m3's modes over M3Encoder outputs, shared by `eval --modes`, `mine --mode`
 * and `encode --modes`: dense and sparse rank the whole pool; ColBERT and the hybrid rescore the
 * union of the dense and sparse top `candidates` (as bge-m3 uses its multi-vectors: to rerank).
 * The hybrid is bge-m3's weighted sum (w_dense·dense + w_sparse·sparse + w_colbert·colbert) / Σw,
 * FlagEmbedding's default weights 0.4 / 0.2 / 0.4.
 */
import { colbertScore, type M3Encoder, type M3Output, sparseScore } from '../models/m3.js';
import { applyTemplate } from '../models/encoder.js';

export const M3_MODES = ['dense', 'sparse', 'colbert', 'hybrid'] as const;
export type M3Mode = (typeof M3_MODES)[number];

/** Checks a list of modes (from a flag or a library call). */
export function checkModes(modes: readonly string[], what = 'modes'): M3Mode[] {
  const bad = modes.find((m) => !(M3_MODES as readonly string[]).includes(m));
  if (bad !== undefined) throw new Error(`${what}: "${bad}" is not one of ${M3_MODES.join(', ')}`);
  if (modes.length === 0) throw new Error(`${what}: name at least one of ${M3_MODES.join(', ')}`);
  return modes as M3Mode[];
}

export interface RankOptions {
  /** Dense and sparse candidates per query that ColBERT and the hybrid rescore (default 100). */
  candidates?: number;
  /** Hybrid weights: dense, sparse, ColBERT (default 0.4, 0.2, 0.4). */
  weights?: [number, number, number];
}

/** Every text's three representations, length-sorted batches (`template` applied first). */
export async function encodeM3(m3: M3Encoder, texts: readonly string[], o: { batchSize?: number; maxLength?: number; template?: string }, bar: { tick(n: number): void }): Promise<M3Output[]> {
  const order = texts.map((_, i) => i).sort((a, b) => texts[b]!.length - texts[a]!.length);
  const out = new Array<M3Output>(texts.length);
  const size = o.batchSize ?? 32;
  for (let i = 0; i < order.length; i += size) {
    const rows = order.slice(i, i + size);
    const reps = await m3.encode(rows.map((r) => applyTemplate(texts[r]!, o.template)), { maxLength: o.maxLength });
    rows.forEach((r, j) => (out[r] = reps[j]!));
    bar.tick(rows.length);
  }
  return out;
}

export const dot = (a: Float32Array, b: Float32Array) => {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += a[k]! * b[k]!;
  return s;
};

/** One pair's score in `mode` (the hybrid: the weighted mean of the three). */
export function pairScore(mode: M3Mode, q: M3Output, p: M3Output, o: RankOptions = {}): number {
  if (mode === 'dense') return dot(q.dense, p.dense);
  if (mode === 'sparse') return sparseScore(q.sparse, p.sparse);
  if (mode === 'colbert') return colbertScore(q, p);
  const [wd, ws, wc] = o.weights ?? [0.4, 0.2, 0.4];
  return (wd * dot(q.dense, p.dense) + ws * sparseScore(q.sparse, p.sparse) + wc * colbertScore(q, p)) / (wd + ws + wc);
}

/**
 * The pool rows each mode ranks best for one query, best first, `depth` of them (ties broken by
 * `tie`, ascending): `{ dense: [{ row, score }, …], … }` for the modes asked.
 * @example const { hybrid } = rankModes(q, pool, ['hybrid'], 10, { candidates: 100 }, (a, b) => a - b);
 */
export function rankModes(q: M3Output, pool: readonly M3Output[], modes: readonly M3Mode[], depth: number, o: RankOptions, tie: (a: number, b: number) => number): Partial<Record<M3Mode, { row: number; score: number }[]>> {
  const order = (scores: { row: number; score: number }[]) => scores.sort((a, b) => b.score - a.score || tie(a.row, b.row));
  const dense = Float64Array.from(pool, (p) => dot(q.dense, p.dense));
  const sparse = Float64Array.from(pool, (p) => sparseScore(q.sparse, p.sparse));
  const all = (s: Float64Array) => order(Array.from(s, (score, row) => ({ row, score })));
  const [byDense, bySparse] = [all(dense), all(sparse)];
  const out: Partial<Record<M3Mode, { row: number; score: number }[]>> = {};
  if (modes.includes('dense')) out.dense = byDense.slice(0, depth);
  if (modes.includes('sparse')) out.sparse = bySparse.slice(0, depth);
  if (!modes.includes('colbert') && !modes.includes('hybrid')) return out;
  const n = Math.max(o.candidates ?? 100, depth);
  const rows = [...new Set([...byDense.slice(0, n), ...bySparse.slice(0, n)].map((x) => x.row))];
  const colbert = new Map(rows.map((j) => [j, colbertScore(q, pool[j]!)]));
  const [wd, ws, wc] = o.weights ?? [0.4, 0.2, 0.4];
  const rerank = (score: (j: number) => number) => order(rows.map((row) => ({ row, score: score(row) }))).slice(0, depth);
  if (modes.includes('colbert')) out.colbert = rerank((j) => colbert.get(j)!);
  if (modes.includes('hybrid')) out.hybrid = rerank((j) => (wd * dense[j]! + ws * sparse[j]! + wc * colbert.get(j)!) / (wd + ws + wc));
  return out;
}
