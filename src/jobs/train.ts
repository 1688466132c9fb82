/**
 * train (spec 2, run_embedding.py): contrastive fine-tuning from a JSON config. Loads the
 * records, builds the trainer, runs epochs of duplicate-free batches, logs every
 * `logging_steps` to `output_dir/log.jsonl`, checkpoints every `save_steps` (resumable,
 * bit-identical), evaluates every `eval_steps` (keeping the best as `best/`), and exports
 * the model in Hugging Face + sentence-transformers + ONNX layout to `output_dir`.
 */
import { appendFileSync as fsAppend, existsSync, readdirSync, readFileSync, statSync, writeFileSync as fsWrite } from 'node:fs';
import { join } from 'node:path';
import { isBeirFolder, loadBeir } from '../data/beir.js';
import { DataError } from '../data/jsonl.js';
import { loadRecords, type QueryRecord, type RecordShape, SkipReport, toRecord } from '../data/records.js';
import { isDecoder, type ModelConfig } from '../models/config.js';
import { addM3Heads, specialTokenIds } from '../models/m3-heads.js';
import type { NamedTensor } from '../models/safetensors.js';
import { loadWeights } from '../models/encoder.js';
import { withWeightFiles } from '../models/weights.js';
import { exportModel } from '../models/export.js';
import { asTemplate, PRESETS, readTemplates, type Templates } from '../models/prompts.js';
import { resolveModel } from '../models/resolve.js';
import { openRun, type Run, type RunOptions } from '../run.js';
import { checkCheckpoint, listCheckpoints, loadCheckpoint, resumePath, saveCheckpoint, type TrainState } from '../training/checkpoint.js';
import { resolveConfig, type TrainConfig } from '../training/config.js';
import { epochBatches, scheduleSteps } from '../training/sampler.js';
import { claimRunDir } from '../training/run-dir.js';
import { ADAPTER, addAdapters, DEFAULT_TARGETS, type LoraOptions, loraLayers, mergeAdapters, writeAdapter } from '../training/lora.js';
import { parseDevices } from '../models/encoder-pool.js';
import { NonFiniteError, Trainer, type TrainerOptions } from '../training/trainer.js';
import type { DistillType } from '../losses/distill.js';
import { Rng } from '../util/rng.js';
import { trainingModel } from '../training/library.js';
import { splitHoldout } from '../training/holdout.js';
import { copyFilesAtomic } from '../util/atomic.js';
import { checkRemineOptions, lastRound, readRound, type RemineEntry, remineDue, remineRound, roundFile } from '../training/remine.js';
import { evaluateSet, type RetrievalSet, specRetrievalSet } from './evaluate.js';


/** fs writes whose failures (a full disk: ENOSPC names no path) name the file. */
function named<T>(path: string, write: () => T): T {
  try {
    return write();
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}
const writeFileSync = (path: string, data: string) => named(path, () => fsWrite(path, data));
const appendFileSync = (path: string, data: string) => named(path, () => fsAppend(path, data));

export interface TrainResult {
  steps: number;
  epochs: number;
  /** Loss of the last batch. */
  finalLoss: number;
  /** Mean loss over the last logging window. */
  lastLoggedLoss: number;
  outputDir: string;
  best?: { step: number; metric: number };
}

/** Every *.jsonl / *.json file of a folder, or the one file. */
export function trainFiles(path: string): string[] {
  if (!existsSync(path)) throw new Error(`train_data: ${path} does not exist`);
  if (!statSync(path).isDirectory()) return [path];
  const files = readdirSync(path).filter((f) => /\.jsonl?$/i.test(f)).sort().map((f) => join(path, f));
  if (files.length === 0) throw new Error(`train_data: no .jsonl or .json files in ${path}`);
  return files;
}

/** A record's teacher scores (`pos_scores` / `neg_scores`), one finite number per passage. */
function teacherScores(file: string, r: QueryRecord, field: string, count: number): number[] {
  const v = r.raw[field];
  const missing = 'missing: knowledge_distillation needs a teacher score per passage (`embedtune score` adds them)';
  if (!Array.isArray(v)) throw new DataError(file, r.line, v === undefined ? missing : 'expected a list of numbers', field);
  if (v.length !== count) throw new DataError(file, r.line, `has ${v.length} scores for ${count} passages`, field);
  v.forEach((x, i) => {
    if (typeof x !== 'number' || !Number.isFinite(x)) throw new DataError(file, r.line, `expected a number, got ${JSON.stringify(x)}`, `${field}[${i}]`);
  });
  return v as number[];
}

/** In-memory records (`train({ train_data: [...] })`) read as a file's are: `train_data:<n>` names item n. */
function memoryRecords(items: Iterable<TrainRecordInput>, skipInvalid: boolean): { records: QueryRecord[]; skips: SkipReport; shape: RecordShape } {
  const skips = new SkipReport();
  const records: QueryRecord[] = [];
  let shape: RecordShape | undefined;
  let n = 0;
  for (const item of items) {
    n++;
    try {
      if (item === null || typeof item !== 'object' || Array.isArray(item)) throw new DataError('train_data', n, 'expected an object {query, pos, neg}');
      const r = toRecord('train_data', { line: n, text: '', bytes: new Uint8Array(0) }, item as Record<string, unknown>, shape, { requirePositives: true });
      shape = r.shape;
      records.push(r.record);
    } catch (e) {
      if (!skipInvalid || !(e instanceof DataError)) throw e;
      skips.add(e);
    }
  }
  return { records, skips, shape: shape ?? 'bge' };
}

async function loadTrainRecords(c: TrainConfig, run: Run, memory?: Iterable<TrainRecordInput>): Promise<QueryRecord[]> {
  const records: QueryRecord[] = [];
  const skips = new SkipReport();
  const sources = memory ? [{ file: 'train_data', read: async () => memoryRecords(memory, c.skip_invalid) }] : trainFiles(c.train_data).map((file) => ({ file, read: () => loadRecords(file, { requirePositives: true, skipInvalid: c.skip_invalid }) }));
  for (const { file, read } of sources) {
    const r = await read();
    r.skips.counts.forEach((n, k) => skips.counts.set(k, (skips.counts.get(k) ?? 0) + n));
    for (const rec of r.records) {
      if (c.group_size > 1 && rec.neg.length === 0) {
        const e = new DataError(file, rec.line, `no negatives, but group_size is ${c.group_size}; run \`embedtune mine\` first or set group_size 1`, r.shape === 'spec' ? 'neg_passage' : 'neg');
        if (!c.skip_invalid) throw e;
        skips.add(e);
        continue;
      }
      if (c.knowledge_distillation) {
        try {
          rec.posScores = teacherScores(file, rec, 'pos_scores', rec.pos.length);
          rec.negScores = teacherScores(file, rec, 'neg_scores', rec.neg.length);
        } catch (e) {
          if (!c.skip_invalid || !(e instanceof DataError)) throw e;
          skips.add(e);
          continue;
        }
      }
      records.push(rec);
    }
  }
  if (c.skip_invalid) run.log(`train: ${skips.summary()}`);
  if (records.length === 0) throw new Error(`train_data: ${memory ? 'the records given' : c.train_data} has no usable records`);
  return records;
}

/** One training record given in memory: the spec's `{query, pos_passage, neg_passage}` or `{query, pos, neg}`. */
export type TrainRecordInput = { query: string; pos?: string[]; neg?: string[]; pos_passage?: string[]; neg_passage?: string[]; pos_scores?: number[]; neg_scores?: number[] };

/**
 * What `train` takes: the JSON config's keys (the spec's names; unset keys take their defaults),
 * with `train_data` a file, a folder, or the records themselves (an array or any iterable).
 */
export type TrainInput = Partial<Omit<TrainConfig, 'train_data'>> & { model_name_or_path: string; output_dir: string; train_data: string | Iterable<TrainRecordInput> };

/** One line of `log.jsonl`: a training step's loss, an evaluation's metrics, or a re-mining round. */
export type LogEntry = { step: number; epoch: number; loss: number; lr: number; grad_norm: number; seconds: number } | { step: number; eval: Record<string, number> } | RemineEntry;

export interface TrainOptions extends RunOptions {
  /** Hears every line written to log.jsonl (each `logging_steps`, each evaluation). */
  onLog?: (entry: LogEntry) => void;
  /** Hears every step: its loss, learning rate and gradient norm. */
  onStep?: (step: { step: number; loss: number; lr: number; gradNorm: number }) => void;
  /**
   * Stops the run between two steps: a checkpoint of that step is saved (resume with
   * `resume_from_checkpoint: true`) and `train` rejects with an AbortError naming it.
   */
  signal?: AbortSignal;
}

/**
 * Fine-tunes a model from a config with the spec's keys (`emb_argument.json`).
 * @example
 *   const result = await train({
 *     model_name_or_path: 'use-lite', output_dir: 'runs/ft', max_steps: 20, group_size: 2,
 *     train_data: [{ query: 'what is lift?', pos: ['Lift is the force …'], neg: ['Drag is …'] }],
 *   }, { onStep: (s) => console.log(s.step, s.loss) });
 */
export async function train(input: TrainInput | TrainConfig, o: TrainOptions = {}): Promise<TrainResult> {
  const memory = typeof input.train_data === 'string' ? undefined : input.train_data;
  const c = resolveConfig({ ...input, train_data: memory ? IN_MEMORY : input.train_data }).config;
  checkRemineOptions(c.remine_options, 'config');
  // The run owns the trainer (its sessions and worker threads) and the claim on output_dir:
  // released in that order however the run ends.
  await using run = openRun(o);
  const modelDir = await resolveModel(c.model_name_or_path, { revision: c.revision ?? undefined, progress: run.progress });
  run.defer(claimRunDir(c.output_dir, { model: modelDir, data: { train_data: memory ? null : c.train_data, eval_data: c.eval_data, eval_negatives: c.eval_negatives } }));
  return await trainIn(c, modelDir, run, o, memory);
}

/** What train_config.json says of records given in memory. */
const IN_MEMORY = '(records given in memory)';

/** A run's LoRA settings; targets default to the architecture's attention projections. */
export function loraOptions(c: TrainConfig, config: ModelConfig): LoraOptions {
  return { rank: c.lora_rank, alpha: c.lora_alpha, dropout: c.lora_dropout, targets: c.lora_target_modules ?? DEFAULT_TARGETS[config.architecture] };
}

/**
 * The templates a run trains with: explicit `query_template` / `passage_template` (a prefix
 * without `{text}`), else `template_preset`, else the base model's saved prompts, else none;
 * `{task}` becomes `task_description`.
 */
export function trainingTemplates(c: TrainConfig, modelDir: string): Templates {
  const preset = c.template_preset ? PRESETS[c.template_preset] : undefined;
  const saved = readTemplates(modelDir);
  const pick = (explicit: string | null, role: keyof Templates) =>
    (explicit !== null ? asTemplate(explicit) : preset?.[role] ?? saved[role] ?? '{text}').replaceAll('{task}', () => c.task_description);
  return { query: pick(c.query_template, 'query'), passage: pick(c.passage_template, 'passage') };
}

/** What a run trains: the model, its batches and schedule, as the config and the data decide them. */
function planRun(c: TrainConfig, modelDir: string, records: QueryRecord[], run: Run) {
  const { config, tokenizer, limit, pooling } = trainingModel(modelDir, c.pooling);
  const devices = c.devices ? parseDevices(c.devices) : undefined;
  const batchSize = c.per_device_train_batch_size * c.gradient_accumulation_steps * (devices?.length ?? 1);
  if (devices) {
    const negatives = c.embedding_negatives_cross_device ? `each query sees all ${batchSize} queries' passages (embedding_negatives_cross_device)` : 'each worker\'s loss sees its own slice only (embedding_negatives_cross_device false); losses and gradients averaged';
    run.log(`train: ${devices.length} data-parallel workers (${c.devices}), ${batchSize / devices.length} queries each per batch of ${batchSize}; ${negatives}`);
  }
  const sampler = { batchSize, groupSize: c.group_size, noDuplicates: c.no_duplicates };
  // Steps as the epochs will really cut their batches (duplicate-free batching varies per epoch).
  const byEpochs = c.max_steps <= 0;
  const totalSteps = byEpochs ? scheduleSteps(records, sampler, c.seed, c.num_train_epochs) : c.max_steps;
  // Gradient accumulation is GradCache: the loss sees the whole effective batch. inf_cl runs on
  // GradCache too, so the encoder's activations stay bounded as the batch grows.
  const infCl = c.loss_type === 'inf_cl';
  const miniBatchSize = c.mini_batch_size ?? (c.gradient_accumulation_steps > 1 ? c.per_device_train_batch_size : infCl ? Math.min(32, c.per_device_train_batch_size) : undefined);
  if (infCl) {
    const scale = c.inf_cl_temperature ? `scores × 1/embedding_temperature (${c.embedding_temperature}), as inf_cl_temperature asks` : 'scale 1.0 as in the spec: embedding_temperature is not applied (set "inf_cl_temperature": true to apply it)';
    run.log(`train: loss_type inf_cl: the InfoNCE tile by tile (no ${batchSize} × ${batchSize * c.group_size} score matrix), GradCache slices of ${miniBatchSize}; ${scale}`);
  }
  if (c.gradient_accumulation_steps > 1) {
    run.log(`train: gradient_accumulation_steps ${c.gradient_accumulation_steps}: one contrastive batch of ${batchSize} queries (GradCache slices of ${miniBatchSize}), not the sum of ${c.gradient_accumulation_steps} separate batch losses as in Hugging Face's Trainer`);
  }
  const dims = c.embedding_matryoshka_dims.length ? c.embedding_matryoshka_dims : undefined;
  const tooBig = dims?.find((d) => d > config.hiddenSize);
  if (tooBig) throw new Error(`embedding_matryoshka_dims: ${tooBig} is larger than the model's hidden size ${config.hiddenSize}`);
  return {
    config, tokenizer, devices, sampler, totalSteps, pooling, miniBatchSize, dims,
    // Whole epochs run to their end; a fractional count (1.5) stops where the schedule ends.
    stepBound: !byEpochs || !Number.isInteger(c.num_train_epochs),
    templates: trainingTemplates(c, modelDir),
    maxQueryLength: Math.min(c.max_query_len, limit),
    maxPassageLength: Math.min(c.max_passage_len, limit),
    lora: c.lora ? loraOptions(c, config) : undefined,
  };
}

type Plan = ReturnType<typeof planRun>;

/** Loads the weights (adding LoRA adapters) and builds the trainer the plan describes. */
async function createTrainer(c: TrainConfig, modelDir: string, p: Plan, run: Run): Promise<Trainer> {
  const weights = loadWeights(modelDir);
  if (p.lora) {
    const layers = loraLayers(weights, p.lora, p.config);
    addAdapters(weights, layers, p.lora.rank, p.config, c.seed);
    run.log(`train: LoRA r=${p.lora.rank} alpha=${p.lora.alpha} on ${layers.length} layers (${p.lora.targets.join(', ')}); the base weights stay fixed`);
  }
  const unified = c.unified_finetuning ? unifiedHeads(c, modelDir, p, weights, run) : undefined;
  const runConfig = p.lora ? { ...p.config, loraScale: p.lora.alpha / p.lora.rank } : p.config;
  return withWeightFiles(modelDir, () => Trainer.fromWeights(runConfig, p.tokenizer, weights, {
    trainOnly: p.lora ? ADAPTER : undefined,
    device: c.device,
    devices: p.devices,
    crossDevice: c.embedding_negatives_cross_device,
    distill: c.knowledge_distillation ? { type: c.kd_loss_type as DistillType, weight: c.kd_weight, teacherTemperature: c.teacher_temperature } : undefined,
    pooling: p.pooling,
    normalize: c.normalize,
    temperature: c.embedding_temperature,
    matryoshkaDims: p.dims,
    matryoshkaWeights: p.dims && c.matryoshka_weights.length ? c.matryoshka_weights : undefined,
    learningRate: c.learning_rate,
    weightDecay: c.weight_decay,
    beta1: c.adam_beta1,
    beta2: c.adam_beta2,
    epsilon: c.adam_epsilon,
    warmupSteps: c.warmup_steps > 0 ? c.warmup_steps : Math.ceil(c.warmup_ratio * p.totalSteps),
    totalSteps: p.totalSteps,
    schedule: c.lr_scheduler_type,
    maxGradNorm: c.max_grad_norm,
    miniBatchSize: p.miniBatchSize ?? undefined,
    maxQueryLength: p.maxQueryLength,
    maxPassageLength: p.maxPassageLength,
    queryTemplate: p.templates.query,
    passageTemplate: p.templates.passage,
    threads: c.threads ?? undefined,
    freezeEmbeddings: c.freeze_embeddings,
    recompute: c.recompute,
    infCl: c.loss_type === 'inf_cl' ? { scale: c.inf_cl_temperature ? 1 / c.embedding_temperature : 1 } : undefined,
    unified,
  }));
}

/** unified_finetuning: the folder's heads (or new ones) among the weights, and what the trainer needs of them. */
function unifiedHeads(c: TrainConfig, modelDir: string, p: Plan, weights: Map<string, NamedTensor>, run: Run): TrainerOptions['unified'] {
  if (isDecoder(p.config)) throw new Error(`unified_finetuning: bge-m3's heads sit on an encoder (XLM-RoBERTa, BERT); ${modelDir} is a decoder`);
  const { colbertDim, created } = addM3Heads(weights, modelDir, p.config.hiddenSize, { colbertDim: c.colbert_dim > 0 ? c.colbert_dim : undefined, seed: c.seed });
  if (created.length) run.log(`train: unified_finetuning: ${modelDir} has no ${created.join(' or ')}; new ones made (torch's Linear initialisation, seed ${c.seed})`);
  run.log(`train: unified_finetuning: dense + sparse + ColBERT (${colbertDim}) trained together${c.use_self_distill ? ', each taught by their ensemble (use_self_distill)' : ''}`);
  return { selfDistill: c.use_self_distill, selfDistillStartStep: c.self_distill_start_step, colbertDim, special: [...specialTokenIds(modelDir)] };
}

/** The state a run starts from: fresh, or a checkpoint's (the log cut back to it). */
async function startState(c: TrainConfig, trainer: Trainer, logPath: string, run: Run): Promise<TrainState> {
  if (!c.resume_from_checkpoint) {
    if (existsSync(logPath)) writeFileSync(logPath, '');
    return { step: 0, epoch: 0, batchInEpoch: 0, epochRng: new Rng(c.seed).seedState, bestMetric: null };
  }
  const explicit = typeof c.resume_from_checkpoint === 'string' ? c.resume_from_checkpoint : undefined;
  const path = resumePath(c.output_dir, explicit, (msg) => run.log(msg));
  const state = await loadCheckpoint(path, trainer);
  // Forget log lines the interrupted run wrote after this checkpoint.
  if (existsSync(logPath)) {
    // A line torn by the kill is dropped with the rest of what came after the checkpoint.
    const step = (l: string) => {
      try {
        return JSON.parse(l).step as number;
      } catch {
        return Infinity;
      }
    };
    const keep = readFileSync(logPath, 'utf8').split('\n').filter((l) => l && step(l) <= state.step);
    writeFileSync(logPath, keep.map((l) => l + '\n').join(''));
  }
  run.log(`train: resumed from ${path} at step ${state.step}`);
  return state;
}

/** An AbortSignal's stop: the step's checkpoint saved (unless just saved), and the error that names it. */
async function stopped(c: TrainConfig, trainer: Trainer, state: TrainState): Promise<Error> {
  const path = state.step % c.save_steps === 0 ? join(c.output_dir, `checkpoint-${state.step}`) : await saveCheckpoint(c.output_dir, trainer, state, c.save_total_limit);
  const e = new Error(`train: stopped by its AbortSignal after step ${state.step}; checkpoint ${path} (resume with resume_from_checkpoint: true)`);
  e.name = 'AbortError';
  return Object.assign(e, { checkpoint: path, step: state.step });
}

async function trainIn(c: TrainConfig, modelDir: string, run: Run, o: TrainOptions, memory?: Iterable<TrainRecordInput>): Promise<TrainResult> {
  const loaded = await loadTrainRecords(c, run, memory);
  const split = c.eval_holdout > 0 ? splitHoldout(loaded, c.eval_holdout, c.seed) : undefined;
  if (split) run.log(`train: eval_holdout ${c.eval_holdout}: ${split.heldOut.queries.size} of ${split.heldOut.queries.size + new Set(split.train.map((r) => r.query)).size} queries held out, evaluated at each epoch's end over the file's ${split.heldOut.corpus.length} passages; the output is the best epoch's model`);
  const base = split?.train ?? loaded;
  let records = base;
  const p = planRun(c, modelDir, records, run);
  // Every error from here on (a checkpoint of another model, a missing eval set, a failed final
  // save) releases the trainer with the run: its worker threads would keep the process alive.
  const trainer = run.use(await createTrainer(c, modelDir, p, run));
  const logPath = join(c.output_dir, 'log.jsonl');
  writeFileSync(join(c.output_dir, 'train_config.json'), JSON.stringify(c, null, 2) + '\n');
  if (o.signal?.aborted) throw Object.assign(new Error('train: stopped by its AbortSignal before the first step'), { name: 'AbortError' });
  let state = await startState(c, trainer, logPath, run);
  // A resumed run trains on the re-mining round its checkpoint was in; resumed before a round's
  // first step, it starts from the round before and mines that epoch's again.
  const minesNow = remineDue(state.epoch, c.remine_every) && state.batchInEpoch === 0;
  const round = c.resume_from_checkpoint ? lastRound(minesNow ? state.epoch - 1 : state.epoch, c.remine_every) : undefined;
  if (round !== undefined) records = await readRound(base, roundFile(c.output_dir, round));

  const evalSet: RetrievalSet | undefined = split ? split.heldOut : c.eval_data
    ? isBeirFolder(c.eval_data) ? await loadBeir(c.eval_data) : await specRetrievalSet(c.eval_data, c.eval_negatives ?? undefined)
    : undefined;
  const evaluateNow = async () => {
    await using encoder = await trainer.encoder(modelDir);
    return await evaluateSet({ model: encoder, quiet: true, queryTemplate: p.templates.query, passageTemplate: p.templates.passage, maxQueryLength: p.maxQueryLength, maxPassageLength: p.maxPassageLength }, evalSet!, [1, 3, 5, 10]);
  };
  const exportTo = async (dir: string) => {
    const trained = await trainer.hfWeights();
    const lora = p.lora;
    exportModel(dir, { baseDir: modelDir, config: p.config, weights: lora ? mergeAdapters(trained, lora.alpha / lora.rank, p.config) : trained, pooling: p.pooling, normalize: c.normalize, templates: p.templates, keepOthers: dir === c.output_dir });
    if (lora) writeAdapter(join(dir, 'adapter'), trained, lora, c.model_name_or_path);
  };

  let lastEval = state.step;
  /** Evaluates, logs, and exports to best/ when the metric is the best yet (kept in the state). */
  const evaluateAndKeep = async () => {
    lastEval = state.step;
    const result = await evaluateNow();
    const metric = result.metrics[c.metric_for_best_model];
    if (metric === undefined) throw new Error(`metric_for_best_model "${c.metric_for_best_model}" is not one of ${Object.keys(result.metrics).join(', ')}`);
    appendFileSync(logPath, JSON.stringify({ step: state.step, eval: result.metrics }) + '\n');
    o.onLog?.({ step: state.step, eval: result.metrics });
    if (state.bestMetric === null || metric > state.bestMetric) {
      state = { ...state, bestMetric: metric };
      best = { step: state.step, metric };
      await exportTo(join(c.output_dir, 'best'));
    }
  };

  const started = Date.now();
  const bar = run.progress('train', p.totalSteps);
  bar.tick(state.step);
  let window: number[] = [];
  let lastLoss = NaN;
  let lastLogged = NaN;
  let best: TrainResult['best'];
  try {
    while (p.stepBound ? state.step < p.totalSteps : state.epoch < c.num_train_epochs) {
      if (remineDue(state.epoch, c.remine_every) && state.batchInEpoch === 0) {
        await using encoder = await trainer.encoder(modelDir);
        const mined = await remineRound(base, records, encoder, { outputDir: c.output_dir, epoch: state.epoch, step: state.step, seed: c.seed, options: c.remine_options, queryTemplate: p.templates.query, passageTemplate: p.templates.passage, maxQueryLength: p.maxQueryLength, maxPassageLength: p.maxPassageLength }, run);
        records = mined.records;
        appendFileSync(logPath, JSON.stringify(mined.entry) + '\n');
        o.onLog?.(mined.entry);
      }
      const rng = new Rng(state.epochRng);
      const batches = epochBatches(records, p.sampler, rng);
      const left = records.length - batches.reduce((n, b) => n + b.length, 0);
      if (left > 0 && state.batchInEpoch === 0) run.log(`train: epoch ${state.epoch + 1}: ${left} pair(s) left out: alone in a batch without hard negatives (group_size 1) they have no negative, and joining the batch before would repeat a text`);
      for (let b = state.batchInEpoch; b < batches.length && (!p.stepBound || state.step < p.totalSteps); b++) {
        const r = await trainer.step(batches[b]!);
        state = { ...state, step: state.step + 1, batchInEpoch: b + 1 };
        window.push(r.loss);
        lastLoss = r.loss;
        bar.tick(1, `loss ${r.loss.toFixed(4)} lr ${r.lr.toExponential(2)}`);
        if (state.step % c.logging_steps === 0 || state.step === 1) {
          const loss = window.reduce((a, x) => a + x, 0) / window.length;
          lastLogged = loss;
          const entry = { step: state.step, epoch: state.epoch + (b + 1) / batches.length, loss, lr: r.lr, grad_norm: r.gradNorm, seconds: (Date.now() - started) / 1000, ...(r.transfer && { bytes_to_device: r.transfer.toDevice, bytes_from_device: r.transfer.fromDevice }) };
          appendFileSync(logPath, JSON.stringify(entry) + '\n');
          o.onLog?.(entry);
          window = [];
        }
        if (evalSet && (split ? b + 1 === batches.length : state.step % c.eval_steps === 0)) await evaluateAndKeep();
        if (state.step % c.save_steps === 0) await saveCheckpoint(c.output_dir, trainer, state, c.save_total_limit);
        o.onStep?.({ step: state.step, loss: r.loss, lr: r.lr, gradNorm: r.gradNorm });
        if (o.signal?.aborted) throw await stopped(c, trainer, state);
      }
      if (state.batchInEpoch >= batches.length) state = { ...state, epoch: state.epoch + 1, batchInEpoch: 0, epochRng: rng.seedState };
    }
  } catch (e) {
    if (e instanceof NonFiniteError) {
      const last = listCheckpoints(c.output_dir).reverse().find((k) => checkCheckpoint(k.path) === null);
      throw new Error(`${e.message}. Last good checkpoint: ${last ? last.path : 'none'}`);
    }
    throw e;
  } finally {
    bar.done();
  }
  // eval_holdout: a run that max_steps ends inside an epoch is evaluated where it stops.
  if (split && lastEval !== state.step) await evaluateAndKeep();
  if (state.step % c.save_steps !== 0) await saveCheckpoint(c.output_dir, trainer, state, c.save_total_limit);
  const bestDir = join(c.output_dir, 'best');
  if ((c.load_best_model_at_end || split) && state.bestMetric !== null && existsSync(bestDir)) {
    copyFilesAtomic(bestDir, c.output_dir);
    run.log(`train: ${state.step} steps; the best evaluation's model (${c.metric_for_best_model} ${state.bestMetric.toFixed(4)}) written to ${c.output_dir}`);
  } else {
    await exportTo(c.output_dir);
    run.log(`train: ${state.step} steps, last logged loss ${lastLogged.toFixed(4)}; model written to ${c.output_dir}`);
  }
  return { steps: state.step, epochs: state.epoch, finalLoss: lastLoss, lastLoggedLoss: lastLogged, outputDir: c.output_dir, best };
}
