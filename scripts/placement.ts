/**
 * Where onnxruntime runs each node of every graph embedtune builds, on a device (issue 21):
 * nodes and FLOPs per execution provider, read from onnxruntime's profiler (each kernel run names
 * its provider), for encoding (every architecture; the cross-encoder), the fused training step,
 * GradCache's passes, recompute's layer-wise parts, and the optimizer and copy graphs that keep
 * the state on the device.
 *   node dist/scripts/placement.js [DEVICE=webgpu] [--json]
 * Prints a Markdown table (bench/README.md keeps one). A CPU node counts as shape arithmetic when
 * it makes integers or booleans (shapes, indices, masks), as the mask cast when it turns the
 * token ids' int64 mask into floats; anything else on the CPU is compute that left the device,
 * listed by op, and makes the script exit 1.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadRecords } from '../src/data/records.js';
import { readConfig } from '../src/models/config.js';
import { CrossEncoder } from '../src/models/cross-encoder.js';
import { Encoder, loadWeights } from '../src/models/encoder.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { epochBatches } from '../src/training/sampler.js';
import { Trainer, type TrainerOptions } from '../src/training/trainer.js';
import { Rng } from '../src/util/rng.js';
import { repoRoot } from './make-models.js';

interface Event {
  cat: string;
  name: string;
  args?: { op_name?: string; provider?: string; input_type_shape?: Record<string, number[]>[]; output_type_shape?: Record<string, number[]>[] };
}

export interface Placement {
  graph: string;
  deviceNodes: number;
  cpuNodes: number;
  /** CPU nodes making integers/booleans (shape arithmetic) and the int64 → float mask cast. */
  shapeNodes: number;
  maskCasts: number;
  /** Host↔device copies onnxruntime inserted, and their bytes in one run. */
  copies: number;
  copyBytes: number;
  deviceFlops: number;
  cpuFlops: number;
  /** Float compute the CPU ran, by op (the exceptions). */
  cpuCompute: Record<string, number>;
}

const size = (dims: number[]) => dims.reduce((a, b) => a * b, 1);
const only = (t: Record<string, number[]> | undefined) => (t ? Object.entries(t)[0]! : (['?', []] as [string, number[]]));
const FLOATS = new Set(['float', 'float16', 'double']);

/** FLOPs of one kernel run: 2·K per output element for products (K from A's size), else one per float output element. */
function flops(e: Event): number {
  const [type, out] = only(e.args?.output_type_shape?.[0]);
  if (!FLOATS.has(type)) return 0;
  const op = e.args?.op_name ?? '';
  if (/MatMul|Gemm/.test(op)) {
    const [, a] = only(e.args?.input_type_shape?.[0]);
    const n = out.at(-1) ?? 1;
    return 2 * size(out) * Math.max(1, Math.round((size(a) * n) / Math.max(1, size(out))));
  }
  return size(out);
}

/** One profile file (one graph's session) → its placement, counting each node once (its first run). */
export function placementOf(graph: string, events: Event[]): Placement {
  const p: Placement = { graph, deviceNodes: 0, cpuNodes: 0, shapeNodes: 0, maskCasts: 0, copies: 0, copyBytes: 0, deviceFlops: 0, cpuFlops: 0, cpuCompute: {} };
  const seen = new Set<string>();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || seen.has(e.name)) continue;
    seen.add(e.name);
    const op = e.args?.op_name ?? '?';
    if (op.startsWith('Memcpy')) {
      const [type, dims] = only(e.args?.output_type_shape?.[0]);
      p.copies++;
      p.copyBytes += size(dims) * (type === 'int64' || type === 'double' ? 8 : type === 'bool' || type === 'uint8' ? 1 : 4);
      continue;
    }
    const f = flops(e);
    if (!e.args?.provider?.startsWith('CPU')) {
      p.deviceNodes++;
      p.deviceFlops += f;
      continue;
    }
    p.cpuNodes++;
    p.cpuFlops += f;
    const outType = only(e.args?.output_type_shape?.[0])[0];
    const inType = only(e.args?.input_type_shape?.[0])[0];
    if (!FLOATS.has(outType)) p.shapeNodes++;
    else if (op === 'Cast' && !FLOATS.has(inType)) p.maskCasts++;
    else p.cpuCompute[op] = (p.cpuCompute[op] ?? 0) + 1;
  }
  return p;
}

/** Reads and removes the profiles written under `prefix`, one Placement per graph (same-named graphs merged). */
function collect(dir: string, label: string): Placement[] {
  const out = new Map<string, Placement>();
  for (const f of readdirSync(dir).sort()) {
    const graph = /^p-(.+)_\d{4}-.*\.json$/.exec(f)?.[1];
    if (!graph) continue;
    const p = placementOf(`${label}: ${graph}`, JSON.parse(readFileSync(join(dir, f), 'utf8')) as Event[]);
    rmSync(join(dir, f));
    if (p.deviceNodes + p.cpuNodes === 0) continue; // a session that never ran
    const prev = out.get(p.graph);
    if (!prev) out.set(p.graph, p);
  }
  return [...out.values()];
}

const TEXTS = ['一架飞机要起飞了。', 'what is the flutter of a swept wing', 'boundary layer transition at high Mach numbers'];

/** Every graph's placement on `device`: encoders of each fixture architecture, a cross-encoder, and the training modes on `trainModel`. */
export async function placements(device: string, trainModel = join(repoRoot, 'test', 'fixtures', 'models', 'tiny-bert')): Promise<Placement[]> {
  const dir = mkdtempSync(join(tmpdir(), 'embedtune-placement-'));
  const prefix = join(dir, 'p');
  const rows: Placement[] = [];
  try {
    for (const name of ['tiny-bert', 'tiny-xlmr', 'tiny-qwen2', 'tiny-qwen3', 'tiny-use']) {
      const e = await Encoder.load(join(repoRoot, 'test', 'fixtures', 'models', name), { device, threads: 1, profilePrefix: prefix });
      await e.encode(TEXTS, { quiet: true });
      await e.close();
      rows.push(...collect(dir, `encode ${name}`));
    }
    const ce = await CrossEncoder.load(join(repoRoot, 'test', 'fixtures', 'models', 'tiny-xlmr-reranker'), { device, threads: 1, profilePrefix: prefix });
    await ce.score([[TEXTS[0]!, TEXTS[1]!], [TEXTS[1]!, TEXTS[2]!]], {});
    await ce.close();
    rows.push(...collect(dir, 'score tiny-xlmr-reranker'));
    const { records } = await loadRecords(join(repoRoot, 'data', 'contrastive-zh', 'train.jsonl'), { requirePositives: true });
    const scored = records.slice(0, 24).map((r) => ({ ...r, posScores: r.pos.map((t) => t.length / 10), negScores: r.neg.map((t) => t.length / 10) }));
    const batches = epochBatches(scored, { batchSize: 4, groupSize: 2 }, new Rng(1)).slice(0, 2);
    const base: TrainerOptions = {
      device, pooling: 'mean', normalize: true, temperature: 0.05, learningRate: 1e-4, weightDecay: 0.01, warmupSteps: 0, totalSteps: 2,
      schedule: 'constant', maxGradNorm: 1, maxQueryLength: 32, maxPassageLength: 64, threads: 1, profilePrefix: prefix,
    };
    const modes: [string, Partial<TrainerOptions>][] = [
      ['train', {}],
      ['train GradCache', { miniBatchSize: 2 }],
      ['train recompute', { recompute: true }],
      ['train distillation + Matryoshka', { distill: { type: 'kl_div', weight: 0.5 }, matryoshkaDims: [8, 16] }],
    ];
    for (const [label, extra] of modes) {
      const t = await Trainer.fromWeights(readConfig(trainModel), loadTokenizer(trainModel), loadWeights(trainModel), { ...base, ...extra });
      for (const b of batches) await t.step(b);
      await t.hfWeights();
      t.endProfiling();
      await t.close();
      // The optimizer, copy and sum graphs are the same in every mode: listed once.
      const shared = new Set(['adamw', 'copy', 'grad-norm', 'zeros', 'accumulate', 'add']);
      for (const r of collect(dir, label)) if (!shared.has(r.graph.split(': ')[1]!) || !rows.some((x) => x.graph.split(': ')[1] === r.graph.split(': ')[1])) rows.push(r);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

const pct = (a: number, b: number) => (a + b === 0 ? '–' : `${((100 * a) / (a + b)).toFixed(a === a + b ? 0 : 3)}%`);

export function placementTable(rows: Placement[]): string {
  const lines = ['| graph | nodes on device | on CPU: shape / mask cast / compute | FLOPs on device | copies inserted (bytes) | compute on CPU |', '|---|---:|---:|---:|---:|---|'];
  for (const r of rows) {
    const compute = Object.entries(r.cpuCompute).map(([op, n]) => `${op} ×${n}`).join(', ') || '–';
    const computeNodes = r.cpuNodes - r.shapeNodes - r.maskCasts;
    lines.push(`| ${r.graph} | ${r.deviceNodes} | ${r.shapeNodes} / ${r.maskCasts} / ${computeNodes} | ${pct(r.deviceFlops, r.cpuFlops)} | ${r.copies} (${r.copyBytes}) | ${compute} |`);
  }
  return lines.join('\n');
}

if (process.argv[1]?.endsWith('placement.js')) {
  const device = process.argv.slice(2).find((a) => !a.startsWith('--')) ?? 'webgpu';
  const rows = await placements(device);
  console.log(process.argv.includes('--json') ? JSON.stringify(rows) : placementTable(rows));
  process.exitCode = rows.some((r) => Object.keys(r.cpuCompute).length) ? 1 : 0;
}
