/**
 * Mining's search at pool scale (issue 12): N random unit vectors of width D (the pool), 1,000
 * queries, exact top-220 (FlagEmbedding's default window 10..210 plus room for exclusions), the
 * pool held in memory as `mine` holds it — or, with `disk`, written block by block to a temp file
 * and searched from there as `mine --pool-on-disk` does. Prints seconds; run under
 * `/usr/bin/time -v` for peak RSS.
 *   node dist/scripts/pool-search.js [N=1000000] [D=384] [THREADS=2] [disk]
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RowFile } from '../src/search/rows.js';
import { ExactSearch } from '../src/search/topk.js';
import { unitVectors } from './make-models.js';

const [n = 1_000_000, d = 384, threads = 2] = process.argv.slice(2, 5).map(Number);
const disk = process.argv[5] === 'disk';
const t0 = performance.now();
let pool: ReturnType<typeof unitVectors> | RowFile;
if (disk) {
  const file = RowFile.create(join(tmpdir(), `.embedtune-pool-${process.pid}.tmp`), d, n);
  for (let b = 0; b < n; b += 65536) file.append(unitVectors(Math.min(65536, n - b), d, 1 + b).data);
  pool = file;
} else pool = unitVectors(n, d, 1);
const queries = unitVectors(1000, d, 2);
const made = (performance.now() - t0) / 1000;
const search = await ExactSearch.create({ threads });
const t1 = performance.now();
const hits = await search.search(queries, pool, 220, {});
const seconds = (performance.now() - t1) / 1000;
await search.close();
if (pool instanceof RowFile) pool.remove();
console.log(JSON.stringify({ onDisk: disk, pool: n, dim: d, queries: 1000, k: 220, searchSeconds: Number(seconds.toFixed(2)), makeSeconds: Number(made.toFixed(1)), poolGiB: Number(((n * d * 4) / 2 ** 30).toFixed(2)), first: hits.indices[0] }));
