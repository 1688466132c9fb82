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
import { type Feed, floatTensor, int64Tensor, Session } from '../runtime/session.js';
import type { DistillOptions } from '../losses/distill.js';
import { embedGraph, GRAD_PREFIX, lossGradGraph, stepGraph, type TrainGraph, vjpGraph } from './graphs.js';
import { layerwiseLoss, type LayerwiseSessions, layerwiseSessions, type LayerwiseState, releaseLayerwise } from './layerwise.js';
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
  /** Distill from each example's `teacher` scores (a reranker's) next to InfoNCE. */
  distill?: DistillOptions;
  /** Where the sessions run (see runtime/device.ts). */
  device?: string;
}

/** The embedding tables `freezeEmbeddings` keeps fixed. */
export const EMBEDDING_TABLE = /(^|\.)(word_embeddings|position_embeddings|token_type_embeddings|embed_tokens)\.weight$|^embeddings\.weight$/;

export interface StepResult {
  loss: number;
  gradNorm: number;
  lr: number;
}

interface Slot extends ParamSlot {
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
  lossGrad?: Session;
  layerwise?: LayerwiseSessions;
}

export class Trainer {
  private readonly tokenCache = new Map<string, number[]>();
  /** This step's gradients, one per slot (set by computeGradients). */
  grads: Grad[] = [];

  private constructor(
    readonly config: ModelConfig,
    private readonly tokenizer: Tokenizer,
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
  ) {}

  /**
   * Builds the training graphs and sessions. The trainer takes `weights` over: tensors it trains
   * are updated in place (no copy is kept; linear weights are held transposed, as [in, out]).
   * @example
   *   const trainer = await Trainer.create(config, tokenizer, loadWeights(dir), { ...options });
   *   const { loss } = await trainer.step(batch);
   */
  static async create(config: ModelConfig, tokenizer: Tokenizer, weights: Map<string, NamedTensor>, o: TrainerOptions): Promise<Trainer> {
    const pooling = { pooling: o.pooling, normalize: o.normalize };
    const loss = { temperature: o.temperature, matryoshkaDims: o.matryoshkaDims, matryoshkaWeights: o.matryoshkaWeights, distill: o.distill };
    const runtime = { threads: o.threads, memPattern: false, profilePrefix: o.profilePrefix, device: o.device };
    const fixed = (n: string) => (o.freezeEmbeddings && EMBEDDING_TABLE.test(n)) || (o.trainOnly !== undefined && !o.trainOnly.test(n));
    const grad = { sparse: o.sparseEmbeddings ?? true, frozen: new Set([...weights.keys()].filter(fixed)) };
    const sessions: Sessions = {};
    // Linear weights are transposed in place, once: from here on `weights` is in graph layout.
    const whole = embedGraph(config, weights, pooling, 'adopt');
    let built: TrainGraph;
    if (o.recompute) {
      const lw = (sessions.layerwise = await layerwiseSessions(config, weights, pooling, grad, runtime));
      sessions.lossGrad = await Session.create(lossGradGraph(config.hiddenSize, { ...loss, normalized: o.normalize }), runtime);
      const sparse = new Set(lw.embedSparse.map((t) => t.name));
      built = { ...whole, names: whole.names.filter((n) => !grad.frozen.has(n) && !sparse.has(n)), sparse: lw.embedSparse, frozen: whole.names.filter((n) => grad.frozen.has(n)) };
    } else if (o.miniBatchSize) {
      built = vjpGraph(config, weights, pooling, grad, 'graph');
      sessions.vjp = await Session.create(built.graph, runtime);
      sessions.embed = await Session.create(whole.graph, runtime);
      sessions.lossGrad = await Session.create(lossGradGraph(config.hiddenSize, { ...loss, normalized: o.normalize }), runtime);
    } else {
      built = stepGraph(config, weights, pooling, loss, grad, 'graph');
      sessions.step = await Session.create(built.graph, runtime);
    }
    const slot = (name: string, parts: Slot['parts']): Slot => {
      const u = built.params.used.get(name)!;
      const grad = parts.length ? null : new Float32Array(u.data.length);
      return { name, data: u.data, decay: decays(name), shape: u.shape, transposed: u.transposed, tensor: floatTensor(u.data, u.shape), grad, gradTensor: grad && floatTensor(grad, u.shape), parts };
    };
    const slots = [...built.names.map((n) => slot(n, [])), ...built.sparse.map((s) => slot(s.name, s.parts))];
    const frozen = built.frozen.map((name) => {
      const u = built.params.used.get(name)!;
      return { name, tensor: floatTensor(u.data, u.shape) };
    });
    const optimizer = new AdamW(slots, { weightDecay: o.weightDecay, beta1: o.beta1, beta2: o.beta2, eps: o.epsilon });
    const withTypes = (sessions.step ?? sessions.vjp ?? sessions.layerwise!.embed).inputNames.some((n) => n.endsWith('token_type_ids'));
    const trained = new Set(slots.map((s) => s.name));
    const base = new Map([...weights].filter(([n]) => !trained.has(n)));
    const transposedBase = new Set(built.frozen.filter((n) => built.params.used.get(n)?.transposed));
    return new Trainer(config, tokenizer, o, slots, frozen, optimizer, sessions, withTypes, base, transposedBase);
  }

  private tokenize(text: string, template: string | undefined, maxLength: number): number[] {
    const key = `${maxLength}\u0000${template ?? ''}\u0000${text}`;
    let ids = this.tokenCache.get(key);
    if (!ids) {
      ids = this.tokenizer.encode(applyTemplate(text, template), maxLength);
      if (this.tokenCache.size < 1_000_000) this.tokenCache.set(key, ids);
    }
    return ids;
  }

  private weightFeed(): Record<string, ort.Tensor> {
    return Object.fromEntries([...this.slots, ...this.frozen].map((s) => [s.name, s.tensor]));
  }

  /** Dense gradients into their buffers (given tensors), row gradients and their ids allocated by ORT (null). */
  private gradFetches(dense: (s: Slot, i: number) => ort.Tensor): Record<string, ort.Tensor | null> {
    const out: Record<string, ort.Tensor | null> = {};
    this.slots.forEach((s, i) => {
      if (s.grad) out[GRAD_PREFIX + s.name] = dense(s, i);
      for (const p of s.parts) [out[p.grad], out[p.rows]] = [null, null];
    });
    return out;
  }

  /** Adds the row gradients of one run's outputs into per-slot accumulators. */
  private addRows(out: Record<string, ort.Tensor>, acc: (RowGradients | null)[]): void {
    this.slots.forEach((s, i) => {
      for (const p of s.parts) acc[i]!.add(out[p.rows].data as BigInt64Array, out[p.grad].data as Float32Array);
    });
  }

  private rowAccumulators(): (RowGradients | null)[] {
    return this.slots.map((s) => (s.grad ? null : new RowGradients(s.shape[1])));
  }

  /** Computes loss and gradients (into the slots' grad buffers) for one batch. */
  async computeGradients(batch: TrainExample[]): Promise<number> {
    const q = batch.map((e) => this.tokenize(e.query, this.o.queryTemplate, this.o.maxQueryLength));
    const p = batch.flatMap((e) => e.passages.map((t) => this.tokenize(t, this.o.passageTemplate, this.o.maxPassageLength)));
    const group = batch[0].passages.length;
    const labels = int64Tensor(BigInt64Array.from(batch.map((_, i) => BigInt(i * group))), [batch.length, 1]);
    const lossFeed: Feed = { labels, ...(this.o.distill && teacherFeed(batch, group)) };
    const pad = this.config.padTokenId;
    if (this.sessions.step) {
      const out = await this.sessions.step.run(
        { ...this.weightFeed(), ...padBatch(q, pad, 'q_', this.withTypes), ...padBatch(p, pad, 'p_', this.withTypes), ...lossFeed },
        { loss: null, ...this.gradFetches((s) => s.gradTensor!) },
      );
      const rows = this.rowAccumulators();
      this.addRows(out, rows);
      this.grads = this.slots.map((s, i) => s.grad ?? rows[i]!.finish());
      return (out.loss.data as Float32Array)[0];
    }
    if (this.sessions.layerwise) return this.layerwise(q, p, lossFeed);
    return this.gradCache(q, p, lossFeed);
  }

  /** recompute: each slice (GradCache's mini-batches, or the whole tower) runs layer by layer. */
  private async layerwise(q: number[][], p: number[][], lossFeed: Feed): Promise<number> {
    const rows = this.rowAccumulators();
    const index = new Map(this.slots.map((s, i) => [s.name, i]));
    const st: LayerwiseState = {
      tensors: new Map([...this.slots, ...this.frozen].map((s) => [s.name, s.tensor])),
      grads: new Map(this.slots.filter((s) => s.gradTensor).map((s) => [s.name, s.gradTensor!])),
      addRows: (name, ids, grads) => rows[index.get(name)!]!.add(ids, grads),
    };
    const size = this.o.miniBatchSize ?? Math.max(q.length, p.length);
    const slice = (ids: number[][]) => Array.from({ length: Math.ceil(ids.length / size) }, (_, i) => padBatch(ids.slice(i * size, (i + 1) * size), this.config.padTokenId, '', this.withTypes));
    const loss = await layerwiseLoss(this.sessions.layerwise!, this.sessions.lossGrad!, st, [slice(q), slice(p)], lossFeed, this.config.numLayers);
    this.grads = this.slots.map((s, i) => s.grad ?? rows[i]!.finish());
    return loss;
  }

  /** GradCache: embed without gradients, take the loss on the full batch, then backpropagate slice by slice. */
  private async gradCache(q: number[][], p: number[][], lossFeed: Feed): Promise<number> {
    const size = this.o.miniBatchSize!;
    const { embed, vjp, lossGrad } = this.sessions as Required<typeof this.sessions>;
    const pad = this.config.padTokenId;
    const dim = this.config.hiddenSize;
    const slices = (ids: number[][]) => Array.from({ length: Math.ceil(ids.length / size) }, (_, i) => ids.slice(i * size, (i + 1) * size));
    const embedAll = async (ids: number[][]) => {
      const out = new Float32Array(ids.length * dim);
      let row = 0;
      for (const s of slices(ids)) {
        const r = await embed.run({ ...this.weightFeed(), ...padBatch(s, pad, '', this.withTypes) });
        out.set(r.embedding.data as Float32Array, row * dim);
        row += s.length;
      }
      return out;
    };
    const qe = await embedAll(q);
    const pe = await embedAll(p);
    const lg = await lossGrad.run({ queries: floatTensor(qe, [q.length, dim]), passages: floatTensor(pe, [p.length, dim]), ...lossFeed });
    const dq = lg[`${GRAD_PREFIX}queries`].data as Float32Array;
    const dp = lg[`${GRAD_PREFIX}passages`].data as Float32Array;
    this.slots.forEach((s) => s.grad?.fill(0));
    const partial = this.slots.map((s) => (s.grad ? new Float32Array(s.grad.length) : null));
    const fetches = this.gradFetches((s, i) => floatTensor(partial[i]!, s.shape));
    const rows = this.rowAccumulators();
    for (const [ids, grads] of [
      [q, dq],
      [p, dp],
    ] as const) {
      let row = 0;
      for (const s of slices(ids)) {
        const seed = floatTensor(grads.slice(row * dim, (row + s.length) * dim), [s.length, dim]);
        const out = await vjp.run({ ...this.weightFeed(), ...padBatch(s, pad, '', this.withTypes), grad_embedding: seed }, fetches);
        this.addRows(out, rows);
        this.slots.forEach((slot, i) => {
          const g = slot.grad;
          const d = partial[i];
          if (g && d) for (let j = 0; j < g.length; j++) g[j] += d[j];
        });
        row += s.length;
      }
    }
    this.grads = this.slots.map((s, i) => s.grad ?? rows[i]!.finish());
    return (lg.loss.data as Float32Array)[0];
  }

  /**
   * One optimizer step on `batch`. Throws (before touching the weights) when the loss or the
   * gradient is NaN or infinite.
   */
  async step(batch: TrainExample[]): Promise<StepResult> {
    const loss = await this.computeGradients(batch);
    const grads = this.grads;
    const gradNorm = this.o.maxGradNorm > 0 ? clipGradNorm(grads, this.o.maxGradNorm) : clipGradNorm(grads, Infinity);
    const stepIndex = this.optimizer.step;
    if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
      throw new NonFiniteError(stepIndex + 1, !Number.isFinite(loss) ? `loss is ${loss}` : `gradient norm is ${gradNorm}`);
    }
    const lr = learningRate(stepIndex, { lr: this.o.learningRate, warmupSteps: this.o.warmupSteps, totalSteps: this.o.totalSteps, schedule: this.o.schedule });
    this.optimizer.update(grads, lr);
    return { loss, gradNorm, lr };
  }

  /** The current weights with Hugging Face names and layout. */
  hfWeights(): Map<string, NamedTensor> {
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
    const weights = new Map(this.base);
    for (const s of this.slots) weights.set(s.name, { shape: s.shape, data: s.data });
    const pooling = { pooling: this.o.pooling, normalize: this.o.normalize };
    const built = embedGraph(this.config, weights, pooling, 'graph');
    const session = await Session.create(built.graph, { threads: this.o.threads, device: this.o.device });
    return Encoder.fromSession(dir, this.config, this.tokenizer, session, { ...pooling, feed: this.weightFeed(), output: 'embedding' });
  }

  /** What a checkpoint stores: trained weights (graph layout), AdamW moments, the optimizer step. */
  saveState(): { weights: Map<string, NamedTensor>; moments: Map<string, NamedTensor>; optimizerStep: number; transposed: string[] } {
    const weights = new Map<string, NamedTensor>();
    const moments = new Map<string, NamedTensor>();
    this.slots.forEach((s, i) => {
      weights.set(s.name, { shape: s.shape, data: s.data });
      moments.set(`m.${s.name}`, { shape: s.shape, data: this.optimizer.m[i] });
      moments.set(`v.${s.name}`, { shape: s.shape, data: this.optimizer.v[i] });
    });
    return { weights, moments, optimizerStep: this.optimizer.step, transposed: this.slots.filter((s) => s.transposed).map((s) => s.name) };
  }

  /** The buffers a checkpoint is read back into, by the names saveState gives them. */
  stateBuffers(): { weights: Map<string, Float32Array>; moments: Map<string, Float32Array> } {
    const moments = new Map<string, Float32Array>();
    this.slots.forEach((s, i) => moments.set(`m.${s.name}`, this.optimizer.m[i]).set(`v.${s.name}`, this.optimizer.v[i]));
    return { weights: new Map(this.slots.map((s) => [s.name, s.data])), moments };
  }

  async close(): Promise<void> {
    const { layerwise, ...plain } = this.sessions;
    for (const s of Object.values(plain)) await s?.release();
    if (layerwise) await releaseLayerwise(layerwise);
  }

  /** Stops profiling the step session; ORT writes `<profilePrefix>_<date>.json`. */
  endProfiling(): void {
    (this.sessions.step ?? this.sessions.vjp)?.endProfiling();
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
