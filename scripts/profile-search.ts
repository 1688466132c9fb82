/**
 * Where exact top-k search spends its time: 1,000 queries × 100k × 384 corpus, top-100, in the
 * blocks ExactSearch uses (256 queries × 65,536 rows). onnxruntime's profiler splits the
 * session into Gemm (scores) and TopK; the rest of the wall time is feeding, output copies and
 * the merge of per-block results in JS.
 *   node dist/scripts/profile-search.js [threads=2]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { floatTensor, int64Tensor, Session } from '../src/runtime/session.js';
import { ExactSearch, topKGraph } from '../src/search/topk.js';
import { unitVectors } from './make-models.js';

const threads = Number(process.argv[2] ?? 2);
const corpus = unitVectors(100_000, 384, 1);
const queries = unitVectors(1000, 384, 2);

const search = await ExactSearch.create({ threads });
await search.search(queries, corpus, 100, {});
const walls: number[] = [];
for (let r = 0; r < 5; r++) {
  const t0 = performance.now();
  await search.search(queries, corpus, 100, {});
  walls.push((performance.now() - t0) / 1000);
}
const wall = walls.sort((a, b) => a - b)[2]!; // median of 5
await search.close();

const prefix = join(tmpdir(), `embedtune-search-profile-${process.pid}`);
const session = await Session.create(topKGraph(), { threads, profilePrefix: prefix });
const q = floatTensor(queries.data.subarray(0, 256 * 384), [256, 384]);
const k = int64Tensor(BigInt64Array.of(100n), [1]);
const blocks = [0, 65536].map((c0) => floatTensor(corpus.data.subarray(c0 * 384, Math.min(100_000, c0 + 65536) * 384), [Math.min(65536, 100_000 - c0), 384]));
for (let r = 0; r < 4; r++) for (const c of blocks) await session.run({ queries: q, corpus: c, k }); // warm-up: the first runs fault in the score block
// ExactSearch's passes: 4 query blocks (3 × 256 + 232 ≈ 1,000/256) over 2 corpus blocks; timed as 4 × 256-row runs.
const t1 = performance.now();
for (let r = 0; r < 4; r++) for (const c of blocks) await session.run({ queries: q, corpus: c, k });
const runs = ((performance.now() - t1) / 1000) * (1000 / 1024);
session.endProfiling();
await session.release();
const file = readdirSync(tmpdir()).find((f) => f.startsWith(`embedtune-search-profile-${process.pid}`))!;
const events = JSON.parse(readFileSync(join(tmpdir(), file), 'utf8')) as { cat: string; name: string; ts: number; dur: number; args?: { op_name?: string } }[];
const runsTs = events.filter((e) => e.name === 'model_run').map((e) => e.ts).sort((a, b) => a - b);
const from = runsTs[4 * blocks.length]!; // the warm runs only
const byOp = new Map<string, number>();
for (const e of events) if (e.cat === 'Node' && e.name.endsWith('_kernel_time') && e.ts >= from) byOp.set(e.args!.op_name!, (byOp.get(e.args!.op_name!) ?? 0) + ((e.dur / 1e6) * 1000) / 1024);
console.log(`search 1,000 × 100k × 384, top-100, ${threads} threads: ${wall.toFixed(3)} s wall (median of 5 after a warm-up; the first search takes about twice as long, faulting in the score block)`);
console.log(`  session runs (2 blocks):  ${runs.toFixed(3)} s`);
for (const [op, s] of byOp) console.log(`    ${op.padEnd(8)} ${s.toFixed(3)} s  (${((100 * s) / wall).toFixed(1)}% of the search)`);
console.log(`  merge, copies, feeding:   ${(wall - runs).toFixed(3)} s  (${((100 * (wall - runs)) / wall).toFixed(1)}%)`);
const gflop = (2 * 1000 * 100_000 * 384) / 1e9;
console.log(`  Gemm rate: ${(gflop / (byOp.get('Gemm') ?? NaN)).toFixed(0)} GFLOP/s`);
