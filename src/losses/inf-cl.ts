/**
 * Inf-CL (Cheng et al., 2024, "Breaking the Memory Barrier: Near Infinite Batch Size Scaling for
 * Contrastive Loss"): the InfoNCE of infonce.ts computed tile by tile, so the [Q, P] score matrix
 * never exists — only one [tileRows, tileCols] block at a time — and the loss's memory grows with
 * the embeddings (linear in the batch), not with their product.
 *
 *   loss = Σ_m w_m · mean_i ( lse_i − s_i,label(i) ),   s = scale · q̃ p̃ᵀ,  lse_i = log Σ_j exp s_ij
 *
 * where q̃, p̃ are the embeddings cut to each Matryoshka prefix m (re-normalised when the embeddings
 * are unit vectors), as the spec's SimpleInfclLoss / MatryoshkaInfclLoss. Forward: each tile gives
 * its rows' max and Σ exp(s − max), merged into a running log-sum-exp per query (float64).
 * Backward, with G = (softmax(s) − onehot)·w/Q recomputed per tile from the stored lse:
 *   ∂q̃ = scale · G p̃,   ∂p̃ = scale · Gᵀ q̃,
 * then through the prefix normalisation y = x/‖x‖: ∂x = (∂y − y (y·∂y)) / ‖x‖ (zero past the prefix).
 * Labels are the positive's column (i · group size), read from the loss feed like the dense loss.
 */
import type ort from 'onnxruntime-node';
import { Graph } from '../graph/graph.js';
import * as op from '../graph/ops.js';
import { type Feed, floatTensor, type RuntimeOptions, Session } from '../runtime/session.js';
import { Scope } from '../util/scope.js';

export interface InfClOptions {
  /** Multiplies the scores: the spec's 1.0 (no temperature); 1/τ applies a temperature τ. */
  scale: number;
  /** Embedding prefixes (Matryoshka); unset = the full embedding. */
  matryoshkaDims?: number[];
  matryoshkaWeights?: number[];
  /** Whether the embeddings are unit vectors (then prefixes are re-normalised). */
  normalized: boolean;
  /** Query rows per tile (default 256). */
  tileRows?: number;
  /** Passage columns per tile (default 4096): a tile's block is tileRows × tileCols floats. */
  tileCols?: number;
}

/** What a loss over embeddings gives the GradCache backward: its value and ∂loss/∂embeddings. */
export interface EmbeddingLoss {
  lossAndGradients(queries: Float32Array, passages: Float32Array, dim: number, feed: Feed): Promise<{ loss: number; dq: Float32Array; dp: Float32Array }>;
  release(): Promise<void>;
}

/** The largest score block any run held, in floats (what the memory test reads). */
export interface TileStats {
  peakBlockFloats: number;
}

function forwardTileGraph(scale: number): Graph {
  const g = new Graph('infcl-forward');
  const q = g.input('q', 'float32', ['tq', 'd']);
  const p = g.input('p', 'float32', ['tp', 'd']);
  const s = op.mul(op.matmulTransB(q, p), op.scalar(q, scale));
  const m = op.reduceMax(s, [1], true);
  g.output(op.squeeze(m, [1]), 'max', ['tq']);
  g.output(op.reduceSum(op.exp(op.sub(s, m)), [1], false), 'sumexp', ['tq']);
  return g;
}

function backwardTileGraph(scale: number): Graph {
  const g = new Graph('infcl-backward');
  const q = g.input('q', 'float32', ['tq', 'd']);
  const p = g.input('p', 'float32', ['tp', 'd']);
  const lse = g.input('lse', 'float32', ['tq', 1]);
  const y = g.input('onehot', 'float32', ['tq', 'tp']);
  const w = g.input('weight', 'float32', []);
  const s = op.mul(op.matmulTransB(q, p), op.scalar(q, scale));
  // G = (softmax − onehot) · w, scaled once more by the score's own scale.
  const grad = op.mul(op.sub(op.exp(op.sub(s, lse)), y), op.mul(w, op.scalar(w, scale)));
  g.output(op.matmul(grad, p), 'dq', ['tq', 'd']);
  g.output(op.matmul(op.transpose(grad, [1, 0]), q), 'dp', ['tp', 'd']);
  return g;
}

/** Rows [0, n) of `x` ([n, d]) cut to their first `m` columns, re-normalised if asked; with the norms. */
function prefix(x: Float32Array, n: number, d: number, m: number, normalize: boolean): { y: Float32Array; norms: Float64Array } {
  const y = new Float32Array(n * m);
  const norms = new Float64Array(n).fill(1);
  for (let i = 0; i < n; i++) {
    let ss = 0;
    for (let k = 0; k < m; k++) ss += x[i * d + k]! ** 2;
    const norm = normalize && m < d ? Math.sqrt(ss) : 1;
    norms[i] = norm;
    for (let k = 0; k < m; k++) y[i * m + k] = x[i * d + k]! / norm;
  }
  return { y, norms };
}

/** Adds ∂x for ∂y of `prefix`: (∂y − y (y·∂y)) / ‖x‖ when re-normalised, else ∂y, into `dx` ([n, d]). */
function addPrefixGrad(dx: Float64Array, dy: Float64Array, y: Float32Array, norms: Float64Array, n: number, d: number, m: number, renormalized: boolean): void {
  for (let i = 0; i < n; i++) {
    let dot = 0;
    if (renormalized) for (let k = 0; k < m; k++) dot += y[i * m + k]! * dy[i * m + k]!;
    for (let k = 0; k < m; k++) dx[i * d + k]! += renormalized ? (dy[i * m + k]! - y[i * m + k]! * dot) / norms[i]! : dy[i * m + k]!;
  }
}

/**
 * The tiled InfoNCE as an EmbeddingLoss: two small sessions (a tile's forward statistics and its
 * gradient) run over every (query tile, passage tile) pair.
 * @example
 *   const loss = await InfoNceTiled.create({ scale: 1, normalized: true }, { threads: 2 });
 *   const { loss: l, dq, dp } = await loss.lossAndGradients(q, p, 384, { labels });
 */
export class InfoNceTiled implements EmbeddingLoss {
  readonly stats: TileStats = { peakBlockFloats: 0 };

  private constructor(
    private readonly o: InfClOptions,
    private readonly forward: Session,
    private readonly backward: Session,
  ) {}

  static async create(o: InfClOptions, runtime: RuntimeOptions = {}): Promise<InfoNceTiled> {
    await using scope = new Scope();
    const forward = scope.use(await Session.create(forwardTileGraph(o.scale), runtime));
    const backward = scope.use(await Session.create(backwardTileGraph(o.scale), runtime));
    scope.move();
    return new InfoNceTiled(o, forward, backward);
  }

  async lossAndGradients(queries: Float32Array, passages: Float32Array, dim: number, feed: Feed): Promise<{ loss: number; dq: Float32Array; dp: Float32Array }> {
    const nq = queries.length / dim;
    const np = passages.length / dim;
    const labels = Array.from(feed.labels!.data as BigInt64Array, Number);
    const dims = this.o.matryoshkaDims?.length ? this.o.matryoshkaDims : [dim];
    const dq = new Float64Array(nq * dim);
    const dp = new Float64Array(np * dim);
    let loss = 0;
    for (const [i, m] of dims.entries()) {
      const weight = this.o.matryoshkaWeights?.[i] ?? 1;
      const renormalized = this.o.normalized && m < dim;
      const q = prefix(queries, nq, dim, m, this.o.normalized);
      const p = prefix(passages, np, dim, m, this.o.normalized);
      const lse = await this.logSumExp(q.y, p.y, nq, np, m);
      for (let r = 0; r < nq; r++) {
        let pos = 0;
        for (let k = 0; k < m; k++) pos += q.y[r * m + k]! * p.y[labels[r]! * m + k]!;
        loss += (weight * (lse[r]! - this.o.scale * pos)) / nq;
      }
      const g = await this.gradients(q.y, p.y, lse, labels, nq, np, m, weight / nq);
      addPrefixGrad(dq, g.dq, q.y, q.norms, nq, dim, m, renormalized);
      addPrefixGrad(dp, g.dp, p.y, p.norms, np, dim, m, renormalized);
    }
    return { loss, dq: Float32Array.from(dq), dp: Float32Array.from(dp) };
  }

  private get tiles(): { rows: number; cols: number } {
    return { rows: this.o.tileRows ?? 256, cols: this.o.tileCols ?? 4096 };
  }

  /** Each query's log Σ_j exp(scale · q·p_j), merged over passage tiles in float64. */
  private async logSumExp(q: Float32Array, p: Float32Array, nq: number, np: number, m: number): Promise<Float64Array> {
    const { rows, cols } = this.tiles;
    const lse = new Float64Array(nq);
    for (let r0 = 0; r0 < nq; r0 += rows) {
      const tq = Math.min(rows, nq - r0);
      const max = new Float64Array(tq).fill(-Infinity);
      const sum = new Float64Array(tq);
      for (let c0 = 0; c0 < np; c0 += cols) {
        const tp = Math.min(cols, np - c0);
        this.stats.peakBlockFloats = Math.max(this.stats.peakBlockFloats, tq * tp);
        const out = await this.forward.run({ q: floatTensor(q.subarray(r0 * m, (r0 + tq) * m), [tq, m]), p: floatTensor(p.subarray(c0 * m, (c0 + tp) * m), [tp, m]) });
        const tm = out.max!.data as Float32Array;
        const ts = out.sumexp!.data as Float32Array;
        for (let r = 0; r < tq; r++) {
          const top = Math.max(max[r]!, tm[r]!);
          sum[r] = sum[r]! * Math.exp(max[r]! - top) + ts[r]! * Math.exp(tm[r]! - top);
          max[r] = top;
        }
      }
      for (let r = 0; r < tq; r++) lse[r0 + r] = max[r]! + Math.log(sum[r]!);
    }
    return lse;
  }

  /** ∂loss/∂q̃ and ∂loss/∂p̃ (loss weight `w` per query row), tile by tile, summed in float64. */
  private async gradients(q: Float32Array, p: Float32Array, lse: Float64Array, labels: number[], nq: number, np: number, m: number, w: number): Promise<{ dq: Float64Array; dp: Float64Array }> {
    const { rows, cols } = this.tiles;
    const dq = new Float64Array(nq * m);
    const dp = new Float64Array(np * m);
    const weight: ort.Tensor = floatTensor(Float32Array.of(w), []);
    for (let r0 = 0; r0 < nq; r0 += rows) {
      const tq = Math.min(rows, nq - r0);
      const lseTile = floatTensor(Float32Array.from(lse.subarray(r0, r0 + tq)), [tq, 1]);
      for (let c0 = 0; c0 < np; c0 += cols) {
        const tp = Math.min(cols, np - c0);
        const onehot = new Float32Array(tq * tp);
        for (let r = 0; r < tq; r++) {
          const col = labels[r0 + r]! - c0;
          if (col >= 0 && col < tp) onehot[r * tp + col] = 1;
        }
        const out = await this.backward.run({ q: floatTensor(q.subarray(r0 * m, (r0 + tq) * m), [tq, m]), p: floatTensor(p.subarray(c0 * m, (c0 + tp) * m), [tp, m]), lse: lseTile, onehot: floatTensor(onehot, [tq, tp]), weight });
        const tdq = out.dq!.data as Float32Array;
        const tdp = out.dp!.data as Float32Array;
        for (let k = 0; k < tq * m; k++) dq[r0 * m + k]! += tdq[k]!;
        for (let k = 0; k < tp * m; k++) dp[c0 * m + k]! += tdp[k]!;
      }
    }
    return { dq, dp };
  }

  async release(): Promise<void> {
    await this.forward.release();
    await this.backward.release();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}

/** The dense loss (lossGradGraph's session: the whole score matrix at once) as an EmbeddingLoss. */
export class DenseLoss implements EmbeddingLoss {
  constructor(
    private readonly session: Session,
    private readonly gradPrefix: string,
  ) {}

  async lossAndGradients(queries: Float32Array, passages: Float32Array, dim: number, feed: Feed): Promise<{ loss: number; dq: Float32Array; dp: Float32Array }> {
    const out = await this.session.run({ queries: floatTensor(queries, [queries.length / dim, dim]), passages: floatTensor(passages, [passages.length / dim, dim]), ...feed });
    return { loss: (out.loss!.data as Float32Array)[0]!, dq: out[`${this.gradPrefix}queries`]!.data as Float32Array, dp: out[`${this.gradPrefix}passages`]!.data as Float32Array };
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
