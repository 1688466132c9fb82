/**
 * The pre-norm decoder shared by Qwen2 and Qwen3 (Llama-style), read as an embedder:
 *   x = x + Attention(RMSNorm(x));  x = x + W_down·(silu(W_gate·x) ⊙ W_up·x)
 * with rotary position embeddings, grouped-query attention (fewer key/value heads than query
 * heads), a causal mask combined with the padding mask, and a final RMSNorm. Tensor names are
 * Hugging Face's after `model.` (stripped on load): `embed_tokens`, `layers.N.self_attn.q_proj`, …
 * Shapes: x [batch, seq, hidden].
 */
import { f32, type Graph, type Value } from '../graph/graph.js';
import * as op from '../graph/ops.js';
import type { ModelInputs } from './bert.js';
import type { ModelConfig } from './config.js';
import { dense, type Params } from './params.js';

/** Decoders read token ids and the attention mask (either padding side). */
export function decoderInputs(graph: Graph, prefix = ''): ModelInputs {
  const dims = [`${prefix}batch`, `${prefix}sequence`];
  return {
    inputIds: graph.input(`${prefix}input_ids`, 'int64', dims),
    attentionMask: graph.input(`${prefix}attention_mask`, 'int64', dims),
  };
}

/** What every layer shares: RoPE's cos/sin [b, 1, s, d] and the additive mask [b, 1, 1, s, s]. */
export interface DecoderContext {
  cos: Value;
  sin: Value;
  bias: Value;
}

/**
 * Position ids from the attention mask (cumsum − 1, as Hugging Face's generate does; pads get −1,
 * never read), so a left-padded row's first token is at position 0 like an unpadded one.
 */
export function decoderContext(mask: Value, c: ModelConfig): DecoderContext {
  const positions = op.cast(op.sub(op.mul(op.cumsum(mask, 1), mask), op.ints(mask, [1])), 'float32'); // [b, s]; pads → −1, unused
  const half = c.headDim / 2;
  const invFreq = Float32Array.from({ length: half }, (_, i) => 1 / Math.pow(c.ropeTheta, (2 * i) / c.headDim));
  const freqs = op.mul(op.unsqueeze(positions, [2]), mask.graph.constant(f32(invFreq, [half]), 'rope_inv_freq')); // [b, s, d/2]
  const angles = op.unsqueeze(op.concat([freqs, freqs], -1), [1]); // [b, 1, s, d]
  // Causal and padding: query i attends to key j ≤ i that is a real token.
  const seq = op.squeeze(op.slice(op.shape(mask), [1], [2], [0]), [0]);
  const index = op.range(seq);
  const causal = op.cast(op.greaterOrEqual(op.unsqueeze(index, [1]), op.unsqueeze(index, [0])), 'float32'); // [s, s]
  const keys = op.cast(op.unsqueeze(mask, [1, 2]), 'float32'); // [b, 1, 1, s]
  const allowed = op.mul(causal, keys); // [b, 1, s, s]
  // A large finite negative (not −inf) keeps rows with no allowed key (left pads) finite.
  const bias = op.unsqueeze(op.mul(op.sub(op.scalar(allowed, 1), allowed), op.scalar(allowed, -1e9)), [1]);
  return { cos: op.cos(angles), sin: op.sin(angles), bias };
}

/** x·cos + rotate_half(x)·sin, rotate_half(x) = [−x₂, x₁] over the halves of the last axis. */
function rotary(x: Value, ctx: DecoderContext, headDim: number): Value {
  const half = headDim / 2;
  const rotated = op.concat([op.neg(op.slice(x, [half], [headDim], [-1])), op.slice(x, [0], [half], [-1])], -1);
  return op.add(op.mul(x, ctx.cos), op.mul(rotated, ctx.sin));
}

function selfAttention(x: Value, ctx: DecoderContext, p: Params, prefix: string, c: ModelConfig): Value {
  const { hiddenSize: h, numHeads: heads, numKvHeads: kvHeads, headDim: d } = c;
  const group = heads / kvHeads;
  const project = (name: string, n: number, bias: boolean) => {
    let y = op.reshape(dense(x, p.linear(`${prefix}.self_attn.${name}`, h, n * d, bias)), [0, 0, n, d]); // [b, s, n, d]
    if (c.qkNorm && name !== 'v_proj') y = op.rmsNorm(y, p.tensor(`${prefix}.self_attn.${name[0]}_norm.weight`, [d]), c.layerNormEps);
    return op.transpose(y, [0, 2, 1, 3]); // [b, n, s, d]
  };
  const q = rotary(project('q_proj', heads, c.attentionBias), ctx, d);
  const k = rotary(project('k_proj', kvHeads, c.attentionBias), ctx, d);
  const v = project('v_proj', kvHeads, c.attentionBias);
  // Grouped-query attention without copying keys and values: query head kv·group + r reads
  // key/value head kv, so queries are viewed as [b, kv, group, s, d] against [b, kv, 1, s, d].
  const qg = op.reshape(q, [0, kvHeads, group, -1, d]);
  const kT = op.unsqueeze(op.transposeLast(k), [2]);
  const scores = op.add(op.mul(op.matmul(qg, kT), op.scalar(x, 1 / Math.sqrt(d))), ctx.bias); // [b, kv, group, s, s]
  const context = op.matmul(op.softmax(scores, -1), op.unsqueeze(v, [2])); // [b, kv, group, s, d]
  const merged = op.reshape(op.transpose(op.reshape(context, [0, heads, -1, d]), [0, 2, 1, 3]), [0, 0, heads * d]);
  return dense(merged, p.linear(`${prefix}.self_attn.o_proj`, heads * d, h, false));
}

function mlp(x: Value, p: Params, prefix: string, c: ModelConfig): Value {
  const gate = p.linear(`${prefix}.mlp.gate_proj`, c.hiddenSize, c.intermediateSize, false);
  const up = p.linear(`${prefix}.mlp.up_proj`, c.hiddenSize, c.intermediateSize, false);
  const down = p.linear(`${prefix}.mlp.down_proj`, c.intermediateSize, c.hiddenSize, false);
  return dense(op.mul(op.silu(dense(x, gate)), dense(x, up)), down);
}

export function decoderLayer(x: Value, ctx: DecoderContext, p: Params, index: number, c: ModelConfig): Value {
  const prefix = `layers.${index}`;
  const norm = (name: string, t: Value) => op.rmsNorm(t, p.tensor(`${prefix}.${name}.weight`, [c.hiddenSize]), c.layerNormEps);
  const a = op.add(x, selfAttention(norm('input_layernorm', x), ctx, p, prefix, c));
  return op.add(a, mlp(norm('post_attention_layernorm', a), p, prefix, c));
}

/** Token embeddings [batch, seq, hidden]. */
export function decoderEmbeddings(inputs: ModelInputs, p: Params, c: ModelConfig): Value {
  return op.gather(p.tensor('embed_tokens.weight', [c.vocabSize, c.hiddenSize]), inputs.inputIds);
}

/** The final RMSNorm after the last layer. */
export function decoderNorm(x: Value, p: Params, c: ModelConfig): Value {
  return op.rmsNorm(x, p.tensor('norm.weight', [c.hiddenSize]), c.layerNormEps);
}

/** Hidden states [batch, seq, hidden] of a Qwen2/Qwen3 decoder. */
export function decoder(inputs: ModelInputs, p: Params, c: ModelConfig): Value {
  const ctx = decoderContext(inputs.attentionMask, c);
  let x = decoderEmbeddings(inputs, p, c);
  for (let i = 0; i < c.numLayers; i++) x = decoderLayer(x, ctx, p, i, c);
  return decoderNorm(x, p, c);
}
