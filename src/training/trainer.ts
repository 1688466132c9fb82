/**
 * One contrastive training step on onnxruntime: forward, InfoNCE, backward in one session run
 * (or, with GradCache, in slices), then gradient clipping and AdamW on the weights in place.
 * Weights live in graph layout (linear weights as [in, out]); `hfWeights()` gives them back in
 * Hugging Face layout for export.
 */
import type ort from 'onnxruntime-node';
import { applyTemplate, Encoder } from '../models/encoder.js';
import { padBatch } from '../models/batch.js';
import type { ModelConfig } from '../models/config.js';
import type { Pooling } from '../models/pooling.js';
import { type NamedTensor } from '../models/safetensors.js';
import { transpose2d } from '../models/params.js';
import type { Tokenizer } from '../models/tokenizer.js';
import { type Feed, floatTensor, int64Tensor, type RuntimeOptions, Session, Transfer } from '../runtime/session.js';
import type { Graph } from '../graph/graph.js';
import { Scope } from '../util/scope.js';
import { DenseLoss, type EmbeddingLoss, InfoNceTiled } from '../losses/inf-cl.js';
import { createTrainer, evaluateTrainer, exportTrainer, restoreTrainer, saveTrainer, type TrainerSettings, type TrainerSource } from './library.js';
import type { EvaluationResult, RetrievalSet } from '../jobs/evaluate.js';
import { deviceResident } from '../runtime/device-memory.js';
import { DeviceState } from './device-state.js';
import type { DistillOptions } from '../losses/distill.js';
import { embedGraph, GRAD_PREFIX, lossGradGraph, m3LossGradGraph, M3_OUTPUTS, stepGraph, type TrainGraph, type UnifiedOptions, vjpGraph } from './graphs.js';
import { m3Feed } from '../losses/m3.js';
import { type BackwardSlice, layerwiseBackward, layerwiseForward, type LayerwiseSessions, layerwiseSessionList, layerwiseSessions, type LayerwiseState, releaseLayerwise } from './layerwise.js';
import { DataParallel, shareWeights, type WorkerRole } from './data-parallel.js';
import type { Slot as DeviceSlot } from '../models/encoder-pool.js';
import { AdamW, clipGradNorm, decays, type Grad, learningRate, type ParamSlot, RowGradients, type Schedule } from './optimizer.js';
import type { TrainExample } from './sampler.js';

/** The distillation inputs of a batch: teacher scores [Q, G] and each query's own columns [Q, G]. */
function teacherFeed(batch: TrainExample[], group: number): Feed {
  const teacher = new Float32Array(batch.length * group);
  const columns = new BigInt64Array(batch.length * group);
  batch.forEach((e, i) => {
    if (!e.teacher || e.teacher.length !== group) throw new Error(`distillation: the example of "${e.query.slice(0, 60)}" has no teacher score for each of its ${group} passages`);
    teacher.set(e.teacher, i * group);
    for (let g = 0; g < group; g++) columns[i * group + g] = BigInt(i * group + g);
  });
  return { teacher: floatTensor(teacher, [batch.length, group]), group_columns: int64Tensor(columns, [batch.length, group]) };
}

/** The loss inputs of a batch: each query's positive column, and the teacher's scores when distilling. */
function lossFeedOf(batch: TrainExample[], distill: boolean): Feed {
  const group = batch[0]!.passages.length;
  const labels = int64Tensor(BigInt64Array.from(batch.map((_, i) => BigInt(i * group))), [batch.length, 1]);
  return { labels, ...(distill && teacherFeed(batch, group)) };
}

export interface TrainerOptions {
  pooling: Pooling;
  normalize: boolean;
  temperature: number;
  matryoshkaDims?: number[];
  matryoshkaWeights?: number[];
  learningRate: number;
  weightDecay: number;
  /** AdamW's β₁, β₂ and ε (default 0.9, 0.999, 1e-8, as torch). */
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  warmupSteps: number;
  totalSteps: number;
  schedule: Schedule;
  /** Clip the global gradient norm to this (0 = off). */
  maxGradNorm: number;
  /** GradCache: run the encoder on at most this many texts at a time; the loss still sees the full batch. */
  miniBatchSize?: number;
  maxQueryLength: number;
  maxPassageLength: number;
  queryTemplate?: string;
  passageTemplate?: string;
  threads?: number;
  /** Write onnxruntime's per-node profile (JSON) with this file prefix. */
  profilePrefix?: string;
  /** Do not train the embedding tables (word, position, token type): no gradient, no moments. */
  freezeEmbeddings?: boolean;
  /** Train only the tensors whose names match (LoRA: the adapters); the rest are fed as they are, with no gradient or moments. */
  trainOnly?: RegExp;
  /**
   * Lookup tables get their gradient as the rows a batch uses (default true); the AdamW update
   * is the same as with the dense gradient. false: dense vocab × hidden gradients (for checks).
   */
  sparseEmbeddings?: boolean;
  /**
   * Gradient checkpointing (the spec's `recompute`): run the encoder layer by layer, keep only
   * each layer's input, and recompute a layer's activations in its backward. Same gradients,
   * activation memory of one layer instead of all. BERT and XLM-RoBERTa.
   */
  recompute?: boolean;
  /**
   * Inf-CL (the spec's `loss_type: inf_cl`): the InfoNCE taken tile by tile over the embeddings
   * (losses/inf-cl.ts), on the GradCache path, scores × `scale` (the spec's 1.0: no temperature).
   */
  infCl?: { scale: number };
  /** Distill from each example's `teacher` scores (a reranker's) next to InfoNCE. */
  distill?: DistillOptions;
  /**
   * bge-m3's unified fine-tuning (losses/m3.ts): dense, lexical and ColBERT scores trained
   * together, the heads (`sparse_linear.*`, `colbert_linear.*` among the weights) with the encoder;
   * `special`: the token ids the lexical score ignores. One process, fused or GradCache.
   */
  unified?: UnifiedOptions & {
    special: number[];
    /** Self-distillation from the step after this one on (FlagEmbedding's `self_distill_start_step`; default −1: from the first). */
    selfDistillStartStep?: number;
  };
  /** Where the sessions run (see runtime/device.ts). */
  device?: string;
  /**
   * Keep weights, moments and gradients in device memory between steps where the provider can
   * (WebGPU; default true). false: host state as on the CPU, every step uploading the weights and
   * downloading the gradients (for comparison: scripts/device-check.ts).
   */
  stateOnDevice?: boolean;
  /**
   * Data parallel: one worker thread per entry (`parseDevices('cpu:2x1')`, `cuda:0,cuda:1`), each
   * with its own sessions, taking a contiguous slice of every batch; gradients are summed in
   * shared memory and one AdamW step runs here (see data-parallel.ts).
   */
  devices?: DeviceSlot[];
  /**
   * With `devices`: every query sees every worker's passages (the spec's
   * `embedding_negatives_cross_device`, default true), so the loss is that of one worker with the
   * whole batch; false: each worker's own in-batch loss, losses and gradients averaged.
   */
  crossDevice?: boolean;
}

/** The embedding tables `freezeEmbeddings` keeps fixed. */
export const EMBEDDING_TABLE = /(^|\.)(word_embeddings|position_embeddings|token_type_embeddings|embed_tokens)\.weight$|^embeddings\.weight$/;

export interface StepResult {
  loss: number;
  gradNorm: number;
  lr: number;
  /** Bytes the step moved host → device and back (training on a device only). */
  transfer?: { toDevice: number; fromDevice: number };
}

export interface Slot extends ParamSlot {
  shape: number[];
  transposed: boolean;
  tensor: ort.Tensor;
  /** Dense gradient buffer (ORT writes into it), or null for a lookup table with row gradients. */
  grad: Float32Array | null;
  gradTensor: ort.Tensor | null;
  /** For row gradients: the `grad.`/`rows.` output pairs of each lookup. */
  parts: { grad: string; rows: string }[];
}

interface Sessions {
  step?: Session;
  embed?: Session;
  vjp?: Session;
  /** The loss over embeddings and its gradient, for GradCache and recompute (dense or tiled). */
  loss?: EmbeddingLoss;
  /** The unified loss over the three representations and their gradients (GradCache). */
  m3Loss?: Session;
  layerwise?: LayerwiseSessions;
}

/** One side's sparse weights [N, length] and ColBERT vectors [N, length, d], padded to its longest text (unified GradCache). */
interface M3Side {
  sparse: Float32Array;
  colbert: Float32Array;
  length: number;
}

/** Rows `row`… of a padded [N, length, width] buffer, cut to `cut` columns: [rows, cut, width]. */
function cutRows(data: Float32Array, row: number, rows: number, length: number, cut: number, width: number): Float32Array {
  const out = new Float32Array(rows * cut * width);
  for (let i = 0; i < rows; i++) out.set(data.subarray((row + i) * length * width, ((row + i) * length + cut) * width), i * cut * width);
  return out;
}

/** A side's zeroed M3Side for `ids` (length: its longest text). */
function m3Side(ids: number[][], d: number): M3Side {
  const length = Math.max(1, ...ids.map((x) => x.length));
  return { sparse: new Float32Array(ids.length * length), colbert: new Float32Array(ids.length * length * d), length };
}

/** A slice's `n` rows of [n, cut] sparse weights and [n, cut, d] ColBERT vectors into `side` at `row` (zeros after each text). */
function putRows(side: M3Side, row: number, n: number, cut: number, d: number, r: { sparse: Float32Array; colbert: Float32Array }): void {
  for (let i = 0; i < n; i++) {
    side.sparse.set(r.sparse.subarray(i * cut, (i + 1) * cut), (row + i) * side.length);
    side.colbert.set(r.colbert.subarray(i * cut * d, (i + 1) * cut * d), (row + i) * side.length * d);
  }
}

/** What a GradCache or layer-by-layer forward keeps for its backward. */
type Kept = { q: number[][]; p: number[][] } | { towers: Feed[][]; runs: { embedding: Float32Array; states: ort.Tensor[] }[][]; cuts: number[][] };

export class Trainer {
  private readonly tokenCache = new Map<string, number[]>();
  /** This step's gradients, one per slot (set by computeGradients). */
  grads: Grad[] = [];
  private kept?: Kept;
  /** This step's gradients on the device (device-resident training), one per slot. */
  private deviceGrads: ort.Tensor[] = [];
  /** Host↔device bytes of every session this trainer runs on a device. */
  readonly transfer: Transfer;

  private constructor(
    readonly config: ModelConfig,
    private readonly tokenizer: Tokenizer | null,
    readonly o: TrainerOptions,
    readonly slots: Slot[],
    /** Tensors fed to the graphs but not trained. */
    private readonly frozen: { name: string; tensor: ort.Tensor }[],
    readonly optimizer: AdamW,
    private readonly sessions: Sessions,
    private readonly withTypes: boolean,
    /** Tensors the trainer does not update (frozen ones, fixed constants), in graph layout. */
    private readonly base: Map<string, NamedTensor>,
    /** Names in `base` held transposed (frozen linear weights, e.g. under LoRA). */
    private readonly transposedBase: Set<string>,
    /** The workers when training data-parallel (this thread then runs no encoder session). */
    private readonly group?: DataParallel,
    /** Weights, moments and gradients in device memory (WebGPU; see device-state.ts). */
    private readonly device?: DeviceState,
    transfer?: Transfer,
    /** Every session, worker and device buffer the trainer holds: released by close(). */
    private readonly owned = new Scope(),
  ) {
    this.transfer = transfer ?? new Transfer();
  }

  /** Whether weights, moments and gradients stay in device memory between steps. */
  get deviceResident(): boolean {
    return !!this.device;
  }

  /**
   * Builds the training graphs and sessions. The trainer takes `weights` over: tensors it trains
   * are updated in place (no copy is kept; linear weights are held transposed, as [in, out]).
   * @example
   *   const trainer = await Trainer.fromWeights(config, tokenizer, loadWeights(dir), { ...options });
   *   const { loss } = await trainer.step(batch);
   */
  static async fromWeights(config: ModelConfig, tokenizer: Tokenizer, weights: Map<string, NamedTensor>, o: TrainerOptions): Promise<Trainer> {
    if (o.devices?.length) return Trainer.dataParallel(config, tokenizer, weights, o);
    return Trainer.build(config, tokenizer, weights, o);
  }

  /**
   * A data-parallel worker's trainer (see train-worker.ts): `weights` (the worker's own copy) are
   * already in graph layout, and it keeps no optimizer state; with `role.crossDevice` it computes
   * in two passes (embedPass, backwardPass) around a loss taken over every worker's embeddings.
   */
  static worker(config: ModelConfig, weights: Map<string, NamedTensor>, o: TrainerOptions, role: WorkerRole): Promise<Trainer> {
    return Trainer.build(config, null, weights, o, role);
  }

  private static async dataParallel(config: ModelConfig, tokenizer: Tokenizer, weights: Map<string, NamedTensor>, o: TrainerOptions): Promise<Trainer> {
    shareWeights(weights);
    // Linear weights are transposed in place, once, before the workers see them.
    embedGraph(config, weights, { pooling: o.pooling, normalize: o.normalize }, 'adopt');
    await using scope = new Scope();
    const group = scope.use(await DataParallel.start(config, weights, o));
    const slots: Slot[] = group.slots.map((w) => {
      const data = weights.get(w.name)!.data;
      return { name: w.name, data, decay: decays(w.name), shape: w.shape, transposed: w.transposed, tensor: floatTensor(data, w.shape), grad: group.sum(w.name), gradTensor: null, parts: [] };
    });
    const frozen = group.frozen.map((f) => ({ name: f.name, tensor: floatTensor(weights.get(f.name)!.data, weights.get(f.name)!.shape) }));
    const optimizer = new AdamW(slots, { weightDecay: o.weightDecay, beta1: o.beta1, beta2: o.beta2, eps: o.epsilon });
    const trained = new Set(slots.map((s) => s.name));
    const base = new Map([...weights].filter(([n]) => !trained.has(n)));
    const transposedBase = new Set(group.frozen.filter((f) => f.transposed).map((f) => f.name));
    return new Trainer(config, tokenizer, o, slots, frozen, optimizer, {}, group.withTypes, base, transposedBase, group, undefined, undefined, scope.move());
  }

  private static async build(config: ModelConfig, tokenizer: Tokenizer | null, weights: Map<string, NamedTensor>, o: TrainerOptions, role?: WorkerRole): Promise<Trainer> {
    const pooling = { pooling: o.pooling, normalize: o.normalize };
    const loss = { temperature: o.temperature, matryoshkaDims: o.matryoshkaDims, matryoshkaWeights: o.matryoshkaWeights, distill: o.distill };
    const transfer = new Transfer();
    const runtime = { threads: o.threads, memPattern: false, profilePrefix: o.profilePrefix, device: o.device, transfer };
    // On WebGPU the state stays on the device (data-parallel workers train on host state); lookup
    // tables then get dense gradients.
    const onDevice = deviceResident(o.device) && o.stateOnDevice !== false && !role;
    const gradsOnDevice = onDevice ? { deviceOutputs: (n: string) => n.startsWith(GRAD_PREFIX) } : {};
    const fixed = (n: string) => (o.freezeEmbeddings && EMBEDDING_TABLE.test(n)) || (o.trainOnly !== undefined && !o.trainOnly.test(n));
    const grad = { sparse: !onDevice && (o.sparseEmbeddings ?? true), frozen: new Set([...weights.keys()].filter(fixed)) };
    const sessions: Sessions = {};
    // What is made here is released if a later part fails (a graph refused, a device out of memory).
    await using scope = new Scope();
    const open = async (graph: Graph, options: RuntimeOptions) => scope.use(await Session.create(graph, options));
    const embeddingLoss = async (): Promise<EmbeddingLoss> =>
      o.infCl
        ? scope.use(await InfoNceTiled.create({ scale: o.infCl.scale, matryoshkaDims: o.matryoshkaDims, matryoshkaWeights: o.matryoshkaWeights, normalized: o.normalize }, runtime))
        : new DenseLoss(await open(lossGradGraph(config.hiddenSize, { ...loss, normalized: o.normalize }), runtime), GRAD_PREFIX);
    // Linear weights are transposed in place, once: from here on `weights` is in graph layout
    // (a worker's come so already).
    const whole = embedGraph(config, weights, pooling, role ? 'graph' : 'adopt', o.unified);
    let built: TrainGraph;
    if (o.unified && (role || o.infCl || o.distill || o.matryoshkaDims)) {
      throw new Error('unified fine-tuning: runs in one process (fused, GradCache or recompute); not with data-parallel devices, inf_cl, distillation or Matryoshka dimensions');
    }
    if (o.recompute) {
      const lw = (sessions.layerwise = await layerwiseSessions(config, weights, pooling, grad, runtime, onDevice, o.unified));
      scope.defer(() => releaseLayerwise(lw));
      if (o.unified) sessions.m3Loss = await open(m3LossGradGraph(config.hiddenSize, o.unified.colbertDim, o.temperature, o.unified.selfDistill), runtime);
      else sessions.loss = await embeddingLoss();
      const sparse = new Set(lw.embedSparse.map((t) => t.name));
      built = { ...whole, names: whole.names.filter((n) => !grad.frozen.has(n) && !sparse.has(n)), sparse: lw.embedSparse, frozen: whole.names.filter((n) => grad.frozen.has(n)) };
    } else if (o.miniBatchSize || role?.crossDevice || o.infCl) {
      built = vjpGraph(config, weights, pooling, grad, 'graph', o.unified);
      sessions.vjp = await open(built.graph, { ...runtime, ...gradsOnDevice });
      sessions.embed = await open(whole.graph, runtime);
      // A data-parallel worker's loss is taken by the main thread.
      if (o.unified) sessions.m3Loss = await open(m3LossGradGraph(config.hiddenSize, o.unified.colbertDim, o.temperature, o.unified.selfDistill), runtime);
      else if (!role?.crossDevice) sessions.loss = await embeddingLoss();
    } else {
      built = stepGraph(config, weights, pooling, { ...loss, unified: o.unified }, grad, 'graph');
      sessions.step = await open(built.graph, { ...runtime, ...gradsOnDevice });
    }
    const slot = (name: string, parts: Slot['parts']): Slot => {
      const u = built.params.used.get(name)!;
      const grad = parts.length || onDevice ? null : new Float32Array(u.data.length);
      return { name, data: u.data, decay: decays(name), shape: u.shape, transposed: u.transposed, tensor: floatTensor(u.data, u.shape), grad, gradTensor: grad && floatTensor(grad, u.shape), parts };
    };
    const slots = [...built.names.map((n) => slot(n, [])), ...built.sparse.map((s) => slot(s.name, s.parts))];
    const frozen = built.frozen.map((name) => {
      const u = built.params.used.get(name)!;
      return { name, tensor: floatTensor(u.data, u.shape) };
    });
    // A worker keeps no optimizer state: the step is taken once, by the main thread. On a device
    // the moments live there (DeviceState); AdamW here then only counts steps.
    const adamw = { weightDecay: o.weightDecay, beta1: o.beta1, beta2: o.beta2, eps: o.epsilon };
    const optimizer = new AdamW(role || onDevice ? [] : slots, adamw);
    const k = { weightDecay: o.weightDecay, beta1: o.beta1 ?? 0.9, beta2: o.beta2 ?? 0.999, eps: o.epsilon ?? 1e-8 };
    const device = onDevice ? scope.use(await DeviceState.create(slots, frozen, k, runtime)) : undefined;
    const withTypes = (sessions.step ?? sessions.vjp ?? sessions.layerwise!.embed).inputNames.some((n) => n.endsWith('token_type_ids'));
    const trained = new Set(slots.map((s) => s.name));
    const base = new Map([...weights].filter(([n]) => !trained.has(n)));
    const transposedBase = new Set(built.frozen.filter((n) => built.params.used.get(n)?.transposed));
    return new Trainer(config, tokenizer, o, slots, frozen, optimizer, sessions, withTypes, base, transposedBase, undefined, device, transfer, scope.move());
  }

  private tokenize(text: string, template: string | undefined, maxLength: number): number[] {
    if (!this.tokenizer) throw new Error('a data-parallel worker tokenizes nothing');
    const key = `${maxLength}\u0000${template ?? ''}\u0000${text}`;
    let ids = this.tokenCache.get(key);
    if (!ids) {
      ids = this.tokenizer.encode(applyTemplate(text, template), maxLength);
      if (this.tokenCache.size < 1_000_000) this.tokenCache.set(key, ids);
    }
    return ids;
  }

  /** Whether the model reads token type ids. */
  get typed(): boolean {
    return this.withTypes;
  }

  /** The tensors fed but not trained, and whether each is held transposed. */
  frozenNames(): { name: string; transposed: boolean }[] {
    return this.frozen.map((f) => ({ name: f.name, transposed: this.transposedBase.has(f.name) }));
  }

  private weightFeed(): Record<string, ort.Tensor> {
    if (this.device) return this.device.feed();
    return Object.fromEntries([...this.slots, ...this.frozen].map((s) => [s.name, s.tensor]));
  }

  /** Dense gradients into their buffers (given tensors), row gradients and their ids allocated by ORT (null). */
  private gradFetches(dense: (s: Slot, i: number) => ort.Tensor): Record<string, ort.Tensor | null> {
    const out: Record<string, ort.Tensor | null> = {};
    this.slots.forEach((s, i) => {
      if (this.device) out[GRAD_PREFIX + s.name] = null; // left on the device
      else if (s.grad) out[GRAD_PREFIX + s.name] = dense(s, i);
      for (const p of s.parts) [out[p.grad], out[p.rows]] = [null, null];
    });
    return out;
  }

  /** Adds the row gradients of one run's outputs into per-slot accumulators. */
  private addRows(out: Record<string, ort.Tensor>, acc: (RowGradients | null)[]): void {
    this.slots.forEach((s, i) => {
      for (const p of s.parts) acc[i]!.add(out[p.rows]!.data as BigInt64Array, out[p.grad]!.data as Float32Array);
    });
  }

  private rowAccumulators(): (RowGradients | null)[] {
    return this.slots.map((s) => (s.grad ? null : new RowGradients(s.shape[1]!)));
  }

  /** Token ids of a batch's queries and passages (each example's passages in turn). */
  private tokenizeBatch(batch: TrainExample[]): { q: number[][]; p: number[][] } {
    return {
      q: batch.map((e) => this.tokenize(e.query, this.o.queryTemplate, this.o.maxQueryLength)),
      p: batch.flatMap((e) => e.passages.map((t) => this.tokenize(t, this.o.passageTemplate, this.o.maxPassageLength))),
    };
  }

  /** Computes loss and gradients (into the slots' grad buffers, or `grads`) for one batch. */
  async computeGradients(batch: TrainExample[]): Promise<number> {
    if (this.group) {
      const parts = this.group.split(batch).map((b) => ({ ...this.tokenizeBatch(b), lossFeed: lossFeedOf(b, !!this.o.distill) }));
      const r = await this.group.gradients(parts, lossFeedOf(batch, !!this.o.distill));
      this.grads = this.slots.map((s) => s.grad ?? r.sparse.get(s.name) ?? { rows: new Int32Array(0), values: new Float32Array(0), width: s.shape[1]! });
      return r.loss;
    }
    const { q, p } = this.tokenizeBatch(batch);
    return this.gradientsOf(q, p, { ...lossFeedOf(batch, !!this.o.distill), ...this.m3Plan(q, p) });
  }

  /** The unified loss's host-planned inputs (lexical terms and pairs, ColBERT masks); none otherwise. */
  private m3Plan(q: number[][], p: number[][]): Feed {
    const u = this.o.unified;
    if (!u) return {};
    const longest = (ids: number[][]) => Math.max(1, ...ids.map((x) => x.length));
    // FlagEmbedding counts forward passes from 0 and distils while that count > self_distill_start_step.
    const distil: Feed = u.selfDistill ? { m3_self_distill: floatTensor(Float32Array.of(this.optimizer.step > (u.selfDistillStartStep ?? -1) ? 1 : 0), []) } : {};
    return { ...m3Feed(q, p, longest(q), longest(p), new Set(u.special)), ...distil };
  }

  /**
   * Loss and gradients of tokenized queries and passages (p: each query's group in turn) on this
   * thread's sessions: one run of the step graph, or GradCache / layer by layer in two passes.
   */
  async gradientsOf(q: number[][], p: number[][], lossFeed: Feed): Promise<number> {
    const pad = this.config.padTokenId;
    if (this.sessions.step) {
      const out = await this.sessions.step.run(
        { ...this.weightFeed(), ...padBatch(q, pad, 'q_', this.withTypes), ...padBatch(p, pad, 'p_', this.withTypes), ...lossFeed },
        { loss: null, ...this.gradFetches((s) => s.gradTensor!) },
      );
      if (this.device) {
        this.deviceGrads = this.slots.map((s) => out[GRAD_PREFIX + s.name]!);
        return (out.loss!.data as Float32Array)[0]!;
      }
      const rows = this.rowAccumulators();
      this.addRows(out, rows);
      this.grads = this.slots.map((s, i) => s.grad ?? rows[i]!.finish());
      return (out.loss!.data as Float32Array)[0]!;
    }
    const { queries, passages, m3 } = await this.embedPass(q, p);
    if (this.sessions.m3Loss) {
      const [qs, ps] = m3!;
      const d = this.o.unified!.colbertDim;
      const out = await this.sessions.m3Loss.run({
        queries: floatTensor(queries, [q.length, this.config.hiddenSize]),
        passages: floatTensor(passages, [p.length, this.config.hiddenSize]),
        q_sparse: floatTensor(qs.sparse, [q.length, qs.length]),
        p_sparse: floatTensor(ps.sparse, [p.length, ps.length]),
        q_colbert: floatTensor(qs.colbert, [q.length, qs.length, d]),
        p_colbert: floatTensor(ps.colbert, [p.length, ps.length, d]),
        ...lossFeed,
      });
      const g = (n: string) => out[GRAD_PREFIX + n]!.data as Float32Array;
      await this.backwardPass(g('queries'), g('passages'), [
        { ...qs, sparse: g('q_sparse'), colbert: g('q_colbert') },
        { ...ps, sparse: g('p_sparse'), colbert: g('p_colbert') },
      ]);
      return (out.loss!.data as Float32Array)[0]!;
    }
    const lg = await this.sessions.loss!.lossAndGradients(queries, passages, this.config.hiddenSize, lossFeed);
    await this.backwardPass(lg.dq, lg.dp);
    return lg.loss;
  }

  /** Token id lists cut into GradCache's slices (the whole list when there is no mini-batch size). */
  private slices(ids: number[][]): number[][][] {
    const size = this.o.miniBatchSize ?? Math.max(ids.length, 1);
    return Array.from({ length: Math.ceil(ids.length / size) }, (_, i) => ids.slice(i * size, (i + 1) * size));
  }

  /**
   * Pass 1: the embeddings of queries and passages with the current weights, no gradients; keeps
   * what backwardPass needs (the ids, or with recompute each layer's input).
   */
  async embedPass(q: number[][], p: number[][]): Promise<{ queries: Float32Array; passages: Float32Array; m3?: [M3Side, M3Side] }> {
    const pad = this.config.padTokenId;
    const dim = this.config.hiddenSize;
    const concat = (parts: Float32Array[]) => {
      const out = new Float32Array(parts.reduce((n, x) => n + x.length, 0));
      parts.reduce((at, x) => (out.set(x, at), at + x.length), 0);
      return out;
    };
    const d = this.o.unified?.colbertDim ?? 0;
    if (this.sessions.layerwise) {
      const sides = [q, p];
      const towers = sides.map((ids) => this.slices(ids).map((s) => padBatch(s, pad, '', this.withTypes)));
      const runs: { embedding: Float32Array; states: ort.Tensor[] }[][] = [];
      const m3 = this.o.unified && sides.map((ids) => m3Side(ids, d));
      for (const [t, slices] of towers.entries()) {
        const tower = [];
        let row = 0;
        for (const ids of slices) {
          const r = await layerwiseForward(this.sessions.layerwise, this.layerwiseState(), this.config.numLayers, ids);
          const n = ids.attention_mask!.dims[0]!;
          if (m3) putRows(m3[t]!, row, n, ids.attention_mask!.dims[1]!, d, r.m3!);
          row += n;
          tower.push({ embedding: r.embedding, states: r.states });
        }
        runs.push(tower);
      }
      this.kept = { towers, runs, cuts: towers.map((slices) => slices.map((f) => f.attention_mask!.dims[1]!)) };
      return { queries: concat(runs[0]!.map((r) => r.embedding)), passages: concat(runs[1]!.map((r) => r.embedding)), ...(m3 && { m3: m3 as [M3Side, M3Side] }) };
    }
    const embed = this.sessions.embed!;
    const embedAll = async (ids: number[][]) => {
      const out = new Float32Array(ids.length * dim);
      const m3 = this.o.unified && m3Side(ids, d);
      let row = 0;
      for (const s of this.slices(ids)) {
        const r = await embed.run({ ...this.weightFeed(), ...padBatch(s, pad, '', this.withTypes) });
        out.set(r.embedding!.data as Float32Array, row * dim);
        if (m3) putRows(m3, row, s.length, r[M3_OUTPUTS.sparse]!.dims[1]!, d, { sparse: r[M3_OUTPUTS.sparse]!.data as Float32Array, colbert: r[M3_OUTPUTS.colbert]!.data as Float32Array });
        row += s.length;
      }
      return { out, m3 };
    };
    this.kept = { q, p };
    const [qe, pe] = [await embedAll(q), await embedAll(p)];
    return { queries: qe.out, passages: pe.out, ...(qe.m3 && { m3: [qe.m3, pe.m3!] as [M3Side, M3Side] }) };
  }

  /** What the layer-by-layer passes read (the weights) and write (gradients, into `rows` for lookups). */
  private layerwiseState(rows?: (RowGradients | null)[]): LayerwiseState {
    const index = new Map(this.slots.map((s, i) => [s.name, i]));
    return {
      tensors: new Map(Object.entries(this.weightFeed())),
      ...(this.device && { device: { add: (a: ort.Tensor, b: ort.Tensor) => this.device!.add(a, b), grads: new Map() } }),
      grads: new Map(this.slots.filter((s) => s.gradTensor).map((s) => [s.name, s.gradTensor!])),
      addRows: (name, ids, grads) => rows![index.get(name)!]!.add(ids, grads),
    };
  }

  /**
   * Pass 2: the weight gradients (into the slots, and `grads`) from d loss / d embeddings of the
   * texts embedPass saw, slice by slice.
   */
  async backwardPass(dq: Float32Array, dp: Float32Array, m3?: [M3Side, M3Side]): Promise<void> {
    const kept = this.kept;
    if (!kept) throw new Error('backwardPass: no embedPass before it');
    this.kept = undefined;
    const dim = this.config.hiddenSize;
    const rows = this.rowAccumulators();
    if ('towers' in kept) {
      const seeds = [dq, dp];
      const backward: BackwardSlice[] = kept.towers.flatMap((slices, t) => {
        let at = 0;
        return slices.map((ids, i) => {
          const n = kept.runs[t]![i]!.embedding.length;
          at += n;
          const rows = ids.attention_mask!.dims[0]!;
          return { ids, states: kept.runs[t]![i]!.states, dEmbedding: seeds[t]!.subarray(at - n, at), seeds: m3 && this.m3Seeds(m3[t]!, at / dim - rows, rows, kept.cuts[t]![i]!) };
        });
      });
      const state = this.layerwiseState(rows);
      await layerwiseBackward(this.sessions.layerwise!, state, backward);
      if (state.device) this.deviceGrads = this.slots.map((s) => state.device!.grads.get(s.name)!);
      else this.grads = this.slots.map((s, i) => s.grad ?? rows[i]!.finish());
      return;
    }
    if (this.device) return this.backwardOnDevice(kept as { q: number[][]; p: number[][] }, dq, dp, m3);
    this.slots.forEach((s) => s.grad?.fill(0));
    const partial = this.slots.map((s) => (s.grad ? new Float32Array(s.grad.length) : null));
    await this.vjpSlices(kept as { q: number[][]; p: number[][] }, dq, dp, m3, this.gradFetches((s, i) => floatTensor(partial[i]!, s.shape)), (out) => {
      this.addRows(out, rows);
      this.slots.forEach((slot, i) => {
        const g = slot.grad;
        const d = partial[i];
        if (g && d) for (let j = 0; j < g.length; j++) g[j]! += d[j]!;
      });
    });
    this.grads = this.slots.map((s, i) => s.grad ?? rows[i]!.finish());
  }

  /** The unified tower's other two seeds for rows `row`… of a side: d loss / d sparse weights and ColBERT vectors, cut to the slice's padded length. */
  private m3Seeds(side: M3Side, row: number, rows: number, cut: number): Feed {
    const d = this.o.unified!.colbertDim;
    return {
      [`grad_${M3_OUTPUTS.sparse}`]: floatTensor(cutRows(side.sparse, row, rows, side.length, cut, 1), [rows, cut]),
      [`grad_${M3_OUTPUTS.colbert}`]: floatTensor(cutRows(side.colbert, row, rows, side.length, cut, d), [rows, cut, d]),
    };
  }

  /** Runs the vjp graph on each GradCache slice of the kept ids, seeded by its rows of dq / dp; `each` takes each run's outputs. */
  private async vjpSlices(kept: { q: number[][]; p: number[][] }, dq: Float32Array, dp: Float32Array, m3: [M3Side, M3Side] | undefined, fetches: Record<string, ort.Tensor | null>, each: (out: Record<string, ort.Tensor>) => void | Promise<void>): Promise<void> {
    const dim = this.config.hiddenSize;
    const d = this.o.unified?.colbertDim ?? 0;
    for (const [ids, grads, side] of [
      [kept.q, dq, m3?.[0]],
      [kept.p, dp, m3?.[1]],
    ] as const) {
      let row = 0;
      for (const s of this.slices(ids)) {
        const seed = floatTensor(grads.slice(row * dim, (row + s.length) * dim), [s.length, dim]);
        const seeds = side && this.m3Seeds(side, row, s.length, Math.max(1, ...s.map((x) => x.length)));
        await each(await this.sessions.vjp!.run({ ...this.weightFeed(), ...padBatch(s, this.config.padTokenId, '', this.withTypes), grad_embedding: seed, ...seeds }, fetches));
        row += s.length;
      }
    }
  }

  /** backwardPass with the state on the device: each slice's gradients are summed there. */
  private async backwardOnDevice(kept: { q: number[][]; p: number[][] }, dq: Float32Array, dp: Float32Array, m3?: [M3Side, M3Side]): Promise<void> {
    let acc: ort.Tensor[] | undefined;
    await this.vjpSlices(kept, dq, dp, m3, this.gradFetches(() => null as never), async (out) => {
      const part = this.slots.map((slot) => out[GRAD_PREFIX + slot.name]!);
      acc = acc ? await this.device!.accumulate(acc, part) : part;
    });
    this.deviceGrads = acc!;
  }

  /** step() with the state on the device: the norm, clipping and AdamW run there. */
  private async stepOnDevice(batch: TrainExample[]): Promise<StepResult> {
    const before = this.transfer.snapshot();
    const loss = await this.computeGradients(batch);
    const stepIndex = this.optimizer.step;
    const lr = learningRate(stepIndex, { lr: this.o.learningRate, warmupSteps: this.o.warmupSteps, totalSteps: this.o.totalSteps, schedule: this.o.schedule });
    const grads = this.deviceGrads;
    this.deviceGrads = [];
    const norm = await this.device!.gradNorm(grads);
    if (!Number.isFinite(loss) || !Number.isFinite(norm)) {
      this.device!.discard(grads);
      throw new NonFiniteError(stepIndex + 1, !Number.isFinite(loss) ? `loss is ${loss}` : `gradient norm is ${norm}`);
    }
    // clip_grad_norm_'s factor, as clipGradNorm applies it
    const scale = this.o.maxGradNorm > 0 ? Math.min(1, this.o.maxGradNorm / (norm + 1e-6)) : 1;
    await this.device!.step(grads, lr, stepIndex + 1, scale);
    this.optimizer.step++;
    return { loss, gradNorm: norm, lr, transfer: this.transfer.since(before) };
  }

  /**
   * One optimizer step on `batch`. Throws (before touching the weights) when the loss or the
   * gradient is NaN or infinite.
   */
  async step(batch: TrainExample[]): Promise<StepResult> {
    if (this.device) return this.stepOnDevice(batch);
    const before = this.transfer.snapshot();
    const loss = await this.computeGradients(batch);
    const grads = this.grads;
    const gradNorm = this.o.maxGradNorm > 0 ? clipGradNorm(grads, this.o.maxGradNorm) : clipGradNorm(grads, Infinity);
    const stepIndex = this.optimizer.step;
    if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
      throw new NonFiniteError(stepIndex + 1, !Number.isFinite(loss) ? `loss is ${loss}` : `gradient norm is ${gradNorm}`);
    }
    const lr = learningRate(stepIndex, { lr: this.o.learningRate, warmupSteps: this.o.warmupSteps, totalSteps: this.o.totalSteps, schedule: this.o.schedule });
    this.optimizer.update(grads, lr);
    return { loss, gradNorm, lr, ...(this.o.device && this.o.device !== 'cpu' && { transfer: this.transfer.since(before) }) };
  }

  /** The current weights with Hugging Face names and layout (downloaded from the device first when they live there). */
  async hfWeights(): Promise<Map<string, NamedTensor>> {
    if (this.device) await this.device.pull(false);
    const out = new Map(this.base);
    for (const n of this.transposedBase) out.set(n, transpose2d(this.base.get(n)!));
    for (const s of this.slots) out.set(s.name, s.transposed ? transpose2d({ shape: s.shape, data: s.data }) : { shape: [...s.shape], data: s.data });
    return out;
  }

  /**
   * An Encoder over the current weights, fed to its graph zero-copy (no second copy of the
   * model, as evaluating during training of bge-m3 needs); close it after use.
   * @example
   *   const encoder = await trainer.encoder(modelDir);
   *   try { await evaluateSet({ model: encoder }, set, [10]); } finally { await encoder.close(); }
   */
  async encoder(dir: string): Promise<Encoder> {
    if (!this.tokenizer) throw new Error('a data-parallel worker has no encoder');
    const weights = new Map(this.base);
    for (const s of this.slots) weights.set(s.name, { shape: s.shape, data: s.data });
    const pooling = { pooling: this.o.pooling, normalize: this.o.normalize };
    const built = embedGraph(this.config, weights, pooling, 'graph');
    const session = await Session.create(built.graph, { threads: this.o.threads, device: this.o.device });
    // Data parallel: the weights lie in shared memory, which onnxruntime-node does not take as a
    // tensor; the encoder gets a plain copy.
    const all = this.group ? Object.fromEntries([...this.slots, ...this.frozen].map((s) => [s.name, floatTensor((s.tensor.data as Float32Array).slice(), [...s.tensor.dims])])) : this.weightFeed();
    // Only what the dense graph reads (bge-m3's heads are trained, not used here).
    const feed = Object.fromEntries(Object.entries(all).filter(([n]) => session.inputNames.includes(n)));
    return Encoder.fromSession(dir, this.config, this.tokenizer, session, { ...pooling, feed, output: 'embedding' });
  }

  /** What a checkpoint stores: trained weights (graph layout), AdamW moments, the optimizer step (downloaded once from a device). */
  async saveState(): Promise<{ weights: Map<string, NamedTensor>; moments: Map<string, NamedTensor>; optimizerStep: number; transposed: string[] }> {
    const { m, v } = this.device ? await this.device.pull() : this.optimizer;
    const weights = new Map<string, NamedTensor>();
    const moments = new Map<string, NamedTensor>();
    this.slots.forEach((s, i) => {
      weights.set(s.name, { shape: s.shape, data: s.data });
      moments.set(`m.${s.name}`, { shape: s.shape, data: m[i]! });
      moments.set(`v.${s.name}`, { shape: s.shape, data: v[i]! });
    });
    return { weights, moments, optimizerStep: this.optimizer.step, transposed: this.slots.filter((s) => s.transposed).map((s) => s.name) };
  }

  /**
   * Restores a checkpoint: `fill` reads weights and moments into the buffers it is given (by the
   * names saveState gives them); on a device they are then uploaded once.
   */
  async restoreState(fill: (buffers: { weights: Map<string, Float32Array>; moments: Map<string, Float32Array> }) => void, optimizerStep: number): Promise<void> {
    const fresh = () => this.slots.map((s) => new Float32Array(s.data.length));
    const [m, v] = this.device ? [fresh(), fresh()] : [this.optimizer.m, this.optimizer.v];
    const moments = new Map<string, Float32Array>();
    this.slots.forEach((s, i) => moments.set(`m.${s.name}`, m[i]!).set(`v.${s.name}`, v[i]!));
    fill({ weights: new Map(this.slots.map((s) => [s.name, s.data])), moments });
    if (this.device) await this.device.push(m, v);
    this.optimizer.step = optimizerStep;
  }

  /**
   * A trainer for `model` — a folder, an alias (`use-lite`) or a Hub id — with every setting
   * left out defaulted as the train config defaults it (learning rate 1e-5, temperature 0.02,
   * the model's saved pooling and prompts, …). The pieces the `train` job uses, for a custom loop.
   * @example
   *   await using trainer = await Trainer.create('use-lite', { learningRate: 2e-5, totalSteps: 30, temperature: 0.05 });
   *   for (let i = 0; i < 30; i++) await trainer.step([{ query: 'what is lift?', passages: ['Lift is the force …', 'Drag is …'] }]);
   *   console.log((await trainer.evaluate('data/cranfield')).metrics['ndcg@10']);
   *   await trainer.save('runs/mine/checkpoint'); // restore() reads it back
   *   await trainer.export('runs/mine/model');     // loads in embedtune, sentence-transformers, transformers.js
   */
  static async create(model: string, settings: TrainerSettings = {}): Promise<Trainer> {
    const { trainer, source } = await createTrainer(Trainer.fromWeights, model, settings);
    trainer.source = source;
    return trainer;
  }

  /** What Trainer.create loaded (evaluate, export and the train job need the model folder). */
  source?: TrainerSource;

  private from(what: string): TrainerSource {
    if (!this.source) throw new Error(`trainer.${what}: this trainer was built from weights; give it a source ({ dir, templates }) or use Trainer.create`);
    return this.source;
  }

  /** Hit rate, MRR, NDCG, … at `ks` of the current weights on a retrieval set, a BEIR folder or a query–positive JSONL. */
  evaluate(set: RetrievalSet | string, ks: number[] = [1, 3, 5, 10]): Promise<EvaluationResult> {
    return evaluateTrainer(this, this.from('evaluate'), set, ks);
  }

  /** Writes weights and AdamW moments as a checkpoint folder `dir` (whole, or not at all). */
  save(dir: string): Promise<string> {
    return saveTrainer(this, dir);
  }

  /** Reads back a folder written by save() (or a train run's checkpoint-N). */
  restore(dir: string): Promise<void> {
    return restoreTrainer(this, dir);
  }

  /** Writes the current weights as a model folder (Hugging Face + sentence-transformers + ONNX). */
  export(dir: string): Promise<void> {
    return exportTrainer(this, this.from('export'), dir);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Releases every session, worker thread and device buffer (gradients first: their session made them). */
  async close(): Promise<void> {
    for (const g of this.deviceGrads) g.dispose();
    this.deviceGrads = [];
    await this.owned.dispose();
  }

  /** Stops profiling every session; ORT writes `<profilePrefix>-<graph name>_<date>.json` for each. */
  endProfiling(): void {
    const { layerwise, loss: _loss, ...plain } = this.sessions;
    for (const s of [...Object.values(plain), ...(layerwise ? layerwiseSessionList(layerwise) : [])]) s?.endProfiling();
    this.device?.endProfiling();
  }
}

export class NonFiniteError extends Error {
  constructor(
    readonly step: number,
    what: string,
  ) {
    super(`step ${step}: ${what}; stopping (the weights were not updated)`);
  }
}
