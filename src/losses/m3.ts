/**
 * bge-m3's unified fine-tuning (Chen et al., 2024, "M3-Embedding", §3.3; FlagEmbedding's
 * `unified_finetuning` / `use_self_distill`): one pass gives three scores per query–passage pair,
 * each divided by the temperature,
 *   dense    normalize(h_q[CLS]) · normalize(h_p[CLS])
 *   lexical  Σ over tokens in both of w_q(t)·w_p(t); w(t) = max over t's occurrences of
 *            relu(sparse_linear(h)), special tokens dropped
 *   ColBERT  mean over q's tokens after CLS of the max over p's tokens after CLS of
 *            normalize(colbert_linear(h_q)) · normalize(colbert_linear(h_p))  (real tokens: padding
 *            is not a token — FlagEmbedding's zeroed padding vectors can win a max of negative dots)
 *   ensemble dense + 0.3·lexical + ColBERT
 * and the loss (in-batch negatives, each query's positive first in its group)
 *   L = (CE(dense) + CE(ensemble) + 0.1·CE(lexical) + CE(ColBERT)) / 4
 *   self-distillation: (L + (KL(dense) + 0.1·KL(lexical) + KL(ColBERT)) / 3) / 2, the ensemble's
 *   softmax (held fixed) the teacher of each: KL(s) = −mean_q Σ softmax(ensemble)·log_softmax(s).
 * The lexical matching is planned on the host from the token ids (`m3Feed`): which positions are
 * one term of one text, and which query and passage terms share a token. Checked against a float64
 * PyTorch reference written from those definitions (scripts/torch_m3_unified_reference.py).
 */
import { f32, type Graph, type Value } from '../graph/graph.js';
import * as op from '../graph/ops.js';
import type { Params } from '../models/params.js';
import { dense as linear } from '../models/params.js';
import type { Feed } from '../runtime/session.js';
import { floatTensor, int64Tensor } from '../runtime/tensor.js';

/** The ensemble's weight of the lexical score, and the lexical terms' weight in the loss (FlagEmbedding's). */
export const M3_WEIGHTS = { ensembleLexical: 0.3, lexicalLoss: 0.1 };

export interface M3Options {
  temperature: number;
  /** Add the self-distillation terms, switched per step by the graph input `m3_self_distill` (1 on, 0 off: FlagEmbedding's self_distill_start_step). */
  selfDistill: boolean;
}

/** One side's three representations: dense [N, H] (normalised), token weights [N, L], ColBERT vectors [N, L, d] (normalised; position 0 unused). */
export interface M3Reps {
  dense: Value;
  sparse: Value;
  colbert: Value;
}

/** The two heads over a tower's last hidden states [N, L, H]: relu(sparse_linear(h)) and normalize(colbert_linear(h)). */
export function m3Heads(hidden: Value, params: Params, hiddenSize: number, colbertDim: number): Omit<M3Reps, 'dense'> {
  const sparse = op.squeeze(op.relu(linear(hidden, params.linear('sparse_linear', hiddenSize, 1))), [2]);
  const colbert = op.l2Normalize(linear(hidden, params.linear('colbert_linear', hiddenSize, colbertDim)));
  return { sparse, colbert };
}

/** The graph inputs m3Loss reads besides the representations (see m3Feed). */
function plan(graph: Graph) {
  return {
    qTerms: graph.input('m3_q_terms', 'int64', ['q_terms', 'q_occurrences']),
    pTerms: graph.input('m3_p_terms', 'int64', ['p_terms', 'p_occurrences']),
    pairQ: graph.input('m3_pair_q', 'int64', ['pairs']),
    pairP: graph.input('m3_pair_p', 'int64', ['pairs']),
    pairCell: graph.input('m3_pair_cell', 'int64', ['pairs']),
    qMask: graph.input('m3_q_mask', 'float32', ['queries', 'q_length']),
    pMask: graph.input('m3_p_mask', 'float32', ['passages', 'p_length']),
  };
}

/** Each term's weight: the max of its occurrences' weights (`terms` [T, m] index the flattened weights; index N·L is a padding 0). */
function termWeights(weights: Value, terms: Value): Value {
  const flat = op.concat([op.reshape(weights, [-1]), weights.graph.constant(f32([0], [1]), 'zero1')], 0);
  return op.reduceMax(op.gather(flat, terms), [1], false);
}

/** Mean cross-entropy of each row of `scores` against its label column. */
function crossEntropy(scores: Value, labels: Value): Value {
  return op.neg(op.reduceMean(op.squeeze(op.gatherElements(op.logSoftmax(scores, 1), labels, 1), [1]), [0], false));
}

/** −mean_q Σ target · log_softmax(scores). */
function selfKd(target: Value, scores: Value): Value {
  return op.neg(op.reduceMean(op.reduceSum(op.mul(target, op.logSoftmax(scores, 1)), [1], false), [0], false));
}

const weighted = (x: Value, w: number) => (w === 1 ? x : op.mul(x, op.scalar(x, w)));
const sum = (xs: Value[]) => xs.reduce((a, b) => op.add(a, b));

/**
 * The three score matrices [Q, P] (not yet divided by the temperature).
 * @example const { dense, lexical, colbert } = m3Scores(q, p);
 */
export function m3Scores(q: M3Reps, p: M3Reps): { dense: Value; lexical: Value; colbert: Value } {
  const x = plan(q.dense.graph);
  const dense = op.matmulTransB(q.dense, p.dense);
  const shared = op.mul(op.gather(termWeights(q.sparse, x.qTerms), x.pairQ), op.gather(termWeights(p.sparse, x.pTerms), x.pairP));
  const lexical = op.reshapeLike(op.scatterAdd(op.reshape(op.zerosLike(dense), [-1]), x.pairCell, shared), dense);
  // ColBERT: [Q, 1, Lq, d] · [1, P, d, Lp] → [Q, P, Lq, Lp]; padding and CLS of p pushed below any dot
  const tokens = op.matmul(op.unsqueeze(q.colbert, [1]), op.unsqueeze(op.transposeLast(p.colbert), [0]));
  const pOff = op.unsqueeze(op.mul(op.sub(x.pMask, op.scalar(x.pMask, 1)), op.scalar(x.pMask, 1e4)), [0, 2]);
  const best = op.reduceMax(op.add(tokens, pOff), [3], false); // [Q, P, Lq]
  const qMask = op.unsqueeze(x.qMask, [1]); // [Q, 1, Lq]
  const colbert = op.div(op.reduceSum(op.mul(best, qMask), [2], false), op.reduceSum(qMask, [2], false));
  return { dense, lexical, colbert };
}

/**
 * The unified loss of queries `q` and passages `p` (`labels` [Q, 1]: each query's positive column).
 * @example const loss = m3Loss(q, p, labels, { temperature: 0.02, selfDistill: true });
 */
export function m3Loss(q: M3Reps, p: M3Reps, labels: Value, o: M3Options): Value {
  const s = m3Scores(q, p);
  const t = (x: Value) => op.mul(x, op.scalar(x, 1 / o.temperature));
  const [dense, lexical, colbert] = [t(s.dense), t(s.lexical), t(s.colbert)];
  const ensemble = sum([dense, weighted(lexical, M3_WEIGHTS.ensembleLexical), colbert]);
  const ce = (x: Value) => crossEntropy(x, labels);
  const loss = weighted(sum([ce(dense), ce(ensemble), weighted(ce(lexical), M3_WEIGHTS.lexicalLoss), ce(colbert)]), 1 / 4);
  if (!o.selfDistill) return loss;
  const teacher = op.softmax(op.stopGradient(ensemble), 1);
  const kd = weighted(sum([selfKd(teacher, dense), weighted(selfKd(teacher, lexical), M3_WEIGHTS.lexicalLoss), selfKd(teacher, colbert)]), 1 / 3);
  // on: (L + kd) / 2; off: L — as L + on · ((L + kd) / 2 − L)
  const on = q.dense.graph.input('m3_self_distill', 'float32', []);
  return op.add(loss, op.mul(on, op.sub(weighted(op.add(loss, kd), 1 / 2), loss)));
}

/** One side's terms: for each (text, token) pair, the flat positions of its occurrences. */
function terms(ids: readonly number[][], length: number, special: ReadonlySet<number>): { keys: Map<number, number>[]; positions: number[][] } {
  const keys: Map<number, number>[] = [];
  const positions: number[][] = [];
  ids.forEach((row, r) => {
    const mine = new Map<number, number>();
    row.forEach((id, t) => {
      if (special.has(id)) return;
      let k = mine.get(id);
      if (k === undefined) mine.set(id, (k = positions.push([]) - 1));
      positions[k]!.push(r * length + t);
    });
    keys.push(mine);
  });
  return { keys, positions };
}

/** `positions` as an int64 [T, m] tensor, short rows filled with `pad` (the padding 0's index). */
function termTensor(positions: number[][], pad: number) {
  const m = Math.max(1, ...positions.map((p) => p.length));
  const data = new BigInt64Array(positions.length * m).fill(BigInt(pad));
  positions.forEach((p, k) => p.forEach((x, j) => (data[k * m + j] = BigInt(x))));
  return int64Tensor(data, [positions.length, m]);
}

/** 1 at each token after CLS, 0 at CLS and padding: [N, length]. */
function colbertMask(ids: readonly number[][], length: number) {
  const data = new Float32Array(ids.length * length);
  ids.forEach((row, r) => data.fill(1, r * length + 1, r * length + row.length));
  return floatTensor(data, [ids.length, length]);
}

/**
 * The inputs m3Loss plans on the host, for token ids padded to `qLength` / `pLength` columns (the
 * representations' L): the terms of each side and the query–passage pairs that share a token.
 * @example const feed = m3Feed(qIds, pIds, 12, 40, new Set([0, 1, 2, 3]));
 */
export function m3Feed(q: readonly number[][], p: readonly number[][], qLength: number, pLength: number, special: ReadonlySet<number>): Feed {
  const qt = terms(q, qLength, special);
  const pt = terms(p, pLength, special);
  const [a, b, cell]: [number[], number[], number[]] = [[], [], []];
  qt.keys.forEach((qk, i) =>
    pt.keys.forEach((pk, j) => {
      for (const [id, k] of qk) {
        const l = pk.get(id);
        if (l !== undefined) a.push(k), b.push(l), cell.push(i * p.length + j);
      }
    }),
  );
  const ints = (xs: number[]) => int64Tensor(BigInt64Array.from(xs, BigInt), [xs.length]);
  return {
    m3_q_terms: termTensor(qt.positions, q.length * qLength),
    m3_p_terms: termTensor(pt.positions, p.length * pLength),
    m3_pair_q: ints(a),
    m3_pair_p: ints(b),
    m3_pair_cell: ints(cell),
    m3_q_mask: colbertMask(q, qLength),
    m3_p_mask: colbertMask(p, pLength),
  };
}

