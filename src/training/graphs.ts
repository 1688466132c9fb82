/**
 * The graphs a training run executes. Weights are graph inputs (zero-copy, updated in place
 * by the optimizer between runs); gradients are graph outputs named `grad.<tensor>`.
 *
 * - step:  queries + passages → InfoNCE loss and every weight's gradient, in one run.
 * - embed: a tower's pooled embeddings with the current weights (GradCache pass 1, eval).
 * - lossGrad: embeddings → loss and d loss / d embeddings (GradCache pass 2).
 * - vjp:   a tower + upstream d loss / d embedding → weight gradients (GradCache pass 3).
 */
import { gradients } from '../graph/autodiff.js';
import { Graph, type Value } from '../graph/graph.js';
import * as op from '../graph/ops.js';
import type { ModelConfig } from '../models/config.js';
import { sentenceEmbedding } from '../models/architectures.js';
import { Params, type WeightLayout } from '../models/params.js';
import type { PoolingOptions } from '../models/pooling.js';
import type { NamedTensor } from '../models/safetensors.js';
import { infoNCE, type InfoNCEOptions } from '../losses/infonce.js';
import { distillLoss, type DistillOptions } from '../losses/distill.js';
import { m3Heads, m3Loss, type M3Reps } from '../losses/m3.js';

/** bge-m3's unified fine-tuning (losses/m3.ts): the towers also give sparse weights and ColBERT vectors. */
export interface UnifiedOptions {
  selfDistill: boolean;
  /** colbert_linear's output size. */
  colbertDim: number;
}

/** The names a unified tower's extra outputs (and their seeds, with GRAD_PREFIX) go by. */
export const M3_OUTPUTS = { sparse: 'sparse', colbert: 'colbert' } as const;

/** InfoNCE, plus the weighted distillation term when distilling (inputs `teacher`, `group_columns` [Q, G]). */
function contrastive(graph: Graph, q: Value, p: Value, labels: Value, loss: InfoNCEOptions & { distill?: DistillOptions }): Value {
  const l = infoNCE(q, p, labels, loss);
  if (!loss.distill) return l;
  const teacher = graph.input('teacher', 'float32', ['queries', 'group']);
  const columns = graph.input('group_columns', 'int64', ['queries', 'group']);
  const kd = distillLoss(q, p, teacher, columns, loss.distill, loss.temperature);
  return op.add(l, loss.distill.weight === 1 ? kd : op.mul(kd, op.scalar(kd, loss.distill.weight)));
}

export interface TrainGraph {
  graph: Graph;
  /** HF tensor names whose dense gradient is a `grad.<name>` output. */
  names: string[];
  /**
   * Lookup tables whose gradient comes as rows: for each lookup k, `grad.<name>#k` holds
   * d loss / d(looked-up rows) [..., width] and `rows.<name>#k` the row ids [...]. Only the rows
   * a batch uses get gradient work (no dense vocab × hidden buffer).
   */
  sparse: { name: string; parts: { grad: string; rows: string }[] }[];
  /** Inputs that are fed but not trained (frozen). */
  frozen: string[];
  params: Params;
}

export interface GradientOptions {
  /** Tensors to feed but not train. */
  frozen?: Set<string>;
  /** Give tables that are only read by row lookups (Gather) their gradient as rows. */
  sparse?: boolean;
}

export const GRAD_PREFIX = 'grad.';
export const ROWS_PREFIX = 'rows.';

function tower(graph: Graph, params: Params, config: ModelConfig, prefix: string, pooling: PoolingOptions): Value {
  return sentenceEmbedding(graph, params, config, prefix, pooling).embedding;
}

/** A tower with bge-m3's heads: the pooled embedding, and sparse weights and ColBERT vectors over its hidden states. */
function m3Tower(graph: Graph, params: Params, config: ModelConfig, prefix: string, pooling: PoolingOptions, unified: UnifiedOptions): M3Reps {
  const { hidden, embedding } = sentenceEmbedding(graph, params, config, prefix, pooling);
  return { dense: embedding, ...m3Heads(hidden, params, config.hiddenSize, unified.colbertDim) };
}

/** Σ ⟨rep, seed⟩ over a unified tower's three outputs, each seed a graph input `grad_<output>`: its gradients are the tower's VJP. */
export function seeded(graph: Graph, r: M3Reps): Value {
  const dot = (v: Value, name: string) => op.reduceSum(op.mul(v, graph.input(name, 'float32', v.shape)), [...v.shape.keys()], false);
  return op.add(op.add(dot(r.dense, 'grad_embedding'), dot(r.sparse, `grad_${M3_OUTPUTS.sparse}`)), dot(r.colbert, `grad_${M3_OUTPUTS.colbert}`));
}

/** A unified tower's outputs: `embedding`, `sparse` [batch, sequence], `colbert` [batch, sequence, d]. */
function outputM3(graph: Graph, r: M3Reps, dim: number, colbertDim: number): void {
  graph.output(r.dense, 'embedding', ['batch', dim]);
  graph.output(r.sparse, M3_OUTPUTS.sparse, ['batch', 'sequence']);
  graph.output(r.colbert, M3_OUTPUTS.colbert, ['batch', 'sequence', colbertDim]);
}

/** The Gather nodes reading rows of `table`, when those are its only consumers. */
function lookups(graph: Graph, table: string): Graph['nodes'] | null {
  const users = graph.nodes.filter((n) => n.inputs.includes(table));
  const ok = users.length > 0 && users.every((n) => n.op === 'Gather' && n.inputs[0] === table && n.inputs[1] !== table && (n.attrs.axis ?? 0) === 0);
  return ok ? users : null;
}

/**
 * Appends the gradients of `of` (seeded by `seed` when not a scalar) as graph outputs: dense
 * `grad.<name>` for weights, row gradients for lookup tables (o.sparse), and `grad.<value>` for
 * each of `extra` (values that are not weights, such as a layer's input).
 */
export function outputGradients(graph: Graph, params: Params, of: Value, seed: Value | undefined, o: GradientOptions, extra: Value[] = []): Omit<TrainGraph, 'graph' | 'params'> {
  const all = [...params.values.keys()];
  const frozen = all.filter((n) => o.frozen?.has(n));
  const trained = all.filter((n) => !o.frozen?.has(n));
  const sparseTables = new Map<string, Graph['nodes']>();
  if (o.sparse) for (const n of trained) {
    const l = lookups(graph, params.values.get(n)!.name);
    if (l) sparseTables.set(n, l);
  }
  const names = trained.filter((n) => !sparseTables.has(n));
  const rowValues = [...sparseTables.values()].flatMap((nodes) => nodes.map((node) => graph.values.get(node.outputs[0]!)!));
  const wrt = [...names.map((n) => params.values.get(n)!), ...rowValues, ...extra];
  if (wrt.length === 0) return { names, sparse: [], frozen }; // nothing here trains (LoRA: the embeddings)
  const grads = gradients(graph, of, wrt, seed);
  names.forEach((n, i) => graph.output(grads[i]!, GRAD_PREFIX + n, params.values.get(n)!.shape));
  extra.forEach((v, i) => graph.output(grads[names.length + rowValues.length + i]!, GRAD_PREFIX + v.name, v.shape));
  let k = names.length;
  const sparse = [...sparseTables].map(([name, nodes]) => ({
    name,
    parts: nodes.map((node, j) => {
      const part = { grad: `${GRAD_PREFIX}${name}#${j}`, rows: `${ROWS_PREFIX}${name}#${j}` };
      graph.output(grads[k++]!, part.grad);
      graph.output(graph.values.get(node.inputs[1]!)!, part.rows);
      return part;
    }),
  }));
  return { names, sparse, frozen };
}

/** Loss and all gradients for a batch of `q_*` queries and `p_*` passages, with `labels` [Q, 1]. */
export function stepGraph(config: ModelConfig, weights: Map<string, NamedTensor>, pooling: PoolingOptions, loss: Omit<InfoNCEOptions, 'normalized'> & { distill?: DistillOptions; unified?: UnifiedOptions }, o: GradientOptions = {}, layout: WeightLayout = 'hf'): TrainGraph {
  const graph = new Graph('train-step');
  const params = new Params(graph, weights, 'input', layout, config.loraScale);
  const labels = graph.input('labels', 'int64', ['queries', 1]);
  let l: Value;
  if (loss.unified) {
    const [q, p] = ['q_', 'p_'].map((prefix) => m3Tower(graph, params, config, prefix, pooling, loss.unified!)) as [M3Reps, M3Reps];
    l = m3Loss(q, p, labels, { temperature: loss.temperature, selfDistill: loss.unified.selfDistill });
  } else {
    const q = tower(graph, params, config, 'q_', pooling);
    const p = tower(graph, params, config, 'p_', pooling);
    l = contrastive(graph, q, p, labels, { ...loss, normalized: pooling.normalize });
  }
  graph.output(l, 'loss', []);
  return { graph, params, ...outputGradients(graph, params, l, undefined, o) };
}

/** Pooled embeddings of one tower with weights as inputs (`layout`: how `weights` lie, see WeightLayout). */
export function embedGraph(config: ModelConfig, weights: Map<string, NamedTensor>, pooling: PoolingOptions, layout: WeightLayout = 'hf', unified?: UnifiedOptions): TrainGraph {
  const graph = new Graph('embed');
  const params = new Params(graph, weights, 'input', layout, config.loraScale);
  if (unified) outputM3(graph, m3Tower(graph, params, config, '', pooling, unified), config.hiddenSize, unified.colbertDim);
  else graph.output(tower(graph, params, config, '', pooling), 'embedding', ['batch', pooling.dimensions ?? config.hiddenSize]);
  return { graph, names: [...params.values.keys()], sparse: [], frozen: [], params };
}

/** Weight gradients of one tower given d loss / d embedding (`grad_embedding`, [batch, dim]). */
export function vjpGraph(config: ModelConfig, weights: Map<string, NamedTensor>, pooling: PoolingOptions, o: GradientOptions = {}, layout: WeightLayout = 'hf', unified?: UnifiedOptions): TrainGraph {
  const graph = new Graph('vjp');
  const params = new Params(graph, weights, 'input', layout, config.loraScale);
  if (unified) return { graph, params, ...outputGradients(graph, params, seeded(graph, m3Tower(graph, params, config, '', pooling, unified)), undefined, o) };
  const e = tower(graph, params, config, '', pooling);
  const seed = graph.input('grad_embedding', 'float32', e.shape);
  return { graph, params, ...outputGradients(graph, params, e, seed, o) };
}

/** InfoNCE on precomputed embeddings: `queries` [Q, d], `passages` [P, d], `labels` → loss, grad.queries, grad.passages. */
export function lossGradGraph(dim: number, loss: InfoNCEOptions & { distill?: DistillOptions }): Graph {
  const graph = new Graph('loss-grad');
  const q = graph.input('queries', 'float32', ['queries', dim]);
  const p = graph.input('passages', 'float32', ['passages', dim]);
  const labels = graph.input('labels', 'int64', ['queries', 1]);
  const l = contrastive(graph, q, p, labels, loss);
  graph.output(l, 'loss', []);
  const [dq, dp] = gradients(graph, l, [q, p]);
  graph.output(dq!, `${GRAD_PREFIX}queries`, q.shape);
  graph.output(dp!, `${GRAD_PREFIX}passages`, p.shape);
  return graph;
}

/**
 * The unified loss over precomputed representations (GradCache pass 2): `queries`/`passages`
 * [N, dim], `q_sparse`/`p_sparse` [N, L], `q_colbert`/`p_colbert` [N, L, d], `labels` and m3Feed's
 * plan → loss and the gradient of each representation (`grad.<input>`).
 */
export function m3LossGradGraph(dim: number, colbertDim: number, temperature: number, selfDistill: boolean): Graph {
  const graph = new Graph('m3-loss-grad');
  const side = (name: string, dense: string): M3Reps => ({
    dense: graph.input(dense, 'float32', [name, dim]),
    sparse: graph.input(`${name[0]}_${M3_OUTPUTS.sparse}`, 'float32', [name, `${name[0]}_length`]),
    colbert: graph.input(`${name[0]}_${M3_OUTPUTS.colbert}`, 'float32', [name, `${name[0]}_length`, colbertDim]),
  });
  const q = side('queries', 'queries');
  const p = side('passages', 'passages');
  const labels = graph.input('labels', 'int64', ['queries', 1]);
  const l = m3Loss(q, p, labels, { temperature, selfDistill });
  graph.output(l, 'loss', []);
  const wrt = [q.dense, q.sparse, q.colbert, p.dense, p.sparse, p.colbert];
  gradients(graph, l, wrt).forEach((g, i) => graph.output(g, `${GRAD_PREFIX}${wrt[i]!.name}`, wrt[i]!.shape));
  return graph;
}
