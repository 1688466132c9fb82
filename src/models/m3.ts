/**
 * bge-m3's three outputs from one pass (Chen et al., 2024, "M3-Embedding"), as FlagEmbedding's
 * BGEM3 model defines them, over the encoder's last hidden states h:
 *   dense   normalize(h[CLS])
 *   sparse  relu(sparse_linear(h)) per token; special tokens and zero weights dropped; a token's
 *           weight the max over its occurrences           score = Σ over shared tokens of w_q·w_p
 *   colbert normalize(colbert_linear(h[t])) for the text's tokens after CLS
 *                                  score = mean over q's vectors of the max dot over p's vectors
 * Checked against a float64 PyTorch reference written from those definitions
 * (scripts/torch_m3_reference.py).
 */
import { f32, type Value } from '../graph/graph.js';
import * as op from '../graph/ops.js';
import { padBatch } from './batch.js';
import { readConfig } from './config.js';
import { buildEncoderGraph, loadWeights } from './encoder.js';
import { readM3Heads, specialTokenIds, type LinearHead } from './m3-heads.js';
import { resolveModel } from './resolve.js';
import { loadTokenizer, type Tokenizer } from './tokenizer.js';
import { Session } from '../runtime/session.js';

/** One text's three representations. */
export interface M3Output {
  dense: Float32Array;
  /** Token id → weight. */
  sparse: Map<number, number>;
  /** [tokens after CLS, colbert_dim], row-major. */
  colbert: Float32Array;
  colbertDim: number;
}

/** `x · Wᵀ + b` for a torch Linear head (weight [out, in]). */
function linear(x: Value, head: LinearHead): Value {
  const [out, hidden] = head.weight.shape as [number, number];
  const w = head.weight.data as Float32Array;
  const t = new Float32Array(hidden * out);
  for (let o = 0; o < out; o++) for (let i = 0; i < hidden; i++) t[i * out + o] = w[o * hidden + i]!;
  return op.add(op.matmul(x, x.graph.constant(f32(t, [hidden, out]), 'head')), x.graph.constant(f32(head.bias.data as Float32Array, [out]), 'head_bias'));
}

/**
 * A bge-m3 folder (or any XLM-R/BERT folder with `sparse_linear` and `colbert_linear` heads).
 * @example
 *   const m3 = await M3Encoder.load('models/bge-m3');
 *   const [q, p] = await m3.encode(['what is lift?', 'Lift is the force …']);
 *   sparseScore(q.sparse, p.sparse); colbertScore(q, p);
 */
export class M3Encoder {
  private constructor(
    readonly dir: string,
    private readonly tokenizer: Tokenizer,
    private readonly session: Session,
    private readonly special: Set<number>,
    private readonly padId: number,
    readonly colbertDim: number,
  ) {}

  static async load(model: string, o: { threads?: number; revision?: string } = {}): Promise<M3Encoder> {
    const dir = await resolveModel(model, { revision: o.revision });
    const config = readConfig(dir);
    const heads = readM3Heads(dir, config.hiddenSize);
    if (!heads.sparse || !heads.colbert) throw new Error(`${dir}: bge-m3's heads are missing (${[!heads.sparse && 'sparse_linear', !heads.colbert && 'colbert_linear'].filter(Boolean).join(', ')}: .pt or .safetensors)`);
    const { graph, hidden } = buildEncoderGraph(config, loadWeights(dir), { pooling: 'cls', normalize: true });
    graph.output(op.squeeze(op.relu(linear(hidden, heads.sparse)), [2]), 'sparse', ['batch', 'sequence']);
    graph.output(op.l2Normalize(linear(hidden, heads.colbert)), 'colbert', ['batch', 'sequence', heads.colbert.weight.shape[0]!]);
    const session = await Session.create(graph, { threads: o.threads });
    return new M3Encoder(dir, loadTokenizer(dir), session, specialTokenIds(dir), config.padTokenId, heads.colbert.weight.shape[0]!);
  }

  /** The three representations of each text (one batch; the caller splits long lists). */
  async encode(texts: readonly string[], o: { maxLength?: number } = {}): Promise<M3Output[]> {
    const ids = texts.map((t) => this.tokenizer.encode(t, o.maxLength ?? this.tokenizer.modelMaxLength));
    const feed = padBatch(ids, this.padId, '', this.session.inputNames.some((n) => n.endsWith('token_type_ids')));
    const out = await this.session.run(feed);
    const dense = out.sentence_embedding!.data as Float32Array;
    const sparse = out.sparse!.data as Float32Array;
    const colbert = out.colbert!.data as Float32Array;
    const [, s, d] = out.colbert!.dims as [number, number, number];
    const h = dense.length / texts.length;
    return ids.map((tokens, b) => {
      const weights = new Map<number, number>();
      tokens.forEach((id, t) => {
        const w = sparse[b * s + t]!;
        if (this.special.has(id) || !(w > 0)) return;
        weights.set(id, Math.max(weights.get(id) ?? 0, w));
      });
      return { dense: dense.slice(b * h, (b + 1) * h), sparse: weights, colbert: colbert.slice((b * s + 1) * d, (b * s + tokens.length) * d), colbertDim: d };
    });
  }

  async close(): Promise<void> {
    await this.session.release();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Σ over the tokens both share of w_q · w_p (bge-m3's lexical matching score). */
export function sparseScore(q: Map<number, number>, p: Map<number, number>): number {
  let s = 0;
  for (const [id, w] of q) {
    const v = p.get(id);
    if (v !== undefined) s += w * v;
  }
  return s;
}

/** Mean over the query's vectors of the largest dot product with any of the passage's (ColBERT's MaxSim). */
export function colbertScore(q: Pick<M3Output, 'colbert' | 'colbertDim'>, p: Pick<M3Output, 'colbert' | 'colbertDim'>): number {
  const d = q.colbertDim;
  const nq = q.colbert.length / d;
  const np = p.colbert.length / d;
  let total = 0;
  for (let i = 0; i < nq; i++) {
    let best = -Infinity;
    for (let j = 0; j < np; j++) {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += q.colbert[i * d + k]! * p.colbert[j * d + k]!;
      best = Math.max(best, dot);
    }
    total += best;
  }
  return total / nq;
}
