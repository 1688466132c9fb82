/**
 * Knowledge distillation from a teacher's (a reranker's) scores of each query's own group —
 * the positive first, then its hard negatives, as the records' `pos_scores` / `neg_scores` give
 * them. Added to InfoNCE with a weight (FlagEmbedding adds its `kl_div` term with weight 1).
 *   kl_div:     −mean_q Σ_g softmax(t / τ_t)_g · log_softmax(s / τ)_g     (FlagEmbedding's distill_loss)
 *   margin_mse: mean_{q,n} ((s_pos − s_n) − (t_pos − t_n))²                (Hofstätter et al.; sentence-transformers' MarginMSELoss)
 * s = q · p over the query's own group (the student), t the teacher's scores.
 */
import type { Value } from '../graph/graph.js';
import * as op from '../graph/ops.js';

export type DistillType = 'kl_div' | 'margin_mse';

export interface DistillOptions {
  type: DistillType;
  /** Weight of the distillation term next to InfoNCE's 1. */
  weight: number;
  /** τ_t, the teacher's softmax temperature (kl_div; default 1: FlagEmbedding's plain softmax). */
  teacherTemperature?: number;
}

/**
 * The distillation term for teacher scores `teacher` [Q, G]; `columns` [Q, G] (int64) are the
 * columns of each query's own group among the passages (query i: i·G … i·G + G − 1).
 * @example const kd = distillLoss(q, p, teacher, columns, { type: 'kl_div', weight: 1 }, 0.02);
 */
export function distillLoss(q: Value, p: Value, teacher: Value, columns: Value, o: DistillOptions, temperature: number): Value {
  const s = op.gatherElements(op.matmulTransB(q, p), columns, 1); // the student's [Q, G]
  if (o.type === 'kl_div') {
    const target = op.softmax(op.mul(teacher, op.scalar(teacher, 1 / (o.teacherTemperature ?? 1))), 1);
    const logp = op.logSoftmax(op.mul(s, op.scalar(s, 1 / temperature)), 1);
    return op.neg(op.reduceMean(op.reduceSum(op.mul(target, logp), [1], false), [0], false));
  }
  const margins = (x: Value) => op.sub(op.slice(x, [0], [1], [1]), op.slice(x, [1], op.slice(op.shape(x), [1], [2], [0]), [1])); // [Q, G−1]
  const diff = op.sub(margins(s), margins(teacher));
  return op.reduceMean(op.reduceMean(op.mul(diff, diff), [1], false), [0], false);
}
