/**
 * One data-parallel training worker (see data-parallel.ts): a Trainer over its own copy of the
 * weights, refreshed from the shared master weights at the start of every step; after each
 * computation its dense gradients are published to shared memory, where the workers sum them.
 */
import { parentPort } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import type { NamedTensor } from '../models/safetensors.js';
import type { Feed } from '../runtime/session.js';
import { type PlainFeed, reduceRange } from './data-parallel.js';
import { Trainer } from './trainer.js';

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
  return t.slots.flatMap((s, i) => (s.grad ? [] : [[s.name, t.grads[i]]]));
}

type Message = { id: number; kind: string } & Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

parentPort!.on('message', async (m: Message) => {
  const reply = (r: Record<string, unknown>, transfer: ArrayBuffer[] = []) => parentPort!.postMessage({ ...r, id: m.id }, transfer);
  try {
    if (m.kind === 'load') {
      const shared = new Map<string, NamedTensor>(m.weights);
      const own = new Map([...shared].map(([n, t]) => [n, { ...t, data: Float32Array.from(t.data) }]));
      const t = (trainer = await Trainer.worker(m.config, own, m.options, m.role));
      master = t.slots.map((s) => shared.get(s.name)!.data);
      published = new Map(t.slots.filter((s) => s.grad).map((s) => [s.name, new Float32Array(new SharedArrayBuffer(s.grad!.length * 4))]));
      reply({ slots: t.slots.map((s) => ({ name: s.name, shape: s.shape, transposed: s.transposed, grad: published.get(s.name) ?? null })), frozen: t.frozenNames(), withTypes: t.typed });
    } else if (m.kind === 'peers') {
      peers = m.buffers;
      reply({});
    } else if (m.kind === 'gradients') {
      refresh(trainer!);
      const loss = await trainer!.gradientsOf(m.q, m.p, tensors(m.lossFeed));
      reply({ loss, sparse: publish(trainer!) });
    } else if (m.kind === 'embed') {
      refresh(trainer!);
      const e = await trainer!.embedPass(m.q, m.p);
      reply({ queries: e.queries, passages: e.passages }, [e.queries.buffer as ArrayBuffer, e.passages.buffer as ArrayBuffer]);
    } else if (m.kind === 'backward') {
      await trainer!.backwardPass(m.dq, m.dp);
      reply({ sparse: publish(trainer!) });
    } else if (m.kind === 'reduce') {
      reduceRange(peers, m.part, m.of, m.scale);
      reply({});
    } else {
      await trainer?.close();
      trainer = undefined;
      reply({});
    }
  } catch (e) {
    reply({ error: (e as Error).message });
  }
});
