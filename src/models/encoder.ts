/**
 * `Encoder`: a Hugging Face model directory turned into an ONNX graph (model + pooling +
 * normalisation) and run by onnxruntime. Texts are sorted by length into batches so padding
 * stays small, and results come back in input order as one Float32Array.
 */
import { join } from 'node:path';
import { Graph, type Value } from '../graph/graph.js';
import { type Feed, floatTensor, Session } from '../runtime/session.js';
import { deviceResident, uploadTensors } from '../runtime/device-memory.js';
import { padBatch } from './batch.js';
import { Scope } from '../util/scope.js';
import { noProgress, type Reporter } from '../progress.js';
import { isDecoder, type ModelConfig, readConfig } from './config.js';
import { EmbeddingCache } from './cache.js';
import { Params, type WeightLayout } from './params.js';
import { type Pooling, type PoolingOptions, POOLINGS, pool } from './pooling.js';
import type { NamedTensor } from './safetensors.js';
import { loadWeights, withWeightFiles } from './weights.js';
import { loadTokenizer, type Tokenizer } from './tokenizer.js';
import { readTemplates, type Templates } from './prompts.js';
import { savedMaxSeqLength, savedNormalize, savedPooling } from './st-config.js';
import { resolveModel } from './resolve.js';

/** `count` embeddings of `dim` floats each, row-major. */
export interface Embeddings {
  data: Float32Array;
  dim: number;
  count: number;
}

export interface EncoderOptions {
  /** Pooling; default from sentence-transformers' 1_Pooling/config.json, else `cls`. */
  pooling?: Pooling;
  /** L2-normalise embeddings (default: `Encoder.load` follows modules.json's Normalize module; else true). */
  normalize?: boolean;
  /** Keep only the first n dimensions (Matryoshka truncation), before normalising. */
  dimensions?: number;
  /** onnxruntime intra-op threads (default: all cores). */
  threads?: number;
  /** Hub revision (branch, tag or commit) when the model is a Hub id. */
  revision?: string;
  /** Feed weights as graph inputs (one copy in memory) instead of baking them into the session; default: past 1 GB of weights. */
  weightsAsInputs?: boolean;
  /** fromWeights: the weights map is handed over (its linear weights are transposed in place). */
  adoptWeights?: boolean;
  /** Texts per planning block (default BLOCK_TEXTS); sharded and unsharded runs must agree. */
  blockTexts?: number;
  /** `int8`: linear layers run as integer GEMMs (weights per output column, activations per call). */
  quantize?: 'int8';
  /** Where the session runs: `cpu` (default), `cuda[:i]`, `webgpu`, `dml[:i]`, `coreml`. */
  device?: string;
  /** Write onnxruntime's per-node profile (JSON, placement included) with this file prefix. */
  profilePrefix?: string;
  /**
   * Default token limit per text (`Encoder.load`: sentence-transformers' `max_seq_length` from
   * sentence_bert_config.json, as `SentenceTransformer` applies it); `EncodeOptions.maxLength`
   * overrides it up to the model's own limit.
   */
  maxLength?: number;
}

/** Weight bytes past which an encoder feeds its weights instead of copying them into onnxruntime. */
export const WEIGHTS_AS_INPUTS_ABOVE = 1e9;
/**
 * Texts planned together: sorted by length and batched within blocks of this many, so sharded
 * runs (whole blocks each) give the rows of an unsharded run bit for bit.
 */
export const BLOCK_TEXTS = 1024;
/** Floats in one batch's attention scores (64 MB): batches of long texts are cut to fit. */
export const ATTENTION_BUDGET = 2 ** 24;

export interface EncodeOptions {
  /** Texts per session run (default 32); fewer for long texts, see `attentionBudget`. */
  batchSize?: number;
  /** Floats one batch's attention scores (texts × heads × length²) may take (default ATTENTION_BUDGET). */
  attentionBudget?: number;
  /** Token limit per text, special tokens included (default: the model's limit). */
  maxLength?: number;
  /** A template such as `"query: {text}"` applied before tokenising. */
  template?: string;
  /** Without `template`: use the model folder's saved template for this role (config_sentence_transformers.json). */
  role?: 'query' | 'passage';
  /** Label for the progress bar. */
  label?: string;
  /** Shows progress (a run's `run.progress`); default none. */
  progress?: Reporter;
  /** No notes on stderr (a damaged cache's). */
  quiet?: boolean;
  /** Directory of an on-disk embedding cache; texts found there are not re-encoded. */
  cacheDir?: string;
  /** Encode only texts[from, to) (whole blocks; a shard's part). Default: all. */
  rows?: [number, number];
  /** Rows already known (an EncoderPool's cache hits), by text index: taken as cache hits are. */
  known?: Record<number, Float32Array>;
  /**
   * Stream the rows here, in order, a chunk of blocks at a time, instead of returning them (the
   * result's data is then empty): a pool bigger than memory. Repeats of a text in other chunks
   * keep their own rows, so pass distinct texts.
   */
  sink?: (rows: Float32Array) => void;
  /** Called as texts are done (each batch, and cache hits), next to the bar: how an EncoderPool's worker reports progress. */
  onTick?: (texts: number) => void;
}

/**
 * Encodes `texts` (or options.rows) in chunks of 16 planning blocks through `enc`, handing each
 * chunk's rows to `options.sink`; the rows are those of one call, chunk by chunk.
 * @example await encoder.encode(pool, { sink: (rows) => file.append(rows) }); // goes through here
 */
export async function encodeToSink(enc: { dim: number; blockTexts: number; encode(texts: readonly string[], o: EncodeOptions): Promise<Embeddings> }, texts: readonly string[], options: EncodeOptions): Promise<Embeddings> {
  const [lo, hi] = options.rows ?? [0, texts.length];
  const step = enc.blockTexts * 16;
  const bar = (options.progress ?? noProgress)(options.label ?? 'encode', hi - lo);
  for (let b0 = lo; b0 < hi; b0 += step) {
    const b1 = Math.min(hi, b0 + step);
    const part = await enc.encode(texts, { ...options, sink: undefined, rows: [b0, b1], progress: undefined });
    options.sink!(part.data);
    bar.tick(b1 - b0);
  }
  bar.done();
  return { data: new Float32Array(0), dim: enc.dim, count: hi - lo };
}

/**
 * Gives every repeat of a text the row of its first occurrence, so equal texts tie exactly.
 * @example shareRows(['a', 'b', 'a'], e); // row 2 := row 0
 */
export function shareRows(texts: readonly string[], e: Embeddings): void {
  const first = new Map<string, number>();
  texts.forEach((t, i) => {
    const j = first.get(t);
    if (j === undefined) first.set(t, i);
    else e.data.copyWithin(i * e.dim, j * e.dim, (j + 1) * e.dim);
  });
}

import { buildEncoderGraph } from './architectures.js';

export { ARCHITECTURES, type ArchitectureBuilder, buildEncoderGraph, type LayerwiseParts, sentenceEmbedding } from './architectures.js';

export { loadWeights } from './weights.js';

export { savedMaxSeqLength, savedNormalize, savedPooling } from './st-config.js';

export class Encoder {
  /** Texts run through the model so far (cache hits excluded). */
  encodedCount = 0;
  /** Session runs so far (batches). */
  batchCount = 0;
  /** The weights are the model folder's (load), so the folder identifies them for the embedding cache. */
  private fromFolder = false;
  /** Templates saved with the model (its sentence-transformers prompts), used by role. */
  templates: Partial<Templates> = {};
  /** Texts planned together (see BLOCK_TEXTS). */
  blockTexts = BLOCK_TEXTS;
  /** Linear layers run in int8 (EncoderOptions.quantize). */
  quantize?: 'int8';
  /** Token limit when an encode call names none (sentence-transformers' max_seq_length, else the model's limit). */
  defaultMaxLength?: number;
  /** Frees the weights this encoder uploaded to a device (on close). */
  private releaseDevice?: () => Promise<void>;

  private constructor(
    readonly dir: string,
    readonly config: ModelConfig,
    readonly tokenizer: Tokenizer,
    private readonly session: Session,
    readonly pooling: Pooling,
    readonly normalize: boolean,
    readonly dim: number,
    /** Longest input the model accepts, special tokens included. */
    readonly maxLength: number,
    /** Tensors fed with every batch (weights that are graph inputs). */
    private readonly feed: Feed = {},
    /** The graph output holding the embeddings. */
    private readonly output = 'sentence_embedding',
  ) {}

  /**
   * Loads a Hugging Face model directory.
   * @example
   *   const encoder = await Encoder.load('models/bge-small-en', { pooling: 'cls' });
   *   const { data, dim } = await encoder.encode(['hello world']);
   */
  static async load(nameOrDir: string, options: EncoderOptions = {}): Promise<Encoder> {
    const dir = await resolveModel(nameOrDir, { revision: options.revision });
    const config = readConfig(dir);
    const tokenizer = loadTokenizer(dir);
    const weights = loadWeights(dir);
    const encoder = await withWeightFiles(dir, () => Encoder.fromWeights(dir, config, tokenizer, weights, {
      ...options,
      pooling: options.pooling ?? savedPooling(dir),
      normalize: options.normalize ?? savedNormalize(dir),
      maxLength: options.maxLength ?? savedMaxSeqLength(dir),
      adoptWeights: true,
    }));
    encoder.fromFolder = true;
    encoder.templates = readTemplates(dir);
    if (options.blockTexts !== undefined) encoder.blockTexts = options.blockTexts;
    return encoder;
  }

  /** An encoder over weights already in memory (e.g. mid-training, for evaluation). */
  static async fromWeights(dir: string, config: ModelConfig, tokenizer: Tokenizer, weights: Map<string, NamedTensor>, options: EncoderOptions = {}): Promise<Encoder> {
    const pooling = options.pooling ?? (isDecoder(config) ? 'last' : 'cls');
    if (!POOLINGS.includes(pooling)) throw new Error(`pooling must be one of ${POOLINGS.join(', ')}, got "${pooling}"`);
    requireEndToken(config, tokenizer, pooling, dir);
    requireVocabulary(config, tokenizer, dir);
    const normalize = options.normalize ?? true;
    const dimensions = options.dimensions;
    if (dimensions !== undefined && (!Number.isInteger(dimensions) || dimensions < 1 || dimensions > config.hiddenSize)) {
      throw new Error(`dimensions must be an integer in 1..${config.hiddenSize}, got ${dimensions}`);
    }
    // Big models (bge-m3) feed their weights as graph inputs: onnxruntime computes straight from
    // the arrays read from safetensors, with no second copy inside the session.
    let bytes = 0;
    for (const t of weights.values()) bytes += t.data.byteLength;
    if (options.quantize !== undefined && options.quantize !== 'int8') throw new Error(`quantize: "${options.quantize}" is not supported (int8 is)`);
    const int8 = options.quantize === 'int8';
    // int8 weights are baked in (a quarter of the float size); float ones past 1 GB are fed.
    const mode = !int8 && (options.weightsAsInputs ?? bytes > WEIGHTS_AS_INPUTS_ABOVE) ? 'input' : 'initializer';
    const { graph, params } = buildEncoderGraph(config, weights, { pooling, normalize, dimensions }, mode, options.adoptWeights ? 'adopt' : 'hf', int8);
    const feed: Feed = {};
    for (const [name, u] of params.used) if (params.values.has(name)) feed[name] = floatTensor(u.data, u.shape);
    const runtime = { threads: options.threads, device: options.device, profilePrefix: options.profilePrefix };
    // Released if anything after it fails (a device upload, a bad maxLength); the encoder owns them after.
    await using scope = new Scope();
    const session = scope.use(await Session.create(graph, runtime));
    const limit = Math.min(tokenizer.modelMaxLength, positionLimit(config));
    // Fed weights go to a WebGPU device once, not with every batch.
    const onDevice = mode === 'input' && deviceResident(options.device) ? await uploadTensors(feed, runtime) : undefined;
    if (onDevice) scope.defer(onDevice.release);
    const encoder = new Encoder(dir, config, tokenizer, session, pooling, normalize, dimensions ?? config.hiddenSize, limit, mode === 'input' ? (onDevice?.tensors ?? feed) : {});
    encoder.releaseDevice = onDevice?.release;
    if (options.maxLength !== undefined) encoder.defaultMaxLength = encoder.resolveMaxLength(options.maxLength);
    encoder.quantize = options.quantize;
    scope.move();
    return encoder;
  }

  /**
   * An encoder over a session whose graph takes the weights as inputs (`feed`, passed zero-copy
   * with every batch): a trainer evaluates its current weights without a second copy of the model.
   * The encoder owns `session` and releases it on close().
   */
  static fromSession(dir: string, config: ModelConfig, tokenizer: Tokenizer, session: Session, o: { pooling: Pooling; normalize: boolean; feed: Feed; output: string }): Encoder {
    const maxLength = Math.min(tokenizer.modelMaxLength, positionLimit(config));
    return new Encoder(dir, config, tokenizer, session, o.pooling, o.normalize, config.hiddenSize, maxLength, o.feed, o.output);
  }

  /** Token ids of `text` as the encoder would see them. */
  tokenize(text: string, options: Pick<EncodeOptions, 'maxLength' | 'template' | 'role'> = {}): number[] {
    return this.tokenizer.encode(applyTemplate(text, this.templateFor(options)), this.resolveMaxLength(options.maxLength));
  }

  /** The explicit template, else the model's saved one for the role. */
  templateFor(options: Pick<EncodeOptions, 'template' | 'role'>): string | undefined {
    return options.template ?? (options.role ? this.templates[options.role] : undefined);
  }

  private resolveMaxLength(maxLength?: number): number {
    if (maxLength === undefined) return this.defaultMaxLength ?? this.maxLength;
    if (!Number.isInteger(maxLength) || maxLength < 2) throw new Error(`maxLength must be an integer ≥ 2, got ${maxLength}`);
    return Math.min(maxLength, this.maxLength);
  }

  /**
   * Embeds texts; row i of the result is texts[i].
   * @example
   *   const e = await encoder.encode(['what is lift?'], { template: 'query: {text}', maxLength: 64 });
   *   e.data.subarray(0, e.dim); // the first embedding
   */
  async encode(texts: readonly string[], options: EncodeOptions = {}): Promise<Embeddings> {
    if (options.sink) return encodeToSink(this, texts, options);
    const block = this.blockTexts;
    const [lo, hi] = options.rows ?? [0, texts.length];
    if (!(0 <= lo && lo <= hi && hi <= texts.length) || lo % block || (hi % block && hi !== texts.length)) {
      throw new Error(`encode: rows [${lo}, ${hi}) of ${texts.length} texts must be whole blocks of ${block}`);
    }
    const out = new Float32Array((hi - lo) * this.dim);
    const maxLength = this.resolveMaxLength(options.maxLength);
    const template = this.templateFor(options);
    if (options.cacheDir && !this.fromFolder) {
      throw new Error(`embedding cache: this encoder holds weights in memory (e.g. mid-training), which ${this.dir} does not identify; encode without cacheDir`);
    }
    const cache = options.cacheDir
      ? EmbeddingCache.open(options.cacheDir, this.cacheKey(maxLength, template), this.dim)
      : undefined;
    if (cache?.corrupt && !options.quiet) process.stderr.write(`embedding cache ${options.cacheDir}: ${cache.corrupt} damaged entries (checksum or values) not used; those texts are encoded again\n`);
    const shown = (options.progress ?? noProgress)(options.label ?? 'encode', hi - lo);
    const bar = {
      tick: (n: number) => {
        shown.tick(n);
        if (n) options.onTick?.(n);
      },
      done: () => shown.done(),
    };
    const budget = options.attentionBudget ?? ATTENTION_BUDGET;
    for (let b0 = lo; b0 < hi; b0 += block) {
      // A block is planned on its own texts alone (sorted, batched, padded), so a text's row
      // never depends on texts outside its block: shards of whole blocks reproduce one run bit for bit.
      const todo: number[] = [];
      const inBlock = new Set<string>();
      for (let i = b0; i < Math.min(hi, b0 + block); i++) {
        const hit = options.known?.[i] ?? cache?.get(texts[i]!);
        if (hit) out.set(hit, (i - lo) * this.dim);
        else if (!inBlock.has(texts[i]!)) todo.push(i);
        inBlock.add(texts[i]!);
      }
      bar.tick(Math.min(hi, b0 + block) - b0 - todo.length);
      const ids = todo.map((i) => this.tokenizer.encode(applyTemplate(texts[i]!, template), maxLength));
      // Longest first: the slowest batches come early, so the ETA is honest.
      const order = ids.map((_, j) => j).sort((a, b) => ids[b]!.length - ids[a]!.length || a - b);
      for (let start = 0; start < order.length; ) {
        const batch = order.slice(start, start + this.textsPerBatch(options.batchSize ?? 32, ids[order[start]!]!.length, budget));
        start += batch.length;
        const rows = await this.runBatch(batch.map((j) => ids[j]!));
        batch.forEach((j, r) => {
          const row = rows.subarray(r * this.dim, (r + 1) * this.dim);
          out.set(row, (todo[j]! - lo) * this.dim);
          cache?.put(texts[todo[j]!]!, row);
        });
        bar.tick(batch.length);
        this.encodedCount += batch.length;
        this.batchCount++;
      }
    }
    bar.done();
    cache?.flush();
    const e = { data: out, dim: this.dim, count: hi - lo };
    shareRows(lo === 0 && hi === texts.length ? texts : texts.slice(lo, hi), e);
    return e;
  }

  /**
   * Texts in a batch whose longest text has `length` tokens: at most `batchSize`, and few enough
   * that one attention-score tensor (texts × heads × length²) stays within the budget, so
   * long texts don't multiply peak memory (32 × 512 tokens on a 12-head model: 400 MB per tensor).
   */
  private textsPerBatch(batchSize: number, length: number, budget: number): number {
    return Math.max(1, Math.min(batchSize, Math.floor(budget / ((this.config.numHeads || 1) * length * length))));
  }

  private async runBatch(batch: number[][]): Promise<Float32Array> {
    const feed = padBatch(batch, this.config.padTokenId, '', this.session.inputNames.includes('token_type_ids'));
    const result = await this.session.run({ ...this.feed, ...feed }, [this.output]);
    return result[this.output]!.data as Float32Array;
  }

  /** The embedding-cache key of an encode with these options (an EncoderPool keeps the cache). */
  cacheKeyFor(options: EncodeOptions): string {
    if (!this.fromFolder) throw new Error(`embedding cache: this encoder holds weights in memory (e.g. mid-training), which ${this.dir} does not identify; encode without cacheDir`);
    return this.cacheKey(this.resolveMaxLength(options.maxLength), this.templateFor(options));
  }

  /** Identifies model weights + every setting that changes an embedding. */
  private cacheKey(maxLength: number, template?: string): string {
    return JSON.stringify({
      model: EmbeddingCache.modelFingerprint(this.dir),
      pooling: this.pooling,
      normalize: this.normalize,
      ...(this.quantize ? { quantize: this.quantize } : {}),
      dim: this.dim,
      maxLength,
      template: template ?? '',
    });
  }

  async close(): Promise<void> {
    await this.session.release();
    await this.releaseDevice?.();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * A decoder's last-token embedding is the state of the end token its tokenizer appends
 * (Qwen3-Embedding's post-processor adds <|endoftext|>); without one it would be the last word's.
 */
export function requireEndToken(config: ModelConfig, tokenizer: Tokenizer, pooling: Pooling, dir: string): void {
  if (!isDecoder(config) || pooling !== 'last' || tokenizer.closing > 0) return;
  throw new Error(
    `${join(dir, 'tokenizer.json')}: appends no end token, and last-token pooling of a ${config.modelType} model reads the end token's state ` +
      `(Qwen3-Embedding's tokenizer appends <|endoftext|> with a TemplateProcessing post-processor); use that tokenizer.json, or --pooling mean`,
  );
}

/**
 * Refuses a tokenizer that can produce ids past the model's embedding table (a tokenizer from
 * another model), or a pad_token_id outside it, before any batch: onnxruntime would fail in a
 * Gather naming neither file.
 */
export function requireVocabulary(config: ModelConfig, tokenizer: Tokenizer, dir: string): void {
  const rows = config.vocabSize;
  const configFile = join(dir, 'config.json');
  if (tokenizer.maxId >= rows) {
    throw new Error(`${tokenizer.file}: has token ids up to ${tokenizer.maxId}, but the model's embedding table has ${rows} rows (${configFile}: vocab_size ${rows}); the tokenizer belongs to another model`);
  }
  if (!(config.padTokenId >= 0 && config.padTokenId < rows)) throw new Error(`${configFile}: pad_token_id ${config.padTokenId} is outside the embedding table (vocab_size ${rows})`);
}

import { positionLimit } from './model-config.js';

export { positionLimit };

import { applyTemplate } from './template.js';

export { applyTemplate };
