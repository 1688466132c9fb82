/**
 * Training state kept in device memory (WebGPU): the weights, AdamW's moments and each step's
 * gradients live in `gpu-buffer` tensors from one step to the next; a step moves only the batch's
 * token ids, the loss and a few scalars between host and device. The gradient norm, AdamW and
 * GradCache's gradient accumulation are graphs that run on the device. A checkpoint or an export
 * downloads the state once (`pull`); a resume uploads it once (`push`).
 *
 * onnxruntime-node binds device tensors for its WebGPU provider only; every other provider (the
 * CPU, CUDA) trains on host state (optimizer.ts), chosen automatically by `deviceResident` (runtime/device-memory.ts).
 */
import ort from 'onnxruntime-node';
import { Graph, type Value } from '../graph/graph.js';
import * as op from '../graph/ops.js';
import { copyGraph, copyIn } from '../runtime/device-memory.js';
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

/** The global L2 norm of the gradients (`g<i>` → `norm`), as clip_grad_norm_ measures it. */
function normGraph(slots: DeviceSlot[]): Graph {
  const g = new Graph('grad-norm');
  const squares = slots.map((s, i) => {
    const gi = g.input(`g${i}`, 'float32', s.shape);
    return op.reduceSum(op.mul(gi, gi), [...s.shape.keys()], false);
  });
  g.output(op.sqrt(squares.reduce((a, b) => op.add(a, b))), 'norm', []);
  return g;
}

/**
 * AdamW on some slots, as optimizer.ts (torch.optim.AdamW): inputs w/m/v/g<i> and `step` [4], this
 * step's scalars — the clipping factor min(1, max_norm / (norm + 1e-6)) as clip_grad_norm_'s,
 * lr / (1 − β₁ᵗ), √(1 − β₂ᵗ) and 1 − lr·wd (slots with weight decay only) — uploaded once per step
 * and read by every group; outputs next_w/m/v<i>.
 */
function adamwGraph(slots: DeviceSlot[], k: AdamWConstants): Graph {
  const g = new Graph('adamw');
  const step = g.input('step', 'float32', [4]);
  const [scale, stepSize, bc2Sqrt, shrink] = [0, 1, 2, 3].map((i) => op.gather(step, g.constant({ dtype: 'int64', dims: [], data: BigInt64Array.of(BigInt(i)) }, 'at')));
  slots.forEach((s, i) => {
    const [w, m, v, gi] = ['w', 'm', 'v', 'g'].map((p) => g.input(`${p}${i}`, 'float32', s.shape));
    const gs = op.mul(gi!, scale!);
    const m1 = op.add(op.mul(m!, op.scalar(m!, k.beta1)), op.mul(gs, op.scalar(gs, 1 - k.beta1)));
    const v1 = op.add(op.mul(v!, op.scalar(v!, k.beta2)), op.mul(op.mul(gs, gs), op.scalar(gs, 1 - k.beta2)));
    const denom = op.add(op.div(op.sqrt(v1), bc2Sqrt!), op.scalar(v1, k.eps));
    const kept = s.decay && k.weightDecay !== 0 ? op.mul(w!, shrink!) : w!;
    g.output(op.sub(kept, op.div(op.mul(m1, stepSize!), denom)), `next_w${i}`);
    g.output(m1, `next_m${i}`);
    g.output(v1, `next_v${i}`);
  });
  return g;
}

/** Zeros of each slot's shape, made on the device (the shapes come as an input, so nothing is folded into the model). */
function zerosGraph(slots: DeviceSlot[]): Graph {
  const g = new Graph('zeros');
  slots.forEach((s, i) => g.output(op.expand(g.constant({ dtype: 'float32', dims: [], data: Float32Array.of(0) }, 'zero'), g.input(`shape${i}`, 'int64', [s.shape.length]), s.shape), `z${i}`));
  return g;
}

/**
 * Consecutive slots in runs of at most `bytes` (one slot alone when larger): AdamW runs a group
 * at a time, so the new weights and moments of one group, not of the whole model, exist beside
 * the old ones: at the peak, weights, two moments and gradients (4 copies of the trained
 * weights) plus one group's new state, where one run over all would hold 7 copies.
 */
function groups(slots: DeviceSlot[], bytes: number): number[][] {
  const out: number[][] = [];
  let size = Infinity;
  slots.forEach((s, i) => {
    const b = s.data.byteLength;
    if (size + b > bytes) out.push([]), (size = 0);
    out.at(-1)!.push(i);
    size += b;
  });
  return out;
}

/** Bytes of weights per AdamW run (see groups; DeviceState.create takes another). */
const GROUP_BYTES = 256 << 20;

export class DeviceState {
  /** One `add` session per tensor rank, made on first use. */
  private readonly adders = new Map<number, Session>();

  private constructor(
    private readonly slots: DeviceSlot[],
    private readonly frozenNames: string[],
    private readonly k: AdamWConstants,
    private readonly sessions: { upload: Session; uploadFrozen?: Session; download: Session; norm: Session; add: Session; zeros: Session; uploadStep: Session },
    /** AdamW per group of slots (see groups). */
    private readonly adamw: { slots: number[]; session: Session }[],
    /** Trained weights, then AdamW's first and second moments, on the device. */
    private w: ort.Tensor[],
    private m: ort.Tensor[],
    private v: ort.Tensor[],
    private readonly frozen: ort.Tensor[],
    private readonly runtime: RuntimeOptions,
  ) {}

  /**
   * Uploads `slots` (trained: weights, zero moments made on the device) and `frozen` (fed, never updated) once.
   * @example const state = await DeviceState.create(slots, frozen, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 }, { device: 'webgpu' });
   */
  static async create(slots: DeviceSlot[], frozen: { name: string; tensor: ort.Tensor }[], k: AdamWConstants, runtime: RuntimeOptions, groupBytes = GROUP_BYTES): Promise<DeviceState> {
    const shapes = slots.map((s) => s.shape);
    const onDevice = { ...runtime, deviceOutputs: () => true };
    const sessions = {
      upload: await Session.create(copyGraph(shapes), onDevice),
      uploadFrozen: frozen.length ? await Session.create(copyGraph(frozen.map((f) => [...f.tensor.dims])), onDevice) : undefined,
      download: await Session.create(copyGraph(shapes), { ...runtime, deviceOutputs: () => false }),
      norm: await Session.create(normGraph(slots), { ...runtime, deviceOutputs: () => false }),
      add: await Session.create(addGraph(shapes), onDevice),
      zeros: await Session.create(zerosGraph(slots), onDevice),
      uploadStep: await Session.create(copyGraph([[4]]), onDevice),
    };
    const adamw = [];
    for (const group of groups(slots, groupBytes)) adamw.push({ slots: group, session: await Session.create(adamwGraph(group.map((i) => slots[i]!), k), onDevice) });
    const w = await copyIn(sessions.upload, slots.map((s) => floatTensor(s.data, s.shape)));
    // (Device buffers belong to the session that made them: every session here lives as long as the state.)
    const zeroFeed = () => Object.fromEntries(slots.map((s, i) => [`shape${i}`, new ort.Tensor('int64', BigInt64Array.from(s.shape, BigInt), [s.shape.length])]));
    const [m, v] = [await sessions.zeros.run(zeroFeed()), await sessions.zeros.run(zeroFeed())].map((out) => slots.map((_, i) => out[`z${i}`]!));
    const frozenOnDevice = sessions.uploadFrozen ? await copyIn(sessions.uploadFrozen, frozen.map((f) => f.tensor)) : [];
    return new DeviceState(slots, frozen.map((f) => f.name), k, sessions, adamw, w, m!, v!, frozenOnDevice, runtime);
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

  /** The global L2 norm of `grads` (one per slot), as clip_grad_norm_ measures it. */
  async gradNorm(grads: ort.Tensor[]): Promise<number> {
    const out = await this.sessions.norm.run(Object.fromEntries(grads.map((g, i) => [`g${i}`, g])));
    return (out.norm!.data as Float32Array)[0]!;
  }

  /**
   * AdamW step `step` (1-based) at `lr` with `grads` (one per slot, released here) scaled by
   * `scale` (clipping), a group of slots at a time; each group's old weights and moments are
   * released as its new ones arrive.
   */
  async step(grads: ort.Tensor[], lr: number, step: number, scale: number): Promise<void> {
    const scalars = Float32Array.of(scale, lr / (1 - this.k.beta1 ** step), Math.sqrt(1 - this.k.beta2 ** step), 1 - lr * this.k.weightDecay);
    const on = await this.sessions.uploadStep.run({ x0: floatTensor(scalars, [4]) });
    try {
      for (const { slots, session } of this.adamw) {
        const feed: Record<string, ort.Tensor> = { step: on.y0! };
        slots.forEach((s, j) => Object.assign(feed, { [`w${j}`]: this.w[s], [`m${j}`]: this.m[s], [`v${j}`]: this.v[s], [`g${j}`]: grads[s] }));
        const out = await session.run(feed);
        slots.forEach((s, j) => {
          for (const t of [this.w[s]!, this.m[s]!, this.v[s]!, grads[s]!]) t.dispose();
          [this.w[s], this.m[s], this.v[s]] = [out[`next_w${j}`]!, out[`next_m${j}`]!, out[`next_v${j}`]!];
        });
      }
    } catch (e) {
      for (const g of grads) if (g.location === 'gpu-buffer') g.dispose();
      throw e;
    } finally {
      on.y0!.dispose();
    }
  }

  /** Releases gradients that will not be used (a non-finite step). */
  discard(grads: ort.Tensor[]): void {
    for (const g of grads) g.dispose();
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
    const up = (data: Float32Array[]) => copyIn(this.sessions.upload, data.map((d, i) => floatTensor(d, this.slots[i]!.shape)));
    const [w, m1, v1] = [await up(this.slots.map((s) => s.data)), await up(m), await up(v)];
    for (const t of [...this.w, ...this.m, ...this.v]) t.dispose();
    [this.w, this.m, this.v] = [w, m1, v1];
  }

  /** Stops the sessions' profilers (RuntimeOptions.profilePrefix). */
  endProfiling(): void {
    for (const s of [...Object.values(this.sessions), ...this.adders.values(), ...this.adamw.map((a) => a.session)]) s?.endProfiling();
  }

  async release(): Promise<void> {
    for (const t of [...this.w, ...this.m, ...this.v, ...this.frozen]) t.dispose();
    for (const s of [...Object.values(this.sessions), ...this.adders.values(), ...this.adamw.map((a) => a.session)]) await s?.release();
  }
}
