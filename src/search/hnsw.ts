/**
 * Approximate top-k for pools exact search cannot serve in time (tens of millions of passages):
 * an HNSW graph (usearch) over the pool's rows, stored quantized (int8 by default: a quarter of
 * float32's memory), searched with a wide beam. Its candidates are then rescored against the
 * float32 rows (in double precision) and ordered as ExactSearch orders them (score, then the lower
 * row), so the scores are the rows' own and only recall is approximate (bench/README.md).
 */
import { createRequire } from 'node:module';
import { noProgress, type Reporter } from '../progress.js';
import type { RowSource } from './rows.js';
import { ExactSearch, type TopK, type Vectors } from './topk.js';

export interface HnswOptions {
  /** Graph degree M (default 16). */
  connectivity?: number;
  /** Beam width while building (default 128). */
  expansionAdd?: number;
  /** Beam width while searching (default 512; at least k is used). */
  expansionSearch?: number;
  /** How the index stores vectors: i8 (default), f16 or f32. */
  quantization?: 'i8' | 'f16' | 'f32';
  threads?: number;
  label?: string;
  /** Shows progress (a run's `run.progress`); default none. */
  progress?: Reporter;
}

/* usearch's JavaScript binding, as far as it is used here. */
interface UsearchIndex {
  add(keys: BigUint64Array, vectors: Float32Array, threads?: number): void;
  search(vectors: Float32Array, k: number, threads?: number): { keys: BigUint64Array; distances: Float32Array; counts: BigUint64Array | Uint32Array | number[] };
  size(): number;
}

/** Loads usearch's native binary, or says what is missing. */
function usearch(): { Index: new (o: Record<string, unknown>) => UsearchIndex } {
  try {
    return createRequire(import.meta.url)('usearch');
  } catch (e) {
    throw new Error(`--index hnsw needs usearch's native binary, which did not load on ${process.platform}-${process.arch} (${(e as Error).message.split('\n')[0]}); use the exact search (the default), or install usearch with its build script allowed (npm install-scripts approve usearch)`);
  }
}

const isSource = (c: Vectors | RowSource): c is RowSource => !('data' in c);

/**
 * @example
 *   const index = await HnswSearch.build(pool, { threads: 2 });
 *   const hits = index.search(queries, 100); // exact scores of approximate neighbours
 */
export class HnswSearch {
  private constructor(
    private readonly index: UsearchIndex,
    private readonly corpus: Vectors | RowSource,
    private readonly o: HnswOptions,
  ) {}

  /** Builds the graph over `corpus`, a block of rows at a time (a RowSource's rows are read once). */
  static async build(corpus: Vectors | RowSource, o: HnswOptions = {}): Promise<HnswSearch> {
    const { Index } = usearch();
    const index = new Index({
      metric: 'ip',
      dimensions: corpus.dim,
      connectivity: o.connectivity ?? 16,
      expansion_add: o.expansionAdd ?? 128,
      expansion_search: o.expansionSearch ?? 512,
      quantization: o.quantization ?? 'i8',
    });
    const block = 16384;
    const bar = (o.progress ?? noProgress)(o.label ?? 'index', corpus.count);
    for (let lo = 0; lo < corpus.count; lo += block) {
      const hi = Math.min(corpus.count, lo + block);
      const rows = isSource(corpus) ? corpus.rows(lo, hi) : corpus.data.subarray(lo * corpus.dim, hi * corpus.dim);
      index.add(BigUint64Array.from({ length: hi - lo }, (_, i) => BigInt(lo + i)), rows, o.threads ?? 0);
      bar.tick(hi - lo);
      await new Promise((resolve) => setImmediate(resolve)); // let the bar (and Ctrl-C) through
    }
    bar.done();
    return new HnswSearch(index, corpus, o);
  }

  /**
   * The (approximately) k best rows per query by inner product, best first, rescored in double
   * precision against the float32 rows; a query for which the graph yields fewer than k rows has
   * its last columns -1 / -Infinity. Queries go 256 at a time (bounding the rows read back for
   * rescoring from a RowSource).
   */
  search(queries: Vectors, k: number): TopK {
    const d = queries.dim;
    const kk = Math.min(k, this.corpus.count);
    // Twice as many candidates as asked: the quantized distances misorder rows near the cutoff,
    // which the rescoring then puts right.
    const asked = Math.min(2 * kk, this.corpus.count);
    const indices = new Int32Array(queries.count * kk).fill(-1);
    const scores = new Float32Array(queries.count * kk).fill(-Infinity);
    const chunk = 256;
    for (let q0 = 0; q0 < queries.count; q0 += chunk) {
      const q1 = Math.min(queries.count, q0 + chunk);
      const found = this.index.search(queries.data.subarray(q0 * d, q1 * d), asked, this.o.threads ?? 0);
      const key = (qi: number, j: number) => Number(found.keys[(qi - q0) * asked + j]);
      const count = (qi: number) => Number(found.counts[qi - q0]);
      const needed = new Set<number>();
      for (let qi = q0; qi < q1; qi++) for (let j = 0; j < count(qi); j++) needed.add(key(qi, j));
      const vector = this.rowReader([...needed].sort((a, b) => a - b));
      for (let qi = q0; qi < q1; qi++) {
        const hits = Array.from({ length: count(qi) }, (_, j) => {
          const row = key(qi, j);
          const v = vector(row);
          let s = 0;
          for (let t = 0; t < d; t++) s += queries.data[qi * d + t]! * v[t]!;
          return { row, score: Math.fround(s) };
        })
          .sort((a, b) => b.score - a.score || a.row - b.row)
          .slice(0, kk);
        hits.forEach((h, j) => {
          indices[qi * kk + j] = h.row;
          scores[qi * kk + j] = h.score;
        });
      }
    }
    return { k: kk, scores, indices };
  }

  /** Row lookup for rescoring: straight from memory, or the needed rows read once from a RowSource. */
  private rowReader(sortedRows: number[]): (row: number) => Float32Array {
    const c = this.corpus;
    if (!isSource(c)) return (row) => c.data.subarray(row * c.dim, (row + 1) * c.dim);
    const kept = new Map<number, Float32Array>();
    for (const row of sortedRows) kept.set(row, c.rows(row, row + 1).slice());
    return (row) => kept.get(row)!;
  }

  get size(): number {
    return this.index.size();
  }
}

/**
 * Recall of `hits` (an approximate search of `queries`) against exact search, on `sample`
 * queries spread evenly over them: what share of each sampled query's exact top-k the index
 * found. A cheap check (sample × pool dot products) for a run to report.
 * @example const { recall } = await sampledRecall(queries, pool, hits, { threads: 2 });
 */
export async function sampledRecall(queries: Vectors, corpus: Vectors | RowSource, hits: TopK, o: { sample?: number; threads?: number } = {}): Promise<{ recall: number; queries: number }> {
  const n = Math.min(o.sample ?? 50, queries.count);
  if (n === 0 || hits.k === 0) return { recall: 1, queries: 0 };
  const d = queries.dim;
  const picked = Array.from({ length: n }, (_, i) => Math.floor((i * queries.count) / n));
  const sample: Vectors = { data: new Float32Array(n * d), dim: d, count: n };
  picked.forEach((qi, i) => sample.data.set(queries.data.subarray(qi * d, (qi + 1) * d), i * d));
  await using search = await ExactSearch.create({ threads: o.threads });
  const exact = await search.search(sample, corpus, hits.k);
  let found = 0;
  picked.forEach((qi, i) => {
    const truth = new Set(exact.indices.subarray(i * exact.k, (i + 1) * exact.k));
    for (let j = 0; j < hits.k; j++) if (truth.has(hits.indices[qi * hits.k + j]!)) found++;
  });
  return { recall: found / (n * exact.k), queries: n };
}
