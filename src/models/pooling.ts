/**
 * Sentence embeddings from hidden states: CLS, masked mean or last-token pooling, optional
 * truncation to the first `dimensions` (Matryoshka), then optional L2 normalisation.
 */
import type { Value } from '../graph/graph.js';
import * as op from '../graph/ops.js';

/**
 * sentence-transformers' modes: `last` is its `lasttoken`; `max`, `mean_sqrt_len_tokens` and
 * `weightedmean` (token i weighted i + 1) as its Pooling module computes them.
 */
export type Pooling = 'cls' | 'mean' | 'last' | 'max' | 'mean_sqrt_len_tokens' | 'weightedmean';
export const POOLINGS: readonly Pooling[] = ['cls', 'mean', 'last', 'max', 'mean_sqrt_len_tokens', 'weightedmean'];

export interface PoolingOptions {
  pooling: Pooling;
  normalize: boolean;
  /** Keep only the first n dimensions. */
  dimensions?: number;
}

/** hidden [batch, seq, hidden], mask int64 [batch, seq] → [batch, dim]. */
export function pool(hidden: Value, mask: Value, o: PoolingOptions, head?: (pooled: Value) => Value): Value {
  let x: Value;
  if (o.pooling === 'cls') {
    x = op.squeeze(op.slice(hidden, [0], [1], [1]), [1]); // [b, h]
  } else if (o.pooling === 'mean' || o.pooling === 'mean_sqrt_len_tokens') {
    const m = op.cast(op.unsqueeze(mask, [2]), 'float32'); // [b, s, 1]
    const summed = op.reduceSum(op.mul(hidden, m), [1], false); // [b, h]
    const count = op.max(op.reduceSum(m, [1], false), op.scalar(m, 1e-9)); // [b, 1]
    x = op.div(summed, o.pooling === 'mean' ? count : op.sqrt(count));
  } else if (o.pooling === 'weightedmean') {
    // Token i (from 0) weighs i + 1, padding 0: Σ w·h / max(Σ w, 1e-9).
    const seq = op.squeeze(op.slice(op.shape(mask), [1], [2], [0]), [0]);
    const position = op.cast(op.add(op.range(seq), op.ints(mask, [1])), 'float32'); // [s]
    const w = op.mul(op.cast(op.unsqueeze(mask, [2]), 'float32'), op.unsqueeze(position, [0, 2])); // [b, s, 1]
    x = op.div(op.reduceSum(op.mul(hidden, w), [1], false), op.max(op.reduceSum(w, [1], false), op.scalar(w, 1e-9)));
  } else if (o.pooling === 'max') {
    // Padding at −1e30 (sentence-transformers: −inf), then the max over tokens.
    const m = op.cast(op.unsqueeze(mask, [2]), 'float32');
    x = op.reduceMax(op.add(op.mul(hidden, m), op.mul(op.sub(m, op.scalar(m, 1)), op.scalar(m, 1e30))), [1], false);
  } else {
    // The last real token of each row, for either padding side: max over i of mask·(i + 1), − 1.
    const seq = op.squeeze(op.slice(op.shape(mask), [1], [2], [0]), [0]);
    const last = op.sub(op.reduceMax(op.mul(mask, op.add(op.range(seq), op.ints(mask, [1]))), [1]), op.ints(mask, [1])); // [b, 1]
    const index = op.expand(op.unsqueeze(last, [2]), op.concat([op.ints(mask, [1, 1]), op.slice(op.shape(hidden), [2], [3], [0])], 0));
    x = op.squeeze(op.gatherElements(hidden, index, 1), [1]); // [b, h]
  }
  if (head) x = head(x); // a model's own projection of the pooled vector (USE-Lite's tanh layer)
  if (o.dimensions !== undefined) x = op.slice(x, [0], [o.dimensions], [1]);
  return o.normalize ? op.l2Normalize(x) : x;
}
