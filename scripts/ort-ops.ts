/**
 * What onnxruntime makes of our inference graph: the model is saved as ORT optimised it
 * (graph optimisation level `all`) and its nodes are counted by op type, beside ours; then one
 * batch (32 × 128 tokens) runs with ORT's profiler and the time is summed by op type.
 *
 *   node dist/scripts/ort-ops.js MODEL_DIR [POOLING] [THREADS] [int8]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnx from 'onnx-proto';
import { padBatch } from '../src/models/batch.js';
import { readConfig } from '../src/models/config.js';
import { buildEncoderGraph } from '../src/models/encoder.js';
import type { Pooling } from '../src/models/pooling.js';
import { loadWeights } from '../src/models/weights.js';
import { Session } from '../src/runtime/session.js';

const [dir, pooling = 'mean', threads = '2', quantize] = process.argv.slice(2);
const { graph } = buildEncoderGraph(readConfig(dir!), loadWeights(dir!), { pooling: pooling as Pooling, normalize: true }, 'initializer', 'hf', quantize === 'int8');
const count = (ops: string[]) => ops.reduce((m, op) => m.set(op, (m.get(op) ?? 0) + 1), new Map<string, number>());
const ours = count(graph.nodes.map((n) => n.op));
const path = join(tmpdir(), `embedtune-optimized-${process.pid}.onnx`);
const session = await Session.create(graph, { threads: 1, optimizedModelPath: path });
await session.release();
const optimized = onnx.onnx.ModelProto.decode(readFileSync(path));
const theirs = count(optimized.graph!.node!.map((n) => `${n.domain ? `${n.domain}.` : ''}${n.opType}`));
const ops = [...new Set([...ours.keys(), ...[...theirs.keys()]])].sort((a, b) => (theirs.get(b) ?? 0) - (theirs.get(a) ?? 0));
console.log(`${'op'.padEnd(36)} ours  after ORT`);
for (const op of ops) console.log(`${op.padEnd(36)} ${String(ours.get(op) ?? '').padStart(4)}  ${String(theirs.get(op) ?? '').padStart(4)}`);
console.log(`${'total'.padEnd(36)} ${String(graph.nodes.length).padStart(4)}  ${String(optimized.graph!.node!.length).padStart(4)}`);

// Time by op type over one batch of 32 × 128 tokens (after a warm-up run).
const prefix = join(tmpdir(), `embedtune-profile-${process.pid}`);
const profiled = await Session.create(graph, { threads: Number(threads), profilePrefix: prefix });
const feed = padBatch(Array.from({ length: 32 }, (_, i) => Array.from({ length: 128 }, (_, j) => 5 + ((i * 131 + j * 7) % 1000))), readConfig(dir!).padTokenId, '', profiled.inputNames.includes('token_type_ids'));
await profiled.run(feed);
await profiled.run(feed);
profiled.endProfiling();
await profiled.release();
const file = readdirSync(tmpdir()).find((f) => f.startsWith(`embedtune-profile-${process.pid}`))!;
const events = JSON.parse(readFileSync(join(tmpdir(), file), 'utf8')) as { cat: string; name: string; ts: number; dur: number; args?: { op_name?: string } }[];
const lastRun = Math.max(...events.filter((e) => e.name === 'model_run').map((e) => e.ts)); // the second (warm) run only
const byOp = new Map<string, number>();
for (const e of events) if (e.cat === 'Node' && e.name.endsWith('_kernel_time') && e.ts >= lastRun) byOp.set(e.args!.op_name!, (byOp.get(e.args!.op_name!) ?? 0) + e.dur);
const total = [...byOp.values()].reduce((a, b) => a + b, 0);
console.log(`\ntime per batch by op (${threads} threads): ${(total / 1000).toFixed(1)} ms`);
for (const [op, us] of [...byOp].sort((a, b) => b[1] - a[1])) console.log(`${op.padEnd(36)} ${(us / 1000).toFixed(1).padStart(8)} ms ${((100 * us) / total).toFixed(1).padStart(5)}%`);
