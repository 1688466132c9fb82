/**
 * Cross-encoders (rerankers): a (query, passage) pair goes through the model together and one
 * logit comes out. BERT and XLM-RoBERTa `*ForSequenceClassification` as Hugging Face saves them
 * — the bge-reranker-base / bge-reranker-v2-m3 layout:
 *   XLM-R: logits = out_proj(tanh(dense(h[<s>])))          (classifier.dense, classifier.out_proj)
 *   BERT:  logits = classifier(tanh(pooler.dense(h[CLS])))  (bert.pooler.dense, classifier)
 * Pairs use the tokenizer's pair template with token type ids; see TextTokenizer.encodePair.
 */
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { Graph, type Value } from '../graph/graph.js';
import * as op from '../graph/ops.js';
import { noProgress, type Reporter } from '../progress.js';
import { Session } from '../runtime/session.js';
import { padBatch } from './batch.js';
import { type ModelConfig, readConfig } from './config.js';
import { ARCHITECTURES, loadWeights, positionLimit, requireVocabulary } from './encoder.js';
import { withWeightFiles } from './weights.js';
import { dense, Params } from './params.js';
import { pool } from './pooling.js';
import { resolveModel } from './resolve.js';
import { loadTextTokenizer, type PairTruncation, type TextTokenizer } from './tokenizer.js';
import { Member } from '../util/worker-rpc.js';

export interface CrossEncoderOptions {
  threads?: number;
  /** Where the session runs (see runtime/device.ts). */
  device?: string;
  /** Write onnxruntime's per-node profile (JSON, placement included) with this file prefix. */
  profilePrefix?: string;
  /** Which logit is the score when the model has several labels (required then). */
  label?: number;
  /** Hub revision when the model is a Hub id. */
  revision?: string;
}

export interface ScoreOptions {
  /** Pairs per session run (default 32). */
  batchSize?: number;
  /** Token limit per pair, special tokens included (default: the model's). */
  maxLength?: number;
  /** How a pair past `maxLength` is cut (default `longest_first`, as CrossEncoder); see PairTruncation. */
  truncation?: PairTruncation;
  /** σ(logit) instead of the logit (sentence-transformers' CrossEncoder default for one label). */
  sigmoid?: boolean;
  label?: string;
  /** Shows progress (a run's `run.progress`); default none. */
  progress?: Reporter;
  /** Called with each batch's pair count (how a worker thread reports progress). */
  onTick?: (pairs: number) => void;
}

/** What scoring needs of a reranker: a CrossEncoder, or one in a worker thread (RerankerThread). */
export interface Reranker {
  readonly dir: string;
  readonly maxLength: number;
  score(pairs: readonly (readonly [string, string])[], o?: ScoreOptions): Promise<Float32Array>;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** The classification head on the first token's state: [batch, hidden] → [batch, labels]. */
function classifierHead(first: Value, p: Params, c: ModelConfig, labels: number): Value {
  const h = c.hiddenSize;
  if (c.architecture === 'xlm-roberta') {
    return dense(op.tanh(dense(first, p.linear('classifier.dense', h, h))), p.linear('classifier.out_proj', h, labels));
  }
  return dense(op.tanh(dense(first, p.linear('pooler.dense', h, h))), p.linear('classifier', h, labels));
}

/**
 * Labels of a sequence-classification config, checked; names the file when it is not one.
 * @example classifierLabels(dir, readConfig(dir)); // 1 for bge-reranker-base
 */
export function classifierLabels(dir: string, c: ModelConfig): number {
  const path = join(dir, 'config.json');
  const architectures = (c.raw.architectures as string[] | undefined) ?? [];
  if (!architectures.some((a) => /ForSequenceClassification$/.test(a))) {
    throw new Error(`${path}: not a sequence-classification model (architectures: ${architectures.join(', ') || 'none'}); a reranker is e.g. XLMRobertaForSequenceClassification`);
  }
  if (c.architecture !== 'bert' && c.architecture !== 'xlm-roberta') {
    throw new Error(`${path}: cross-encoders are supported for bert and xlm-roberta, not ${c.architecture}`);
  }
  const id2label = c.raw.id2label as Record<string, unknown> | undefined;
  return Number(c.raw.num_labels ?? (id2label ? Object.keys(id2label).length : 2));
}

/**
 * @example
 *   const reranker = await CrossEncoder.load('models/bge-reranker-base');
 *   const scores = await reranker.score([['what is lift?', 'Lift is the force …']]);
 */
export class CrossEncoder implements Reranker {
  /** Pairs run through the model so far. */
  scoredCount = 0;

  private constructor(
    readonly dir: string,
    readonly config: ModelConfig,
    readonly tokenizer: TextTokenizer,
    private readonly session: Session,
    /** Longest pair the model takes, special tokens included. */
    readonly maxLength: number,
  ) {}

  static async load(nameOrDir: string, o: CrossEncoderOptions = {}): Promise<CrossEncoder> {
    const dir = await resolveModel(nameOrDir, { revision: o.revision });
    if (!existsSync(join(dir, 'config.json'))) throw new Error(`${dir}: no config.json`);
    const config = readConfig(dir);
    const labels = classifierLabels(dir, config);
    if (labels > 1 && o.label === undefined) throw new Error(`${join(dir, 'config.json')}: the model has ${labels} labels; say which logit is the score (label 0..${labels - 1})`);
    const label = o.label ?? 0;
    if (!Number.isInteger(label) || label < 0 || label >= labels) throw new Error(`label ${label}: the model has labels 0..${labels - 1}`);
    const tokenizer = loadTextTokenizer(dir);
    requireVocabulary(config, tokenizer, dir);
    const graph = await withWeightFiles(dir, async () => {
      const graph = new Graph('cross-encoder');
      const params = new Params(graph, loadWeights(dir), 'initializer', 'adopt', config.loraScale);
      const arch = ARCHITECTURES[config.architecture];
      const inputs = arch.inputs(graph);
      const hidden = arch.build(inputs, params, config);
      const logits = classifierHead(pool(hidden, inputs.attentionMask, { pooling: 'cls', normalize: false }), params, config, labels);
      graph.output(op.squeeze(op.slice(logits, [label], [label + 1], [1]), [1]), 'score', ['batch']);
      return graph;
    });
    const session = await Session.create(graph, { threads: o.threads, device: o.device, profilePrefix: o.profilePrefix });
    return new CrossEncoder(dir, config, tokenizer, session, Math.min(tokenizer.modelMaxLength, positionLimit(config)));
  }

  /** The logit (or σ) of each (query, passage) pair; pairs sorted by length into batches. */
  async score(pairs: readonly (readonly [string, string])[], o: ScoreOptions = {}): Promise<Float32Array> {
    const maxLength = Math.min(o.maxLength ?? this.maxLength, this.maxLength);
    const encoded = pairs.map(([a, b]) => this.tokenizer.encodePair(a, b, maxLength, o.truncation));
    const order = encoded.map((_, i) => i).sort((a, b) => encoded[b]!.ids.length - encoded[a]!.ids.length || a - b);
    const out = new Float32Array(pairs.length);
    const size = o.batchSize ?? 32;
    const bar = (o.progress ?? noProgress)(o.label ?? 'score', pairs.length);
    const withTypes = this.session.inputNames.includes('token_type_ids');
    for (let start = 0; start < order.length; start += size) {
      const batch = order.slice(start, start + size).map((i) => encoded[i]!);
      const feed = padBatch(batch.map((e) => e.ids), this.config.padTokenId, '', withTypes, batch.map((e) => e.typeIds));
      const scores = (await this.session.run(feed)).score!.data as Float32Array;
      order.slice(start, start + size).forEach((i, r) => (out[i] = o.sigmoid ? 1 / (1 + Math.exp(-scores[r]!)) : scores[r]!));
      bar.tick(batch.length);
      o.onTick?.(batch.length);
      this.scoredCount += batch.length;
    }
    bar.done();
    return out;
  }

  async close(): Promise<void> {
    await this.session.release();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** What a reranker worker is asked (reranker-worker.ts answers). */
export type RerankerProtocol = {
  load: { request: { nameOrDir: string; options: CrossEncoderOptions }; reply: { dir: string; maxLength: number } };
  score: { request: { pairs: readonly (readonly [string, string])[]; options: Omit<ScoreOptions, 'progress' | 'onTick'> }; reply: { scores: Float32Array } };
  close: { request: object; reply: object };
};

/**
 * A CrossEncoder in a worker thread: the same scores, with the main thread left free for the
 * progress bar and Ctrl-C while a batch runs (what the jobs use).
 * @example
 *   const reranker = await RerankerThread.load('models/bge-reranker-base');
 *   const scores = await reranker.score([['what is lift?', 'Lift is the force …']]);
 *   await reranker.close();
 */
export class RerankerThread implements Reranker {
  private constructor(
    private readonly member: Member<RerankerProtocol>,
    readonly dir: string,
    readonly maxLength: number,
  ) {}

  static async load(nameOrDir: string, o: CrossEncoderOptions = {}): Promise<RerankerThread> {
    const member = new Member<RerankerProtocol>(new Worker(new URL('./reranker-worker.js', import.meta.url)), 'a reranker worker');
    try {
      const r = await member.ask('load', { nameOrDir, options: { threads: o.threads, device: o.device, label: o.label, revision: o.revision } });
      return new RerankerThread(member, r.dir, r.maxLength);
    } catch (e) {
      await member.worker.terminate();
      throw e;
    }
  }

  async score(pairs: readonly (readonly [string, string])[], o: ScoreOptions = {}): Promise<Float32Array> {
    const bar = (o.progress ?? noProgress)(o.label ?? 'score', pairs.length);
    const { onTick, progress: _progress, ...options } = o;
    const r = await this.member.ask('score', { pairs, options }, [], (n) => {
      bar.tick(n);
      onTick?.(n);
    });
    bar.done();
    return r.scores;
  }

  async close(): Promise<void> {
    await this.member.ask('close', {}).catch(() => undefined);
    await this.member.worker.terminate();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
