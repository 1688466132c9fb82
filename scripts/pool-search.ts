/**
 * Mining's search at pool scale (issue 12): N random unit vectors of width D (the pool), 1,000
 * queries, exact top-220 (FlagEmbedding's default window 10..210 plus room for exclusions), the
 * pool held in memory as `mine` holds it. Prints seconds; run under `/usr/bin/time -v` for peak RSS.
 *   node dist/scripts/pool-search.js [N=1000000] [D=384] [THREADS=2]
 */
import { ExactSearch } from '../src/search/topk.js';
import { unitVectors } from './make-models.js';

const [n = 1_000_000, d = 384, threads = 2] = process.argv.slice(2).map(Number);
const t0 = performance.now();
const pool = unitVectors(n, d, 1);
const queries = unitVectors(1000, d, 2);
const made = (performance.now() - t0) / 1000;
const search = await ExactSearch.create({ threads });
const t1 = performance.now();
const hits = await search.search(queries, pool, 220, { quiet: true });
const seconds = (performance.now() - t1) / 1000;
await search.close();
console.log(JSON.stringify({ pool: n, dim: d, queries: 1000, k: 220, searchSeconds: Number(seconds.toFixed(2)), makeSeconds: Number(made.toFixed(1)), poolGiB: Number(((n * d * 4) / 2 ** 30).toFixed(2)), first: hits.indices[0] }));
