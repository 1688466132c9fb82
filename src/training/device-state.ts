/**
 * Training state kept in device memory (WebGPU): the weights, AdamW's moments and each step's
 * gradients live in `gpu-buffer` tensors from one step to the next; a step moves only the batch's
 * token ids, the loss and a few scalars between host and device. AdamW with gradient clipping and
 * GradCache's gradient accumulation are graphs that run on the device. A checkpoint or an export
 * downloads the state once (`pull`); a resume uploads it once (`push`).
 *
 * onnxruntime-node binds device tensors for its WebGPU provider only; every other provider (the
 * CPU, CUDA) trains on host state (optimizer.ts), chosen automatically by `deviceResident` (runtime/device-memory.ts).
 */
import type ort from 'onnxruntime-node';
import { Graph, type Value } from '../graph/graph.js';
import * as op from '../graph/ops.js';
import { copyGraph } from '../runtime/device-memory.js';
import { floatTensor, Session, type RuntimeOptions } from '../runtime/session.js';

export interface DeviceSlot {
  name: string;
  shape: number[];
  /** The host copy: uploaded at the start, refreshed by `pull`. */
  data: Float32Array;
  decay: boolean;
}

export interface AdamWConstants {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** Σ of two gradient sets, slot by slot (GradCache's accumulation across slices). */
function addGraph(shapes: number[][]): Graph {
  const g = new Graph('accumulate');
  shapes.forEach((s, i) => g.output(op.add(g.input(`a${i}`, 'float32', s), g.input(`b${i}`, 'float32', s)), `s${i}`));
  return g;
}

/**
 * Clipping by global norm then AdamW, as optimizer.ts (torch.optim.AdamW after
 * clip_grad_norm_), for every slot in one run. Inputs w/m/v/g<i>, scalars `max_norm` (∞ = no
 * clipping), `step_size` = lr / (1 − β₁ᵗ), `bc2_sqrt` = √(1 − β₂ᵗ), `shrink` = 1 − lr·wd (slots
 * with weight decay only). Outputs `norm` (before clipping) and next_w/m/v<i> after the step.
 */
function adamwGraph(slots: DeviceSlot[], k: AdamWConstants): Graph {
  const g = new Graph('adamw');
  const scalar = (name: string) => g.input(name, 'float32', []);
  const [maxNorm, stepSize, bc2Sqrt, shrink] = ['max_norm', 'step_size', 'bc2_sqrt', 'shrink'].map(scalar);
  const ins = slots.map((s, i) => Object.fromEntries(['w', 'm', 'v', 'g'].map((p) => [p, g.input(`${p}${i}`, 'float32', s.shape)])) as Record<'w' | 'm' | 'v' | 'g', Value>);
  const squares = ins.map(({ g: gi }) => op.reduceSum(op.mul(gi, gi), [...gi.shape.keys()], false));
  const norm = op.sqrt(squares.reduce((a, b) => op.add(a, b)));
  g.output(norm, 'norm', []);
  // scale = min(1, max_norm / (norm + 1e-6)), as clip_grad_norm_
  const one = op.scalar(norm, 1);
  const scale = op.neg(op.max(op.neg(one), op.neg(op.div(maxNorm, op.add(norm, op.scalar(norm, 1e-6))))));
  ins.forEach(({ w, m, v, g: gi }, i) => {
    const gs = op.mul(gi, scale);
    const m1 = op.add(op.mul(m, op.scalar(m, k.beta1)), op.mul(gs, op.scalar(gs, 1 - k.beta1)));
    const v1 = op.add(op.mul(v, op.scalar(v, k.beta2)), op.mul(op.mul(gs, gs), op.scalar(gs, 1 - k.beta2)));
    const denom = op.add(op.div(op.sqrt(v1), bc2Sqrt), op.scalar(v1, k.eps));
    const kept = slots[i]!.decay && k.weightDecay !== 0 ? op.mul(w, shrink) : w;
    g.output(op.sub(kept, op.div(op.mul(m1, stepSize), denom)), `next_w${i}`);
    g.output(m1, `next_m${i}`);
    g.output(v1, `next_v${i}`);
  });
  return g;
}

const f32 = (x: number) => floatTensor(Float32Array.of(x), []);

export class DeviceState {
  private constructor(
    private readonly slots: DeviceSlot[],
    private readonly frozenNames: string[],
    private readonly k: AdamWConstants,
    private readonly sessions: { upload: Session; uploadFrozen?: Session; download: Session; adamw: Session; add: Session },
    /** Trained weights, then AdamW's first and second moments, on the device. */
    private w: ort.Tensor[],
    private m: ort.Tensor[],
    private v: ort.Tensor[],
    private readonly frozen: ort.Tensor[],
    private readonly runtime: RuntimeOptions,
  ) {}

  /** One `add` session per tensor rank, made on first use. */
  private readonly adders = new Map<number, Session>();

  /**
   * Uploads `slots` (trained: weights, zero moments) and `frozen` (fed, never updated) once.
   * @example const state = await DeviceState.create(slots, frozen, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 }, { device: 'webgpu' });
   */
  static async create(slots: DeviceSlot[], frozen: { name: string; tensor: ort.Tensor }[], k: AdamWConstants, runtime: RuntimeOptions): Promise<DeviceState> {
    const shapes = slots.map((s) => s.shape);
    const onDevice = { ...runtime, deviceOutputs: () => true };
    const sessions = {
      upload: await Session.create(copyGraph(shapes), onDevice),
      uploadFrozen: frozen.length ? await Session.create(copyGraph(frozen.map((f) => [...f.tensor.dims])), onDevice) : undefined,
      download: await Session.create(copyGraph(shapes), { ...runtime, deviceOutputs: () => false }),
      adamw: await Session.create(adamwGraph(slots, k), { ...runtime, deviceOutputs: (n) => n !== 'norm' }),
      add: await Session.create(addGraph(shapes), onDevice),
    };
    const upload = async (s: Session, ts: ort.Tensor[]) => {
      const out = await s.run(Object.fromEntries(ts.map((t, i) => [`x${i}`, t])));
      return ts.map((_, i) => out[`y${i}`]!);
    };
    const host = (data: (s: DeviceSlot) => Float32Array) => slots.map((s) => floatTensor(data(s), s.shape));
    const w = await upload(sessions.upload, host((s) => s.data));
    const zeros = host((s) => new Float32Array(s.data.length));
    const [m, v] = [await upload(sessions.upload, zeros), await upload(sessions.upload, zeros)];
    const frozenOnDevice = sessions.uploadFrozen ? await upload(sessions.uploadFrozen, frozen.map((f) => f.tensor)) : [];
    return new DeviceState(slots, frozen.map((f) => f.name), k, sessions, w, m, v, frozenOnDevice, runtime);
  }

  /** Every weight (trained and frozen) by name, as device tensors: the graphs' weight inputs. */
  feed(): Record<string, ort.Tensor> {
    const out: Record<string, ort.Tensor> = {};
    this.slots.forEach((s, i) => (out[s.name] = this.w[i]!));
    this.frozenNames.forEach((n, i) => (out[n] = this.frozen[i]!));
    return out;
  }

  /** a + b for one tensor of any shape, on the device; a and b are released. */
  async add(a: ort.Tensor, b: ort.Tensor): Promise<ort.Tensor> {
    const rank = a.dims.length;
    let session = this.adders.get(rank);
    if (!session) {
      const g = new Graph('add');
      const dims = Array.from({ length: rank }, (_, j) => `d${j}`);
      g.output(op.add(g.input('a', 'float32', dims), g.input('b', 'float32', dims)), 's');
      this.adders.set(rank, (session = await Session.create(g, { ...this.runtime, deviceOutputs: () => true })));
    }
    const out = await session.run({ a, b });
    a.dispose();
    b.dispose();
    return out.s!;
  }

  /** a + b slot by slot, on the device; a and b are released. */
  async accumulate(a: ort.Tensor[], b: ort.Tensor[]): Promise<ort.Tensor[]> {
    const feed: Record<string, ort.Tensor> = {};
    a.forEach((t, i) => ((feed[`a${i}`] = t), (feed[`b${i}`] = b[i]!)));
    const out = await this.sessions.add.run(feed);
    for (const t of [...a, ...b]) t.dispose();
    return a.map((_, i) => out[`s${i}`]!);
  }

  /**
   * Clips `grads` (one per slot, released here) to `maxNorm` and takes AdamW step `step` (1-based)
   * at `lr`. Returns the norm before clipping; the new state takes effect on `commit()`, and
   * `discard()` keeps the old one (a non-finite loss or norm leaves the weights untouched).
   */
  async update(grads: ort.Tensor[], lr: number, step: number, maxNorm: number): Promise<{ norm: number; commit: () => void; discard: () => void }> {
    const feed: Record<string, ort.Tensor> = {
      max_norm: f32(maxNorm > 0 ? maxNorm : Infinity),
      step_size: f32(lr / (1 - this.k.beta1 ** step)),
      bc2_sqrt: f32(Math.sqrt(1 - this.k.beta2 ** step)),
      shrink: f32(1 - lr * this.k.weightDecay),
    };
    this.slots.forEach((_, i) => Object.assign(feed, { [`w${i}`]: this.w[i], [`m${i}`]: this.m[i], [`v${i}`]: this.v[i], [`g${i}`]: grads[i] }));
    let out: Record<string, ort.Tensor>;
    try {
      out = await this.sessions.adamw.run(feed);
    } finally {
      for (const g of grads) g.dispose();
    }
    const next = (p: string) => this.slots.map((_, i) => out[`next_${p}${i}`]!);
    const [w, m, v] = [next('w'), next('m'), next('v')];
    return {
      norm: (out.norm!.data as Float32Array)[0]!,
      commit: () => {
        for (const t of [...this.w, ...this.m, ...this.v]) t.dispose();
        [this.w, this.m, this.v] = [w, m, v];
      },
      discard: () => {
        for (const t of [...w, ...m, ...v]) t.dispose();
      },
    };
  }

  private async download(ts: ort.Tensor[], into: Float32Array[]): Promise<void> {
    const fetches = Object.fromEntries(into.map((d, i) => [`y${i}`, floatTensor(d, this.slots[i]!.shape)]));
    await this.sessions.download.run(Object.fromEntries(ts.map((t, i) => [`x${i}`, t])), fetches);
  }

  /** Downloads the weights into the slots' host arrays, and the moments into fresh ones (none when `moments` is false). */
  async pull(moments = true): Promise<{ m: Float32Array[]; v: Float32Array[] }> {
    await this.download(this.w, this.slots.map((s) => s.data));
    if (!moments) return { m: [], v: [] };
    const fresh = () => this.slots.map((s) => new Float32Array(s.data.length));
    const [m, v] = [fresh(), fresh()];
    await this.download(this.m, m);
    await this.download(this.v, v);
    return { m, v };
  }

  /** Uploads the slots' host weights and the given moments (a resumed checkpoint), replacing the device state. */
  async push(m: Float32Array[], v: Float32Array[]): Promise<void> {
    const up = async (data: Float32Array[]) => {
      const out = await this.sessions.upload.run(Object.fromEntries(data.map((d, i) => [`x${i}`, floatTensor(d, this.slots[i]!.shape)])));
      return data.map((_, i) => out[`y${i}`]!);
    };
    const [w, m1, v1] = [await up(this.slots.map((s) => s.data)), await up(m), await up(v)];
    for (const t of [...this.w, ...this.m, ...this.v]) t.dispose();
    [this.w, this.m, this.v] = [w, m1, v1];
  }

  /** Stops the sessions' profilers (RuntimeOptions.profilePrefix). */
  endProfiling(): void {
    for (const s of [...Object.values(this.sessions), ...this.adders.values()]) s?.endProfiling();
  }

  async release(): Promise<void> {
    for (const t of [...this.w, ...this.m, ...this.v, ...this.frozen]) t.dispose();
    for (const s of [...Object.values(this.sessions), ...this.adders.values()]) await s?.release();
  }
}
