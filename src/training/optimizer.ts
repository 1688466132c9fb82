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

export interface ParamSlot {
  name: string;
  data: Float32Array;
  /** Weight decay applies (not to biases and LayerNorm weights, as Hugging Face's Trainer). */
  decay: boolean;
}

/** Whether a Hugging Face tensor name gets weight decay. */
export const decays = (name: string) => !(name.endsWith('.bias') || /LayerNorm|_ln\./.test(name));

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

  /** One update with learning rate `lr`; `grads[i]` belongs to `params[i]`. */
  update(grads: Float32Array[], lr: number): void {
    this.step++;
    const { b1, b2, eps } = this;
    const bc1 = 1 - b1 ** this.step;
    const bc2Sqrt = Math.sqrt(1 - b2 ** this.step);
    const stepSize = lr / bc1;
    this.params.forEach((p, i) => {
      const w = p.data;
      const g = grads[i];
      const m = this.m[i];
      const v = this.v[i];
      const shrink = p.decay ? 1 - lr * this.wd : 1;
      for (let j = 0; j < w.length; j++) {
        const gj = g[j];
        m[j] = b1 * m[j] + (1 - b1) * gj;
        v[j] = b2 * v[j] + (1 - b2) * gj * gj;
        w[j] = w[j] * shrink - (stepSize * m[j]) / (Math.sqrt(v[j]) / bc2Sqrt + eps);
      }
    });
  }
}

/** The global L2 norm of all gradients. */
export function globalNorm(grads: Float32Array[]): number {
  let s = 0;
  for (const g of grads) for (let j = 0; j < g.length; j++) s += g[j] * g[j];
  return Math.sqrt(s);
}

/** Scales gradients in place so their global norm is at most `maxNorm`; returns the norm before. */
export function clipGradNorm(grads: Float32Array[], maxNorm: number): number {
  const norm = globalNorm(grads);
  const scale = maxNorm / (norm + 1e-6);
  if (scale < 1) for (const g of grads) for (let j = 0; j < g.length; j++) g[j] *= scale;
  return norm;
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
