/**
 * Data-parallel training on one machine: N worker threads, each with its own sessions (and
 * device). Every batch is cut into N contiguous slices; each worker computes its slice's
 * gradients, the workers sum them (each a range of every tensor: a reduce-scatter in shared
 * memory), and the main thread takes one AdamW step on the master weights (shared memory), which
 * every worker copies before its next step.
 *
 * Memory: onnxruntime-node takes no tensor over a SharedArrayBuffer ("Invalid argument"), so
 * each worker holds its own copy of the weights to feed its sessions, its gradients, and a
 * shared copy of those for the reduction: 3 × the trained weights per worker on top of the
 * master weights and AdamW's moments.
 *
 * Cross-device negatives (`crossDevice`, the spec's embedding_negatives_cross_device): the
 * workers embed their slices (pass 1), the main thread takes InfoNCE over all of them at once,
 * and each worker backpropagates its rows' d loss / d embedding (pass 2) — GradCache across
 * workers, so every query sees every worker's passages and the loss is that of one worker with
 * the whole batch. Without it, each worker's loss sees only its own slice; losses and
 * gradients are averaged over the workers (as DistributedDataParallel does).
 */
import { Worker } from 'node:worker_threads';
import type ort from 'onnxruntime-node';
import type { ModelConfig } from '../models/config.js';
import type { NamedTensor } from '../models/safetensors.js';
import { type Feed, Session } from '../runtime/session.js';
import { Member } from '../util/worker-rpc.js';
import { GRAD_PREFIX, lossGradGraph } from './graphs.js';
import { DenseLoss, type EmbeddingLoss, InfoNceTiled } from '../losses/inf-cl.js';
import { RowGradients, type SparseGrad } from './optimizer.js';
import type { TrainerOptions } from './trainer.js';

/** What a worker's trainer is for: with crossDevice it computes in two passes around a shared loss. */
export interface WorkerRole {
  crossDevice: boolean;
}

/** A feed as plain typed arrays (what crosses to a worker). */
export type PlainFeed = Record<string, { type: ort.Tensor['type']; data: ort.Tensor['data']; dims: readonly number[] }>;

export const plainFeed = (feed: Feed): PlainFeed => Object.fromEntries(Object.entries(feed).map(([k, t]) => [k, { type: t.type, data: t.data, dims: t.dims }]));

/** Moves every tensor into shared memory (one copy at a time), where the workers read the optimizer's updates. */
export function shareWeights(weights: Map<string, NamedTensor>): void {
  for (const [name, t] of weights) {
    if (t.data.buffer instanceof SharedArrayBuffer) continue;
    const data = new Float32Array(new SharedArrayBuffer(t.data.length * 4));
    data.set(t.data);
    weights.set(name, { ...t, data });
  }
}

/** Row gradients of lookup tables, by tensor name (dense ones are in shared memory). */
type RowGrads = { sparse: [string, SparseGrad][] };

/** What a training worker is asked (train-worker.ts answers). */
export type TrainProtocol = {
  load: {
    request: { config: ModelConfig; weights: [string, NamedTensor][]; options: TrainerOptions; role: WorkerRole };
    reply: { slots: { name: string; shape: number[]; transposed: boolean; grad: Float32Array | null }[]; frozen: { name: string; transposed: boolean }[]; withTypes: boolean };
  };
  /** Every worker's dense gradient buffers, for the reduction. */
  peers: { request: { buffers: Map<string, Float32Array>[] }; reply: object };
  /** Loss and gradients of the worker's own slice (its own loss). */
  gradients: { request: { q: number[][]; p: number[][]; lossFeed: PlainFeed }; reply: RowGrads & { loss: number } };
  /** Cross-device pass 1: the slice's embeddings. */
  embed: { request: { q: number[][]; p: number[][] }; reply: { queries: Float32Array; passages: Float32Array } };
  /** Cross-device pass 2: gradients from the embeddings' gradients. */
  backward: { request: { dq: Float32Array; dp: Float32Array }; reply: RowGrads };
  /** Sums range `part` of `of` of every tensor over the peers' buffers into the first's, times `scale`. */
  reduce: { request: { part: number; of: number; scale: number }; reply: object };
  close: { request: object; reply: object };
};

/** One slice of a batch: token ids (p: each query's group in turn) and its own loss inputs. */
export interface BatchPart {
  q: number[][];
  p: number[][];
  lossFeed: Feed;
}

/**
 * @example
 *   const group = await DataParallel.start(config, sharedWeights, { ...options, devices: parseDevices('cpu:2x1') });
 *   const { loss } = await group.gradients(parts, wholeBatchLossFeed); // then group.sum(name) holds each gradient
 */
export class DataParallel {
  private constructor(
    private readonly members: Member<TrainProtocol>[],
    /** Each worker's dense gradient buffers by tensor name (shared memory). */
    private readonly buffers: Map<string, Float32Array>[],
    readonly slots: { name: string; shape: number[]; transposed: boolean }[],
    readonly frozen: { name: string; transposed: boolean }[],
    readonly withTypes: boolean,
    private readonly lossGrad: EmbeddingLoss | undefined,
    private readonly dim: number,
  ) {}

  /** Starts one worker per `o.devices` entry over `weights` (shared, graph layout). */
  static async start(config: ModelConfig, weights: Map<string, NamedTensor>, o: TrainerOptions): Promise<DataParallel> {
    const devices = o.devices!;
    // One worker holds the whole batch: its own loss is the cross-device one, in one pass.
    // inf_cl always takes the loss over every worker's passages (the spec's ring over devices does).
    const crossDevice = ((o.crossDevice ?? true) || !!o.infCl) && devices.length > 1;
    const members = devices.map(() => new Member<TrainProtocol>(new Worker(new URL('./train-worker.js', import.meta.url)), 'a training worker'));
    try {
      const { devices: _d, ...rest } = o;
      const replies = await Promise.all(
        members.map((m, i) => {
          const options: TrainerOptions = { ...rest, device: devices[i]!.device, threads: devices[i]!.threads ?? o.threads, profilePrefix: o.profilePrefix && `${o.profilePrefix}-worker${i}` };
          return m.ask('load', { config, weights: [...weights], options, role: { crossDevice } });
        }),
      );
      const buffers = replies.map((r) => new Map(r.slots.filter((s) => s.grad).map((s) => [s.name, s.grad!])));
      await Promise.all(members.map((m) => m.ask('peers', { buffers })));
      const settings = { matryoshkaDims: o.matryoshkaDims, matryoshkaWeights: o.matryoshkaWeights, normalized: o.normalize };
      // inf_cl: every worker's passages in every row's denominator (the ring's result), tile by tile.
      const lossGrad = !crossDevice ? undefined
        : o.infCl ? await InfoNceTiled.create({ scale: o.infCl.scale, ...settings }, { threads: 1 })
        : new DenseLoss(await Session.create(lossGradGraph(config.hiddenSize, { temperature: o.temperature, distill: o.distill, ...settings }), { threads: 1 }), GRAD_PREFIX);
      const first = replies[0]!;
      return new DataParallel(members, buffers, first.slots.map(({ grad: _g, ...s }) => s), first.frozen, first.withTypes, lossGrad, config.hiddenSize);
    } catch (e) {
      await Promise.all(members.map((m) => m.worker.terminate()));
      throw e;
    }
  }

  get size(): number {
    return this.members.length;
  }

  /** The summed (or averaged) dense gradient of `name` after `gradients`, or null for a lookup table's rows. */
  sum(name: string): Float32Array | null {
    return this.buffers[0]!.get(name) ?? null;
  }

  /** A batch cut into one contiguous slice per worker (sizes differ by at most one; no empty slice). */
  split<T>(batch: T[]): T[][] {
    const n = Math.min(this.size, batch.length);
    return Array.from({ length: n }, (_, w) => batch.slice(Math.floor((w * batch.length) / n), Math.floor(((w + 1) * batch.length) / n)));
  }

  /**
   * Loss and gradients of one batch given as slices (see split), worker w taking `parts[w]`;
   * `whole` holds the whole batch's loss inputs (used when crossDevice). Dense gradients end in
   * `sum(name)`, row gradients are returned.
   */
  async gradients(parts: BatchPart[], whole: Feed): Promise<{ loss: number; sparse: Map<string, SparseGrad> }> {
    const active = this.members.slice(0, parts.length);
    let loss: number;
    let replies: RowGrads[];
    let scale = 1;
    if (this.lossGrad) {
      const embedded = await Promise.all(active.map((m, w) => m.ask('embed', { q: parts[w]!.q, p: parts[w]!.p })));
      const joined = (key: 'queries' | 'passages') => {
        const out = new Float32Array(embedded.reduce((n, r) => n + r[key].length, 0));
        embedded.reduce((at, r) => (out.set(r[key], at), at + r[key].length), 0);
        return out;
      };
      const [queries, passages] = [joined('queries'), joined('passages')];
      const d = this.dim;
      const lg = await this.lossGrad.lossAndGradients(queries, passages, d, whole);
      loss = lg.loss;
      const { dq, dp } = lg;
      let [qi, pi] = [0, 0];
      replies = await Promise.all(
        active.map((m, w) => {
          const [nq, np] = [parts[w]!.q.length * d, parts[w]!.p.length * d];
          const message = { dq: dq.slice(qi, qi + nq), dp: dp.slice(pi, pi + np) };
          [qi, pi] = [qi + nq, pi + np];
          return m.ask('backward', message);
        }),
      );
    } else {
      const own = await Promise.all(active.map((m, w) => m.ask('gradients', { q: parts[w]!.q, p: parts[w]!.p, lossFeed: plainFeed(parts[w]!.lossFeed) })));
      scale = 1 / active.length;
      loss = own.reduce((s, r) => s + r.loss, 0) * scale;
      replies = own;
    }
    // Every active worker sums a range of each tensor over all active workers' buffers into the first's.
    if (active.length > 1 || scale !== 1) await Promise.all(active.map((m, w) => m.ask('reduce', { part: w, of: active.length, scale })));
    return { loss, sparse: mergeRows(replies.map((r) => r.sparse), scale) };
  }

  async close(): Promise<void> {
    await this.lossGrad?.release();
    await Promise.all(
      this.members.map(async (m) => {
        await m.ask('close', {}).catch(() => undefined);
        await m.worker.terminate();
      }),
    );
  }
}

/** Row gradients of each worker, summed per table (and scaled). */
function mergeRows(perWorker: [string, SparseGrad][][], scale: number): Map<string, SparseGrad> {
  const acc = new Map<string, RowGradients>();
  for (const list of perWorker)
    for (const [name, g] of list) {
      if (!acc.has(name)) acc.set(name, new RowGradients(g.width));
      acc.get(name)!.add(g.rows, g.values);
    }
  return new Map(
    [...acc].map(([name, a]) => {
      const g = a.finish();
      if (scale !== 1) for (let j = 0; j < g.values.length; j++) g.values[j]! *= scale;
      return [name, g];
    }),
  );
}

/**
 * A worker's share of the all-reduce: elements [from, to) of each tensor, summed over the first
 * `of` workers' buffers into the first's, times `scale`.
 */
export function reduceRange(buffers: Map<string, Float32Array>[], part: number, of: number, scale: number): void {
  for (const [name, target] of buffers[0]!) {
    const [from, to] = [Math.floor((part * target.length) / of), Math.floor(((part + 1) * target.length) / of)];
    const sources = buffers.slice(1, of).map((b) => b.get(name)!);
    for (let j = from; j < to; j++) {
      let s = target[j];
      for (const b of sources) s! += b[j]!;
      target[j] = s! * scale;
    }
  }
}
