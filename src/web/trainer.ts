/**
 * Contrastive fine-tuning in a browser tab: the Node trainer's fused step — the same step graph
 * (InfoNCE and every weight's gradient in one run, training/graphs.ts), the same sampler,
 * clipping, schedule and AdamW (training/optimizer.ts) — on onnxruntime-web. As there, lookup
 * tables get row gradients, summed here: no vocabulary-sized gradient in the tab's memory.
 * Texts are single segments (ModelConfig.singleSegment): BERT's token type 0 row is added, not
 * looked up — the same numbers, and onnxruntime-web's WebGPU backend computes the step graph
 * with that lookup wrongly (its loss, not just its gradient; found by bisecting the graph).
 */
import type * as ort from 'onnxruntime-web';
import { padBatch } from '../models/batch.js';
import { transpose2d } from '../models/params.js';
import type { NamedTensor } from '../models/safetensors-format.js';
import { applyTemplate } from '../models/template.js';
import { floatTensor, int64Tensor } from '../runtime/tensor.js';
import type { Graph } from '../graph/graph.js';
import { embedGraph, GRAD_PREFIX, lossGradGraph, stepGraph, vjpGraph } from '../training/graphs.js';
import { AdamW, clipGradNorm, decays, type Grad, learningRate, RowGradients, type Schedule } from '../training/optimizer.js';
import type { TrainExample } from '../training/sampler.js';
import type { WebModel } from './model.js';
import { type WebDevice, type WebFeed, WebSession } from './session.js';

export interface WebTrainOptions {
  temperature?: number;
  learningRate?: number;
  weightDecay?: number;
  warmupSteps?: number;
  /** Steps the schedule spans (train() sets it from the data). */
  totalSteps?: number;
  schedule?: Schedule;
  maxGradNorm?: number;
  maxQueryLength?: number;
  maxPassageLength?: number;
  /**
   * GradCache: run the encoder on at most this many texts at a time (embeddings first, then each
   * slice's backward), so a tab's memory bounds the slice, not the batch; the loss still sees the
   * whole batch. Unset: one fused step.
   */
  miniBatchSize?: number;
  queryTemplate?: string;
  passageTemplate?: string;
  device?: WebDevice;
}

interface Slot {
  name: string;
  data: Float32Array;
  shape: number[];
  transposed: boolean;
  tensor: ort.Tensor;
  /** A lookup table's row-gradient outputs (one per lookup); none for a dense gradient. */
  parts: { grad: string; rows: string }[];
}

export class WebTrainer {
  private constructor(
    readonly model: WebModel,
    private readonly o: Required<Omit<WebTrainOptions, 'queryTemplate' | 'passageTemplate' | 'miniBatchSize'>> & Pick<WebTrainOptions, 'queryTemplate' | 'passageTemplate' | 'miniBatchSize'>,
    private readonly slots: Slot[],
    private readonly optimizer: AdamW,
    /** The fused step, or GradCache's loss and per-slice backward. */
    private readonly sessions: { step: WebSession } | { loss: WebSession; vjp: WebSession },
    private readonly embedSession: WebSession,
  ) {}

  /**
   * A trainer over `model`'s weights (taken over: linear weights are transposed in place).
   * @example
   *   const trainer = await WebTrainer.create(model, { learningRate: 2e-5, totalSteps: 100 });
   *   const { loss } = await trainer.step(batch);
   */
  static async create(model: WebModel, options: WebTrainOptions = {}): Promise<WebTrainer> {
    const o = {
      temperature: 0.02, learningRate: 2e-5, weightDecay: 0.01, warmupSteps: 0, totalSteps: 1, schedule: 'linear' as Schedule, maxGradNorm: 1,
      maxQueryLength: Math.min(64, model.maxLength), maxPassageLength: Math.min(256, model.maxLength), device: 'wasm' as WebDevice, ...options,
    };
    const pooling = { pooling: model.pooling, normalize: model.normalize };
    const config = { ...model.config, singleSegment: true };
    const embed = embedGraph(config, model.weights, pooling, 'adopt'); // weights now in graph layout
    const grad = { sparse: true, frozen: new Set<string>() };
    const built = o.miniBatchSize ? vjpGraph(config, model.weights, pooling, grad, 'graph') : stepGraph(config, model.weights, pooling, { temperature: o.temperature }, grad, 'graph');
    const slot = (name: string, parts: Slot['parts']): Slot => {
      const u = built.params.used.get(name)!;
      return { name, data: u.data, shape: u.shape, transposed: u.transposed, tensor: floatTensor(u.data, u.shape) as unknown as ort.Tensor, parts };
    };
    const slots = [...built.names.map((n) => slot(n, [])), ...built.sparse.map((t) => slot(t.name, t.parts))];
    const optimizer = new AdamW(slots.map((s) => ({ name: s.name, data: s.data, decay: decays(s.name) })), { weightDecay: o.weightDecay });
    const opened: WebSession[] = [];
    const open = async (g: Graph) => {
      const s = await WebSession.create(g, o.device);
      opened.push(s);
      return s;
    };
    try {
      const sessions = o.miniBatchSize
        ? { loss: await open(lossGradGraph(config.hiddenSize, { temperature: o.temperature, normalized: model.normalize })), vjp: await open(built.graph) }
        : { step: await open(built.graph) };
      return new WebTrainer(model, o, slots, optimizer, sessions, await open(embed.graph));
    } catch (e) {
      for (const s of opened) await s.release();
      throw e;
    }
  }

  get stepCount(): number {
    return this.optimizer.step;
  }

  private weightFeed(): WebFeed {
    return Object.fromEntries(this.slots.map((s) => [s.name, s.tensor]));
  }

  private tokens(texts: readonly string[], template: string | undefined, maxLength: number): number[][] {
    return texts.map((t) => this.model.tokenizer.encode(applyTemplate(t, template), maxLength));
  }

  private batchFeed(ids: number[][], prefix: string, session: WebSession): WebFeed {
    const withTypes = session.inputNames.includes(`${prefix}token_type_ids`);
    return padBatch(ids, this.model.config.padTokenId, prefix, withTypes) as unknown as WebFeed;
  }

  /** One optimizer step on `batch` (each example: a query, its positive, then its negatives). */
  async step(batch: TrainExample[]): Promise<{ loss: number; gradNorm: number; lr: number }> {
    const group = batch[0]!.passages.length;
    const q = this.tokens(batch.map((e) => e.query), this.o.queryTemplate, this.o.maxQueryLength);
    const p = this.tokens(batch.flatMap((e) => e.passages), this.o.passageTemplate, this.o.maxPassageLength);
    const labels = int64Tensor(BigInt64Array.from(batch.map((_, i) => BigInt(i * group))), [batch.length, 1]) as unknown as ort.Tensor;
    const dense = this.slots.map((slot) => (slot.parts.length ? null : new Float32Array(slot.data.length)));
    const rows = this.slots.map((slot) => (slot.parts.length ? new RowGradients(slot.shape[1]!) : null));
    const add = (out: Record<string, ort.Tensor>) =>
      this.slots.forEach((slot, i) => {
        if (dense[i]) addInto(dense[i]!, out[GRAD_PREFIX + slot.name]!.data as Float32Array);
        for (const part of slot.parts) rows[i]!.add(out[part.rows]!.data as BigInt64Array, out[part.grad]!.data as Float32Array);
      });
    let loss: number;
    if ('step' in this.sessions) {
      const s = this.sessions.step;
      const out = await s.run({ ...this.weightFeed(), ...this.batchFeed(q, 'q_', s), ...this.batchFeed(p, 'p_', s), labels });
      add(out);
      loss = (out.loss!.data as Float32Array)[0]!;
    } else loss = await this.gradCache(q, p, labels, add);
    const grads = this.slots.map((_, i): Grad => dense[i] ?? rows[i]!.finish());
    const gradNorm = clipGradNorm(grads, this.o.maxGradNorm > 0 ? this.o.maxGradNorm : Infinity);
    if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) throw new Error(`step ${this.optimizer.step + 1}: loss ${loss}, gradient norm ${gradNorm}: not finite`);
    const lr = learningRate(this.optimizer.step, { lr: this.o.learningRate, warmupSteps: this.o.warmupSteps, totalSteps: this.o.totalSteps, schedule: this.o.schedule });
    this.optimizer.update(grads, lr);
    return { loss, gradNorm, lr };
  }

  /** GradCache: embeddings slice by slice without gradients, the loss on the whole batch, then each slice's backward seeded by its rows of d loss / d embedding. */
  private async gradCache(q: number[][], p: number[][], labels: ort.Tensor, add: (out: Record<string, ort.Tensor>) => void): Promise<number> {
    const { loss, vjp } = this.sessions as { loss: WebSession; vjp: WebSession };
    const size = this.o.miniBatchSize!;
    const dim = this.model.config.hiddenSize;
    const slices = (ids: number[][]) => Array.from({ length: Math.ceil(ids.length / size) }, (_, i) => ids.slice(i * size, (i + 1) * size));
    const embed = async (ids: number[][]) => {
      const data = new Float32Array(ids.length * dim);
      let at = 0;
      for (const s of slices(ids)) {
        const out = await this.embedSession.run({ ...this.weightFeed(), ...this.batchFeed(s, '', this.embedSession) });
        data.set(out.embedding!.data as Float32Array, at);
        at += s.length * dim;
      }
      return data;
    };
    const [qe, pe] = [await embed(q), await embed(p)];
    const lg = await loss.run({ queries: floatTensor(qe, [q.length, dim]) as unknown as ort.Tensor, passages: floatTensor(pe, [p.length, dim]) as unknown as ort.Tensor, labels });
    for (const [ids, seed] of [[q, lg[`${GRAD_PREFIX}queries`]!.data as Float32Array], [p, lg[`${GRAD_PREFIX}passages`]!.data as Float32Array]] as const) {
      let at = 0;
      for (const s of slices(ids)) {
        const grad = floatTensor(seed.slice(at, at + s.length * dim), [s.length, dim]) as unknown as ort.Tensor;
        add(await vjp.run({ ...this.weightFeed(), ...this.batchFeed(s, '', vjp), grad_embedding: grad }));
        at += s.length * dim;
      }
    }
    return (lg.loss!.data as Float32Array)[0]!;
  }

  /**
   * Sentence embeddings with the current weights, `dim` floats per text, row-major.
   * @example const { data, dim } = await trainer.encode(['what is lift?'], 'query');
   */
  async encode(texts: readonly string[], role: 'query' | 'passage' = 'passage', batchSize = 32): Promise<{ data: Float32Array; dim: number }> {
    const dim = this.model.config.hiddenSize;
    const data = new Float32Array(texts.length * dim);
    const [template, max] = role === 'query' ? [this.o.queryTemplate, this.o.maxQueryLength] : [this.o.passageTemplate, this.o.maxPassageLength];
    for (let i = 0; i < texts.length; i += batchSize) {
      const ids = this.tokens(texts.slice(i, i + batchSize), template, max);
      const out = await this.embedSession.run({ ...this.weightFeed(), ...this.batchFeed(ids, '', this.embedSession) });
      data.set(out.embedding!.data as Float32Array, i * dim);
    }
    return { data, dim };
  }

  /** The current weights with Hugging Face names and layout (what an export writes). */
  hfWeights(): Map<string, NamedTensor> {
    const out = new Map(this.model.weights); // tensors the graph does not read (a pooler), as loaded
    for (const s of this.slots) out.set(s.name, s.transposed ? transpose2d({ shape: s.shape, data: s.data }) : { shape: [...s.shape], data: s.data });
    return out;
  }

  async close(): Promise<void> {
    for (const s of [...Object.values(this.sessions), this.embedSession]) await s.release();
  }
}

function addInto(acc: Float32Array, x: Float32Array): void {
  for (let i = 0; i < acc.length; i++) acc[i]! += x[i]!;
}
