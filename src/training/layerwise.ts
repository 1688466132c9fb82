/**
 * Gradient checkpointing — the spec's `recompute: true`. The encoder runs layer by layer: the
 * forward keeps only each layer's input [batch, seq, hidden]; the backward runs one layer's VJP
 * graph, which recomputes that layer's forward, and moves on. One session serves every layer
 * (its weights are graph inputs, fed per layer under layer 0's names), so at most one layer's
 * activations are alive instead of all of them.
 *
 *   embed:  ids → x₀ = LN(word + position + type)        embedVjp: d x₀ → embedding gradients
 *   layer:  x_l, mask → x_{l+1}                            layerVjp: d x_{l+1} → d x_l, layer weight gradients
 *   head:   x_L, mask → pooled (normalised) embedding      headVjp:  d embedding → d x_L
 *
 * For models that give their parts (ArchitectureBuilder.layerwise): BERT, XLM-RoBERTa, Qwen2/3
 * (whose final RMSNorm runs in the head part, with its gradient).
 */
import { Scope } from '../util/scope.js';
import '../runtime/no-telemetry.js'; // before onnxruntime-node loads
import ort from 'onnxruntime-node';
import { Graph } from '../graph/graph.js';
import type { ModelConfig } from '../models/config.js';
import { ARCHITECTURES } from '../models/encoder.js';
import { Params } from '../models/params.js';
import { pool, type PoolingOptions } from '../models/pooling.js';
import type { NamedTensor } from '../models/safetensors.js';
import { floatTensor, type Feed, Session, type RuntimeOptions } from '../runtime/session.js';
import { GRAD_PREFIX, type GradientOptions, M3_OUTPUTS, outputGradients, seeded, type UnifiedOptions } from './graphs.js';
import { m3Heads } from '../losses/m3.js';

/** Layer 0's name of a tensor of layer `l` (or the name itself outside the layers). */
export const asLayer0 = (name: string) => name.replace(/^(encoder\.layer|layers)\.\d+\./, '$1.0.');

export interface LayerwiseSessions {
  embed: Session;
  /** Absent when nothing before the first layer trains (LoRA). */
  embedVjp?: Session;
  layer: Session;
  layerVjp: Session;
  head: Session;
  headVjp: Session;
  /** Weight names (HF, graph layout) each part reads; layer weights under layer 0's names. */
  embedNames: string[];
  layerNames: string[];
  /** embedVjp's gradients: dense by name, and row gradients per lookup table. */
  embedDense: string[];
  embedSparse: { name: string; parts: { grad: string; rows: string }[] }[];
  /** layerVjp's dense weight gradients (layer 0's names). */
  layerDense: string[];
  /** headVjp's dense weight gradients (a final norm's), and the weights the head reads. */
  headDense: string[];
  headNames: string[];
  headPartials: Map<string, ort.Tensor>;
  /** bge-m3's ColBERT size when the head also gives sparse weights and ColBERT vectors (unified fine-tuning). */
  colbertDim?: number;
  /** Layer tensor names start `<layerPrefix><i>.`. */
  layerPrefix: string;
  /** Buffers the VJP sessions write weight gradients into, added to the trainer's after each run. */
  layerPartials: Map<string, ort.Tensor>;
  embedPartials: Map<string, ort.Tensor>;
  hidden: number;
}

/** Builds the six part graphs over `weights` (graph layout) and opens their sessions. */
export async function layerwiseSessions(config: ModelConfig, weights: Map<string, NamedTensor>, pooling: PoolingOptions, grad: GradientOptions, runtime: RuntimeOptions, onDevice = false, unified?: UnifiedOptions): Promise<LayerwiseSessions> {
  const parts = ARCHITECTURES[config.architecture].layerwise;
  const arch = ARCHITECTURES[config.architecture];
  if (!parts) throw new Error(`recompute: not supported for ${config.architecture} models (only bert, xlm-roberta, qwen2 and qwen3)`);
  const h = config.hiddenSize;
  const part = (name: string, withGrad: boolean) => {
    const graph = new Graph(withGrad ? `${name}-vjp` : name);
    return { graph, params: new Params(graph, weights, 'input', 'graph', config.loraScale) };
  };

  const embedPart = (withGrad: boolean) => {
    const { graph, params } = part('embed-part', withGrad);
    const x0 = parts.embed(arch.inputs(graph), params, config);
    if (!withGrad) return { graph, params, out: graph.output(x0, 'hidden', ['batch', 'sequence', h]) };
    const seed = graph.input('grad_hidden', 'float32', ['batch', 'sequence', h]);
    return { graph, params, grads: outputGradients(graph, params, x0, seed, grad) };
  };
  const layerPart = (withGrad: boolean) => {
    const { graph, params } = part('layer-part', withGrad);
    const x = graph.input('hidden', 'float32', ['batch', 'sequence', h]);
    const mask = graph.input('attention_mask', 'int64', ['batch', 'sequence']);
    const y = parts.layer(x, mask, params, 0, config);
    if (!withGrad) return { graph, params, out: graph.output(y, 'out', ['batch', 'sequence', h]) };
    const seed = graph.input('grad_out', 'float32', ['batch', 'sequence', h]);
    return { graph, params, grads: outputGradients(graph, params, y, seed, { ...grad, sparse: false }, [x]) };
  };
  const headPart = (withGrad: boolean) => {
    const { graph, params } = part('head-part', withGrad);
    const x = graph.input('hidden', 'float32', ['batch', 'sequence', h]);
    const mask = graph.input('attention_mask', 'int64', ['batch', 'sequence']);
    const last = parts.final ? parts.final(x, params, config) : x;
    const e = pool(last, mask, pooling);
    if (unified) {
      // bge-m3's heads read the same last hidden states (unified fine-tuning)
      const reps = { dense: e, ...m3Heads(last, params, h, unified.colbertDim) };
      if (withGrad) return { graph, params, grads: outputGradients(graph, params, seeded(graph, reps), undefined, grad, [x]) };
      graph.output(reps.sparse, M3_OUTPUTS.sparse, ['batch', 'sequence']);
      graph.output(reps.colbert, M3_OUTPUTS.colbert, ['batch', 'sequence', unified.colbertDim]);
    }
    if (!withGrad) return { graph, params, out: graph.output(e, 'embedding', ['batch', h]) };
    const seed = graph.input('grad_embedding', 'float32', ['batch', h]);
    return { graph, params, grads: outputGradients(graph, params, e, seed, grad, [x]) };
  };

  const [ef, eb, lf, lb, hf, hb] = [embedPart(false), embedPart(true), layerPart(false), layerPart(true), headPart(false), headPart(true)];
  // With the state on a device, layer states and gradients stay there too (all but the pooled embedding).
  // The six sessions are released together if one of them cannot be made.
  await using scope = new Scope();
  const host = new Set(['embedding', M3_OUTPUTS.sparse, M3_OUTPUTS.colbert]);
  const open = async (g: Graph) => scope.use(await Session.create(g, onDevice ? { ...runtime, deviceOutputs: (n) => !host.has(n) } : runtime));
  const sessions = {
    embed: await open(ef.graph),
    embedVjp: eb.grads!.names.length || eb.grads!.sparse.length ? await open(eb.graph) : undefined,
    layer: await open(lf.graph),
    layerVjp: await open(lb.graph),
    head: await open(hf.graph),
    headVjp: await open(hb.graph),
  };
  scope.move();
  return {
    ...sessions,
    embedNames: [...eb.params.values.keys()],
    layerNames: [...lb.params.values.keys()],
    embedDense: eb.grads!.names,
    embedSparse: eb.grads!.sparse,
    layerDense: lb.grads!.names,
    headDense: hb.grads!.names,
    headNames: [...hb.params.values.keys()],
    headPartials: new Map(hb.grads!.names.map((n) => [n, floats(weights.get(n)!.shape)])),
    layerPrefix: parts.layerPrefix,
    layerPartials: new Map(lb.grads!.names.map((n) => [n, floats(weights.get(n)!.shape)])),
    embedPartials: new Map(eb.grads!.names.map((n) => [n, floats(weights.get(n)!.shape)])),
    hidden: h,
    colbertDim: unified?.colbertDim,
  };
}

/** The six part sessions (embedVjp absent under LoRA). */
export const layerwiseSessionList = (s: LayerwiseSessions): Session[] => [s.embed, s.embedVjp, s.layer, s.layerVjp, s.head, s.headVjp].filter((x): x is Session => !!x);

export async function releaseLayerwise(s: LayerwiseSessions): Promise<void> {
  for (const session of layerwiseSessionList(s)) await session.release();
}

/** What the layer-by-layer step reads from and writes into (the trainer's slots). */
export interface LayerwiseState {
  /** Every weight fed to a graph (trained or frozen), by HF name. */
  tensors: Map<string, ort.Tensor>;
  /** Dense gradient buffers of trained tensors, by HF name (the first slice writes, later ones add). */
  grads: Map<string, ort.Tensor>;
  /** Row-gradient sink of a lookup table. */
  addRows: (name: string, ids: BigInt64Array, grads: Float32Array) => void;
  /**
   * With the state on a device (sessions opened with `onDevice`): layer states and gradients stay
   * there; each tensor's gradient is summed into `grads` with `add` (which releases its inputs),
   * and `grads`/`addRows` above go unused.
   */
  device?: { add: (a: ort.Tensor, b: ort.Tensor) => Promise<ort.Tensor>; grads: Map<string, ort.Tensor> };
}

/** Adds `out`'s gradient outputs for `names` (renamed by `as`) into the device sums. */
async function sumOnDevice(d: NonNullable<LayerwiseState['device']>, out: Record<string, ort.Tensor>, names: string[], as: (n: string) => string = (n) => n): Promise<void> {
  for (const n of names) {
    const [key, g] = [as(n), out[GRAD_PREFIX + n]!];
    const prev = d.grads.get(key);
    d.grads.set(key, prev ? await d.add(prev, g) : g);
  }
}

/*
 * Every output goes into a buffer allocated here, in JavaScript: ORT's own output arrays are
 * memory V8 does not see, so dozens of them per step (one per layer and tower) would pile up
 * long before a garbage collection.
 */
const floats = (dims: number[]) => floatTensor(new Float32Array(dims.reduce((a, b) => a * b, 1)), dims);

/**
 * Forward of one batch slice, layer by layer, keeping each layer's input; returns the pooled
 * embeddings and the kept states (x₀ … x_L).
 */
export async function layerwiseForward(s: LayerwiseSessions, st: LayerwiseState, layers: number, ids: Feed): Promise<{ embedding: Float32Array; states: ort.Tensor[]; m3?: { sparse: Float32Array; colbert: Float32Array } }> {
  const mask = maskOf(ids);
  const [b, len] = mask.dims as [number, number];
  const h = s.hidden;
  const head = async (last: ort.Tensor) => {
    const out: Record<string, ort.Tensor> = { embedding: floats([b, h]), ...(s.colbertDim && { [M3_OUTPUTS.sparse]: floats([b, len]), [M3_OUTPUTS.colbert]: floats([b, len, s.colbertDim]) }) };
    await s.head.run({ ...weightFeed(s, st, s.headNames, null), hidden: last, attention_mask: mask }, out);
    const data = (n: string) => out[n]!.data as Float32Array;
    return { embedding: data('embedding'), ...(s.colbertDim && { m3: { sparse: data(M3_OUTPUTS.sparse), colbert: data(M3_OUTPUTS.colbert) } }) };
  };
  if (st.device) {
    const states = [(await s.embed.run({ ...weightFeed(s, st, s.embedNames, null), ...ids })).hidden!];
    for (let l = 0; l < layers; l++) states.push((await s.layer.run({ ...weightFeed(s, st, s.layerNames, l), hidden: states[l]!, attention_mask: mask })).out!);
    return { ...(await head(states[layers]!)), states };
  }
  const states: ort.Tensor[] = [floats([b, len, h])];
  await s.embed.run({ ...weightFeed(s, st, s.embedNames, null), ...ids }, { hidden: states[0]! });
  for (let l = 0; l < layers; l++) {
    states.push(floats([b, len, h]));
    await s.layer.run({ ...weightFeed(s, st, s.layerNames, l), hidden: states[l]!, attention_mask: mask }, { out: states[l + 1]! });
  }
  return { ...(await head(states[layers]!)), states };
}

/** The attention mask of a batch's feed (every encoder feed has one). */
function maskOf(ids: Feed): ort.Tensor {
  const mask = ids.attention_mask;
  if (!mask) throw new Error('layerwise: the batch has no attention_mask');
  return mask;
}

/** One slice of a batch for the backward pass: its inputs, kept states and d loss / d embedding. */
export interface BackwardSlice {
  ids: Feed;
  states: ort.Tensor[];
  dEmbedding: Float32Array;
  /** The head's other seeds (unified fine-tuning: `grad_sparse`, `grad_colbert`). */
  seeds?: Feed;
}

/**
 * Backward of every slice from d loss / d embedding: the head, then each layer (recomputed) from
 * last to first for all slices in turn, then the embeddings. The first slice's run at each layer
 * writes the weight gradients straight into the trainer's buffers; later slices add theirs.
 */
export async function layerwiseBackward(s: LayerwiseSessions, st: LayerwiseState, slices: BackwardSlice[]): Promise<void> {
  if (st.device) return backwardOnDevice(s, st, st.device, slices);
  const h = s.hidden;
  const layers = slices[0]!.states.length - 1;
  // Per slice, two d-hidden buffers used in turn: one is a layer's upstream gradient, the other its result.
  const dx = slices.map(({ ids }) => [floats([...maskOf(ids).dims, h]), floats([...maskOf(ids).dims, h])] as const);
  for (const [i, { ids, states, dEmbedding, seeds }] of slices.entries()) {
    const grad_embedding = floatTensor(dEmbedding, [maskOf(ids).dims[0]!, h]);
    const fetches: Record<string, ort.Tensor> = { [`${GRAD_PREFIX}hidden`]: dx[i]![0] };
    for (const n of s.headDense) fetches[GRAD_PREFIX + n] = i === 0 ? st.grads.get(n)! : s.headPartials.get(n)!;
    await s.headVjp.run({ ...weightFeed(s, st, s.headNames, null), hidden: states[layers]!, attention_mask: maskOf(ids), grad_embedding, ...seeds }, fetches);
    if (i > 0) for (const n of s.headDense) addInto(st.grads.get(n)!, s.headPartials.get(n)!);
  }
  for (let l = layers - 1; l >= 0; l--) {
    const [from, to] = [(layers - 1 - l) % 2, (layers - l) % 2] as [0 | 1, 0 | 1];
    for (const [i, { ids, states }] of slices.entries()) {
      const fetches: Record<string, ort.Tensor> = { [`${GRAD_PREFIX}hidden`]: dx[i]![to] };
      for (const n of s.layerDense) fetches[GRAD_PREFIX + n] = i === 0 ? st.grads.get(inLayer(s, n, l))! : s.layerPartials.get(n)!;
      await s.layerVjp.run({ ...weightFeed(s, st, s.layerNames, l), hidden: states[l]!, attention_mask: maskOf(ids), grad_out: dx[i]![from] }, fetches);
      if (i > 0) for (const n of s.layerDense) addInto(st.grads.get(inLayer(s, n, l))!, s.layerPartials.get(n)!);
      states[l + 1] = undefined as unknown as ort.Tensor; // no longer needed
    }
  }
  if (!s.embedVjp) return;
  for (const [i, { ids }] of slices.entries()) {
    const [b, len] = maskOf(ids).dims as [number, number];
    const fetches: Record<string, ort.Tensor> = {};
    for (const n of s.embedDense) fetches[GRAD_PREFIX + n] = i === 0 ? st.grads.get(n)! : s.embedPartials.get(n)!;
    const rows = s.embedSparse.flatMap((t) => t.parts.map((p) => ({ name: t.name, ...p, values: floats([b, len, h]), ids: new ort.Tensor('int64', new BigInt64Array(b * len), [b, len]) })));
    for (const r of rows) [fetches[r.grad], fetches[r.rows]] = [r.values, r.ids];
    await s.embedVjp.run({ ...weightFeed(s, st, s.embedNames, null), ...ids, grad_hidden: dx[i]![(layers % 2) as 0 | 1] }, fetches);
    if (i > 0) for (const n of s.embedDense) addInto(st.grads.get(n)!, s.embedPartials.get(n)!);
    for (const r of rows) st.addRows(r.name, r.ids.data as BigInt64Array, r.values.data as Float32Array);
  }
}

/** layerwiseBackward with states and gradients on the device; each state is released once used. */
async function backwardOnDevice(s: LayerwiseSessions, st: LayerwiseState, d: NonNullable<LayerwiseState['device']>, slices: BackwardSlice[]): Promise<void> {
  const h = s.hidden;
  const layers = slices[0]!.states.length - 1;
  const dx: ort.Tensor[] = [];
  for (const [i, { ids, states, dEmbedding, seeds }] of slices.entries()) {
    const grad_embedding = floatTensor(dEmbedding, [maskOf(ids).dims[0]!, h]);
    const out = await s.headVjp.run({ ...weightFeed(s, st, s.headNames, null), hidden: states[layers]!, attention_mask: maskOf(ids), grad_embedding, ...seeds });
    dx[i] = out[`${GRAD_PREFIX}hidden`]!;
    await sumOnDevice(d, out, s.headDense);
  }
  for (let l = layers - 1; l >= 0; l--) {
    for (const [i, { ids, states }] of slices.entries()) {
      const out = await s.layerVjp.run({ ...weightFeed(s, st, s.layerNames, l), hidden: states[l]!, attention_mask: maskOf(ids), grad_out: dx[i]! });
      dx[i]!.dispose();
      states[l + 1]!.dispose();
      dx[i] = out[`${GRAD_PREFIX}hidden`]!;
      await sumOnDevice(d, out, s.layerDense, (n) => inLayer(s, n, l));
    }
  }
  for (const [i, { ids, states }] of slices.entries()) {
    states[0]!.dispose();
    if (s.embedVjp) await sumOnDevice(d, await s.embedVjp.run({ ...weightFeed(s, st, s.embedNames, null), ...ids, grad_hidden: dx[i]! }), s.embedDense);
    dx[i]!.dispose();
  }
}

const inLayer = (s: LayerwiseSessions, layer0Name: string, l: number) => layer0Name.replace(`${s.layerPrefix}0.`, `${s.layerPrefix}${l}.`);

function weightFeed(s: LayerwiseSessions, st: LayerwiseState, names: string[], layer: number | null): Feed {
  const feed: Feed = {};
  for (const n of names) feed[n] = st.tensors.get(layer === null ? n : inLayer(s, n, layer))!;
  return feed;
}

function addInto(target: ort.Tensor, part: ort.Tensor): void {
  const [t, p] = [target.data as Float32Array, part.data as Float32Array];
  for (let j = 0; j < t.length; j++) t[j]! += p[j]!;
}
