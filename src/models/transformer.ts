/**
 * The post-LayerNorm transformer encoder shared by BERT and XLM-RoBERTa:
 *   x = LN(x + Attention(x));  x = LN(x + W2·gelu(W1·x))
 * Shapes: x [batch, seq, hidden]; the additive mask [batch, 1, 1, seq].
 */
import type { Value } from '../graph/graph.js';
import * as op from '../graph/ops.js';
import type { ModelConfig } from './config.js';
import { dense, type Params } from './params.js';

/** attention_mask (int64 [batch, seq], 1 = token) → additive bias [batch, 1, 1, seq]. */
export function attentionBias(mask: Value): Value {
  const m = op.cast(op.unsqueeze(mask, [1, 2]), 'float32');
  // A large finite negative (not -inf) keeps fully padded rows finite.
  return op.mul(op.sub(op.scalar(m, 1), m), op.scalar(m, -1e9));
}

function selfAttention(x: Value, bias: Value, p: Params, prefix: string, c: ModelConfig): Value {
  const h = c.hiddenSize;
  const heads = c.numHeads;
  const headDim = h / heads;
  // [b, s, h] → [b, heads, s, headDim]
  const split = (v: Value) => op.transpose(op.reshape(v, [0, 0, heads, headDim]), [0, 2, 1, 3]);
  const proj = (name: string) => {
    return dense(x, p.linear(`${prefix}.attention.self.${name}`, h, h));
  };
  const q = split(proj('query'));
  const kT = op.transpose(op.reshape(proj('key'), [0, 0, heads, headDim]), [0, 2, 3, 1]);
  const v = split(proj('value'));
  const scores = op.add(op.mul(op.matmul(q, kT), op.scalar(x, 1 / Math.sqrt(headDim))), bias);
  const context = op.matmul(op.softmax(scores, -1), v);
  const merged = op.reshape(op.transpose(context, [0, 2, 1, 3]), [0, 0, h]);
  return dense(merged, p.linear(`${prefix}.attention.output.dense`, h, h));
}

function feedForward(x: Value, p: Params, prefix: string, c: ModelConfig): Value {
  const up = p.linear(`${prefix}.intermediate.dense`, c.hiddenSize, c.intermediateSize);
  const down = p.linear(`${prefix}.output.dense`, c.intermediateSize, c.hiddenSize);
  return dense(op.gelu(dense(x, up)), down);
}

export function encoderLayer(x: Value, bias: Value, p: Params, index: number, c: ModelConfig): Value {
  const prefix = `encoder.layer.${index}`;
  const ln1 = p.layerNorm(`${prefix}.attention.output.LayerNorm`, c.hiddenSize);
  const a = op.layerNorm(op.add(x, selfAttention(x, bias, p, prefix, c)), ln1.scale, ln1.bias, c.layerNormEps);
  const ln2 = p.layerNorm(`${prefix}.output.LayerNorm`, c.hiddenSize);
  return op.layerNorm(op.add(a, feedForward(a, p, prefix, c)), ln2.scale, ln2.bias, c.layerNormEps);
}

/** The LayerNorm applied to the embedding sum before the first layer. */
export function embeddingNorm(embeddings: Value, p: Params, c: ModelConfig): Value {
  const ln = p.layerNorm('embeddings.LayerNorm', c.hiddenSize);
  return op.layerNorm(embeddings, ln.scale, ln.bias, c.layerNormEps);
}

/** Embedding sum → LayerNorm → every encoder layer. Returns hidden states [batch, seq, hidden]. */
export function encoder(embeddings: Value, mask: Value, p: Params, c: ModelConfig): Value {
  let x = embeddingNorm(embeddings, p, c);
  const bias = attentionBias(mask);
  for (let i = 0; i < c.numLayers; i++) x = encoderLayer(x, bias, p, i, c);
  return x;
}
