/**
 * AdamW as `torch.optim.AdamW` (bias-corrected moments, decoupled weight decay applied
 * before the Adam step), learning-rate schedules as Hugging Face's
 * get_{linear,cosine,constant}_schedule_with_warmup, and clipping by global norm as
 * `torch.nn.utils.clip_grad_norm_`. State is float32, like PyTorch's default.
 */

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

/**
 * The gradient of a lookup table as its non-zero rows: `rows` ascending and unique, `values`
 * [rows.length, width]. Every other row's gradient is exactly zero.
 */
export interface SparseGrad {
  rows: Int32Array;
  values: Float32Array;
  width: number;
}

export type Grad = Float32Array | SparseGrad;

const isSparse = (g: Grad): g is SparseGrad => !(g instanceof Float32Array);

export interface ParamSlot {
  name: string;
  data: Float32Array;
  /** Weight decay applies (not to biases and LayerNorm weights, as Hugging Face's Trainer). */
  decay: boolean;
}

/**
 * Whether a Hugging Face tensor name gets weight decay: not biases and norms (LayerNorm,
 * RMSNorm: `input_layernorm`, `norm`, `q_norm`), as the HF Trainer's forbidden names.
 */
export const decays = (name: string) => !(name.endsWith('.bias') || /LayerNorm|layernorm|_ln\.|(^|\.)norm\.|_norm\./.test(name));

export class AdamW {
  readonly m: Float32Array[];
  readonly v: Float32Array[];
  step = 0;
  private readonly b1: number;
  private readonly b2: number;
  private readonly eps: number;
  private readonly wd: number;

  constructor(
    readonly params: ParamSlot[],
    o: AdamWOptions = {},
  ) {
    this.b1 = o.beta1 ?? 0.9;
    this.b2 = o.beta2 ?? 0.999;
    this.eps = o.eps ?? 1e-8;
    this.wd = o.weightDecay ?? 0.01;
    this.m = params.map((p) => new Float32Array(p.data.length));
    this.v = params.map((p) => new Float32Array(p.data.length));
  }

  /**
   * One update with learning rate `lr`; `grads[i]` belongs to `params[i]`. A sparse gradient
   * gives the same result as its dense form: rows without gradient still decay and move by their
   * moments (as torch's dense AdamW), only without a dense gradient buffer.
   */
  update(grads: Grad[], lr: number): void {
    this.step++;
    const k: StepScalars = {
      b1: this.b1,
      b2: this.b2,
      eps: this.eps,
      bc2Sqrt: Math.sqrt(1 - this.b2 ** this.step),
      stepSize: lr / (1 - this.b1 ** this.step),
      shrink: 1,
    };
    this.params.forEach((p, i) => {
      const [w, g, m, v] = [p.data, grads[i], this.m[i], this.v[i]];
      k.shrink = p.decay ? 1 - lr * this.wd : 1;
      if (!isSparse(g!)) return adamw(w, m!, v!, 0, w.length, g!, 0, k);
      let next = 0; // first element not yet updated
      g.rows.forEach((r, row) => {
        adamwNoGrad(w, m!, v!, next, r * g.width, k);
        adamw(w, m!, v!, r * g.width, (r + 1) * g.width, g.values, row * g.width, k);
        next = (r + 1) * g.width;
      });
      adamwNoGrad(w, m!, v!, next, w.length, k);
    });
  }
}

interface StepScalars {
  b1: number;
  b2: number;
  eps: number;
  bc2Sqrt: number;
  stepSize: number;
  shrink: number;
}

/** AdamW on elements [from, to) with gradient g[at…]: one tight loop (the optimizer's hot path). */
function adamw(w: Float32Array, m: Float32Array, v: Float32Array, from: number, to: number, g: Float32Array, at: number, k: StepScalars): void {
  const { b1, b2, eps, bc2Sqrt, stepSize, shrink } = k;
  const [c1, c2] = [1 - b1, 1 - b2];
  for (let j = from, t = at; j < to; j++, t++) {
    const gj = g[t];
    m[j] = b1 * m[j]! + c1 * gj!;
    v[j] = b2 * v[j]! + c2 * gj! * gj!;
    w[j] = w[j]! * shrink - (stepSize * m[j]!) / (Math.sqrt(v[j]!) / bc2Sqrt + eps);
  }
}

/** The same update for a zero gradient, term for term (`+ 0` keeps -0 → +0 as the dense form does). */
function adamwNoGrad(w: Float32Array, m: Float32Array, v: Float32Array, from: number, to: number, k: StepScalars): void {
  const { b1, b2, eps, bc2Sqrt, stepSize, shrink } = k;
  for (let j = from; j < to; j++) {
    m[j] = b1 * m[j]! + 0;
    v[j] = b2 * v[j]! + 0;
    w[j] = w[j]! * shrink - (stepSize * m[j]!) / (Math.sqrt(v[j]!) / bc2Sqrt + eps);
  }
}

/** The global L2 norm of all gradients. */
export function globalNorm(grads: Grad[]): number {
  let s = 0;
  for (const g0 of grads) {
    const g = isSparse(g0) ? g0.values : g0;
    for (let j = 0; j < g.length; j++) s += g[j]! * g[j]!;
  }
  return Math.sqrt(s);
}

/** Scales gradients in place so their global norm is at most `maxNorm`; returns the norm before. */
export function clipGradNorm(grads: Grad[], maxNorm: number): number {
  const norm = globalNorm(grads);
  const scale = maxNorm / (norm + 1e-6);
  if (scale < 1) for (const g0 of grads) {
    const g = isSparse(g0) ? g0.values : g0;
    for (let j = 0; j < g.length; j++) g[j]! *= scale;
  }
  return norm;
}

/** A gradient as a dense array of `length` floats (checks and tests). */
export function toDense(g: Grad, length: number): Float32Array {
  if (!isSparse(g)) return g;
  const out = new Float32Array(length);
  g.rows.forEach((r, k) => out.set(g.values.subarray(k * g.width, (k + 1) * g.width), r * g.width));
  return out;
}

/**
 * Sums row gradients from lookups into one SparseGrad.
 * @example
 *   const acc = new RowGradients(1024);
 *   acc.add(inputIds, gradOfLookedUpRows); // once per lookup (and per GradCache slice)
 *   const g = acc.finish();
 */
export class RowGradients {
  private readonly rows = new Map<number, Float32Array>();

  constructor(readonly width: number) {}

  /** `ids` [n] row ids, `grads` [n, width] their gradients. */
  add(ids: ArrayLike<bigint | number>, grads: Float32Array): void {
    const w = this.width;
    for (let t = 0; t < ids.length; t++) {
      const r = Number(ids[t]);
      let acc = this.rows.get(r);
      if (!acc) this.rows.set(r, (acc = new Float32Array(w)));
      for (let j = 0; j < w; j++) acc[j]! += grads[t * w + j]!;
    }
  }

  finish(): SparseGrad {
    const rows = Int32Array.from([...this.rows.keys()].sort((a, b) => a - b));
    const values = new Float32Array(rows.length * this.width);
    rows.forEach((r, k) => values.set(this.rows.get(r)!, k * this.width));
    return { rows, values, width: this.width };
  }
}

export type Schedule = 'linear' | 'cosine' | 'constant';

/**
 * The learning rate for optimizer step `step` (0-based), as Hugging Face's LambdaLR schedules:
 * linear warm-up from 0, then linear decay to 0, half a cosine to 0, or constant.
 */
export function learningRate(step: number, o: { lr: number; warmupSteps: number; totalSteps: number; schedule: Schedule }): number {
  if (step < o.warmupSteps) return (o.lr * step) / Math.max(1, o.warmupSteps);
  if (o.schedule === 'constant') return o.lr;
  const progress = (step - o.warmupSteps) / Math.max(1, o.totalSteps - o.warmupSteps);
  if (o.schedule === 'linear') return o.lr * Math.max(0, 1 - progress);
  return o.lr * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}
