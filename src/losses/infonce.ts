/**
 * InfoNCE (MultipleNegativesRankingLoss) over the score matrix q · pᵀ / τ. Passages come in
 * groups of `groupSize` per query, the positive first; every other passage in the batch is a
 * negative for the query (in-batch negatives plus its own hard negatives). Matryoshka (as
 * PaddleNLP's `embedding_matryoshka_dims`): the loss is the weighted sum over the listed
 * embedding prefixes, each re-normalised; list the full dimension to include it.
 */
import type { Value } from '../graph/graph.js';
import * as op from '../graph/ops.js';

export interface InfoNCEOptions {
  temperature: number;
  /** Embedding prefixes to train (e.g. [64, 128, 384]); unset = the full embedding only. */
  matryoshkaDims?: number[];
  /** Weight per Matryoshka dimension (default 1 each). */
  matryoshkaWeights?: number[];
  /** Whether pooled embeddings are unit vectors (then prefixes are re-normalised). */
  normalized: boolean;
}

/** Mean cross-entropy of each query's scores against its label (the positive's column). */
function crossEntropy(q: Value, p: Value, labels: Value, temperature: number): Value {
  const scores = op.mul(op.matmulTransB(q, p), op.scalar(q, 1 / temperature)); // [Q, P]
  const logp = op.gatherElements(op.logSoftmax(scores, 1), labels, 1); // [Q, 1]
  return op.neg(op.reduceMean(op.squeeze(logp, [1]), [0], false));
}

/**
 * q [Q, d], p [Q·groupSize, d] (pooled, before any prefix cut), labels int64 [Q, 1] → scalar loss.
 * @example
 *   const loss = infoNCE(qEmb, pEmb, labels, { temperature: 0.02, normalized: true });
 */
export function infoNCE(q: Value, p: Value, labels: Value, o: InfoNCEOptions): Value {
  const dims = o.matryoshkaDims ?? [];
  if (dims.length === 0) return crossEntropy(q, p, labels, o.temperature);
  const width = q.shape[1];
  const wrong = dims.find((d) => !Number.isInteger(d) || d < 1 || (typeof width === 'number' && d > width));
  if (wrong !== undefined) throw new Error(`matryoshka dimension ${wrong} is not an integer in 1..${width} (the embedding's size)`);
  let loss: Value | undefined;
  dims.forEach((d, i) => {
    const cut = (x: Value) => {
      if (d === x.shape[1]) return x;
      const prefix = op.slice(x, [0], [d], [1]);
      return o.normalized ? op.l2Normalize(prefix) : prefix;
    };
    const ce = crossEntropy(cut(q), cut(p), labels, o.temperature);
    const w = o.matryoshkaWeights?.[i] ?? 1;
    const term = w === 1 ? ce : op.mul(ce, op.scalar(ce, w));
    loss = loss ? op.add(loss, term) : term;
  });
  return loss!;
}
