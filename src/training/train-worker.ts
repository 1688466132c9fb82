/**
 * One data-parallel training worker (see data-parallel.ts): a Trainer over its own copy of the
 * weights, refreshed from the shared master weights at the start of every step; after each
 * computation its dense gradients are published to shared memory, where the workers sum them.
 */
import ort from 'onnxruntime-node';
import type { NamedTensor } from '../models/safetensors.js';
import type { Feed } from '../runtime/session.js';
import { type PlainFeed, reduceRange, type TrainProtocol } from './data-parallel.js';
import { Trainer } from './trainer.js';
import type { SparseGrad } from './optimizer.js';
import { serve } from '../util/worker-rpc.js';

let trainer: Trainer | undefined;
/** The master weights (shared) of the tensors this worker trains, by slot. */
let master: Float32Array[] = [];
/** This worker's dense gradients in shared memory, and every worker's (for the reduction). */
let published = new Map<string, Float32Array>();
let peers: Map<string, Float32Array>[] = [];

const tensors = (feed: PlainFeed): Feed => Object.fromEntries(Object.entries(feed).map(([k, t]) => [k, new ort.Tensor(t.type, t.data as Float32Array, t.dims)]));

/** Copies the optimizer's latest weights into this worker's own. */
const refresh = (t: Trainer) => t.slots.forEach((s, i) => s.data.set(master[i]!));

/** Publishes the dense gradients; returns the row gradients, by table name. */
function publish(t: Trainer) {
  t.slots.forEach((s) => s.grad && published.get(s.name)!.set(s.grad));
  // A slot without a dense buffer is a lookup table: its gradient is rows.
  return t.slots.flatMap((s, i): [string, SparseGrad][] => (s.grad ? [] : [[s.name, t.grads[i] as SparseGrad]]));
}

const ready = () => {
  if (!trainer) throw new Error('training worker: asked to work before "load"');
  return trainer;
};

serve<TrainProtocol>({
  load: async (m) => {
    const shared = new Map<string, NamedTensor>(m.weights);
    const own = new Map([...shared].map(([n, t]) => [n, { ...t, data: t.data.slice() }]));
    const t = (trainer = await Trainer.worker(m.config, own, m.options, m.role));
    master = t.slots.map((s) => shared.get(s.name)!.data);
    published = new Map(t.slots.filter((s) => s.grad).map((s) => [s.name, new Float32Array(new SharedArrayBuffer(s.grad!.length * 4))]));
    return { slots: t.slots.map((s) => ({ name: s.name, shape: s.shape, transposed: s.transposed, grad: published.get(s.name) ?? null })), frozen: t.frozenNames(), withTypes: t.typed };
  },
  peers: async (m) => {
    peers = m.buffers;
    return {};
  },
  gradients: async (m) => {
    const t = ready();
    refresh(t);
    const loss = await t.gradientsOf(m.q, m.p, tensors(m.lossFeed));
    return { loss, sparse: publish(t) };
  },
  embed: async (m) => {
    const t = ready();
    refresh(t);
    return t.embedPass(m.q, m.p);
  },
  backward: async (m) => {
    const t = ready();
    await t.backwardPass(m.dq, m.dp);
    return { sparse: publish(t) };
  },
  reduce: async (m) => {
    reduceRange(peers, m.part, m.of, m.scale);
    return {};
  },
  close: async () => {
    await trainer?.close();
    trainer = undefined;
    return {};
  },
});
