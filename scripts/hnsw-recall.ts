/**
 * `mine --index hnsw` against exact search (issue 12): a pool of N unit vectors of width D,
 * 1,000 queries, top-220 (mine's default depth). `random`: independent Gaussian directions (no
 * structure at all, HNSW's worst case); `clustered`: points scattered around N/100 centres, as
 * embeddings of real text cluster. Prints build and search seconds of both and recall@10,
 * @100 and @220 of the index against exact; run under `/usr/bin/time -v` for peak RSS.
 *   node dist/scripts/hnsw-recall.js [N=1000000] [D=384] [THREADS=2] [clustered|random] [i8|f16|f32]
 */
import { HnswSearch } from '../src/search/hnsw.js';
import { ExactSearch, type Vectors } from '../src/search/topk.js';
import { unitVectors } from './make-models.js';

const [n = 1_000_000, d = 384, threads = 2] = process.argv.slice(2, 5).map(Number);
const kind = process.argv[5] ?? 'clustered';
const quantization = (process.argv[6] ?? 'i8') as 'i8' | 'f16' | 'f32';
const K = 220;

/** `count` points around `centres` (0.35 of a unit of Gaussian noise each side), normalised. */
function around(centres: Vectors, count: number, seed: number, pick: (i: number) => number): Vectors {
  const noise = unitVectors(count, d, seed);
  for (let i = 0; i < count; i++) {
    const c = pick(i);
    let s = 0;
    for (let j = 0; j < d; j++) s += (noise.data[i * d + j] = centres.data[c * d + j]! + 0.35 * noise.data[i * d + j]!) ** 2;
    for (let j = 0; j < d; j++) noise.data[i * d + j]! /= Math.sqrt(s);
  }
  return noise;
}

const centres = unitVectors(Math.max(1, Math.round(n / 100)), d, 3);
const pool = kind === 'random' ? unitVectors(n, d, 1) : around(centres, n, 1, (i) => i % centres.count);
const queries = kind === 'random' ? unitVectors(1000, d, 2) : around(centres, 1000, 2, (i) => (i * 7919) % centres.count);

const time = async <T>(f: () => Promise<T> | T): Promise<[T, number]> => {
  const t0 = performance.now();
  const r = await f();
  return [r, (performance.now() - t0) / 1000];
};
const exact = await ExactSearch.create({ threads });
const [want, exactSeconds] = await time(() => exact.search(queries, pool, K, {}));
await exact.close();
const [index, buildSeconds] = await time(() => HnswSearch.build(pool, { threads, quantization }));
const [got, searchSeconds] = await time(() => index.search(queries, K));
const recall = (k: number) => {
  let hit = 0;
  for (let i = 0; i < queries.count; i++) {
    const truth = new Set(want.indices.subarray(i * K, i * K + k));
    for (let j = 0; j < k; j++) if (truth.has(got.indices[i * K + j]!)) hit++;
  }
  return Number((hit / (queries.count * k)).toFixed(4));
};
console.log(JSON.stringify({ pool: n, dim: d, kind, quantization, queries: queries.count, k: K, exactSearchSeconds: +exactSeconds.toFixed(1), hnswBuildSeconds: +buildSeconds.toFixed(1), hnswSearchSeconds: +searchSeconds.toFixed(1), recallAt10: recall(10), recallAt100: recall(100), recallAt220: recall(K), peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024) }));
