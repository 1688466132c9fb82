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
import type { ModelConfig } from '../models/config.js';
import { sentenceEmbedding } from '../models/encoder.js';
import { Params } from '../models/params.js';
import type { PoolingOptions } from '../models/pooling.js';
import type { NamedTensor } from '../models/safetensors.js';
import { infoNCE, type InfoNCEOptions } from '../losses/infonce.js';

export interface TrainGraph {
  graph: Graph;
  /** HF tensor names, in the order of the weight inputs and `grad.` outputs. */
  names: string[];
  params: Params;
}

export const GRAD_PREFIX = 'grad.';

function tower(graph: Graph, params: Params, config: ModelConfig, prefix: string, pooling: PoolingOptions): Value {
  return sentenceEmbedding(graph, params, config, prefix, pooling).embedding;
}

function outputGradients(graph: Graph, params: Params, of: Value, seed?: Value): string[] {
  const names = [...params.values.keys()];
  const grads = gradients(graph, of, names.map((n) => params.values.get(n)!), seed);
  grads.forEach((g, i) => graph.output(g, GRAD_PREFIX + names[i], params.values.get(names[i])!.shape));
  return names;
}

/** Loss and all gradients for a batch of `q_*` queries and `p_*` passages, with `labels` [Q, 1]. */
export function stepGraph(config: ModelConfig, weights: Map<string, NamedTensor>, pooling: PoolingOptions, loss: Omit<InfoNCEOptions, 'normalized'>): TrainGraph {
  const graph = new Graph('train-step');
  const params = new Params(graph, weights, 'input');
  const q = tower(graph, params, config, 'q_', pooling);
  const p = tower(graph, params, config, 'p_', pooling);
  const labels = graph.input('labels', 'int64', ['queries', 1]);
  const l = infoNCE(q, p, labels, { ...loss, normalized: pooling.normalize });
  graph.output(l, 'loss', []);
  return { graph, names: outputGradients(graph, params, l), params };
}

/** Pooled embeddings of one tower with weights as inputs. */
export function embedGraph(config: ModelConfig, weights: Map<string, NamedTensor>, pooling: PoolingOptions): TrainGraph {
  const graph = new Graph('embed');
  const params = new Params(graph, weights, 'input');
  graph.output(tower(graph, params, config, '', pooling), 'embedding', ['batch', pooling.dimensions ?? config.hiddenSize]);
  return { graph, names: [...params.values.keys()], params };
}

/** Weight gradients of one tower given d loss / d embedding (`grad_embedding`, [batch, dim]). */
export function vjpGraph(config: ModelConfig, weights: Map<string, NamedTensor>, pooling: PoolingOptions): TrainGraph {
  const graph = new Graph('vjp');
  const params = new Params(graph, weights, 'input');
  const e = tower(graph, params, config, '', pooling);
  const seed = graph.input('grad_embedding', 'float32', e.shape);
  return { graph, names: outputGradients(graph, params, e, seed), params };
}

/** InfoNCE on precomputed embeddings: `queries` [Q, d], `passages` [P, d], `labels` → loss, grad.queries, grad.passages. */
export function lossGradGraph(dim: number, loss: InfoNCEOptions): Graph {
  const graph = new Graph('loss-grad');
  const q = graph.input('queries', 'float32', ['queries', dim]);
  const p = graph.input('passages', 'float32', ['passages', dim]);
  const labels = graph.input('labels', 'int64', ['queries', 1]);
  const l = infoNCE(q, p, labels, loss);
  graph.output(l, 'loss', []);
  const [dq, dp] = gradients(graph, l, [q, p]);
  graph.output(dq, `${GRAD_PREFIX}queries`, q.shape);
  graph.output(dp, `${GRAD_PREFIX}passages`, p.shape);
  return graph;
}
