/**
 * The train job's JSON config. Keys follow the spec's `emb_argument.json` (PaddleNLP /
 * Hugging Face TrainingArguments names); keys that only make sense on GPUs or in Paddle are
 * accepted with one warning line; unknown keys are an error with the closest known key.
 */
import { readFileSync } from 'node:fs';
import { type Pooling, POOLINGS } from '../models/pooling.js';
import { PRESETS, QWEN3_TASK } from '../models/prompts.js';
import type { Schedule } from './optimizer.js';
import { checkThreads, parseDevice } from '../runtime/device.js';
import { parseDevices } from '../models/encoder-pool.js';

export interface TrainConfig {
  model_name_or_path: string;
  output_dir: string;
  /** A JSONL file, or a folder whose *.jsonl / *.json files are all read. */
  train_data: string;
  per_device_train_batch_size: number;
  /**
   * Not Hugging Face's accumulation (the sum of k small-batch losses): the k batches form ONE
   * contrastive batch of `per_device_train_batch_size × k` queries, every passage a negative for
   * every query, run as GradCache in slices of `per_device_train_batch_size`. A different (larger
   * in-batch) objective from HF's, with the memory of one slice. `mini_batch_size` overrides the slice.
   */
  gradient_accumulation_steps: number;
  learning_rate: number;
  weight_decay: number;
  adam_beta1: number;
  adam_beta2: number;
  adam_epsilon: number;
  max_grad_norm: number;
  warmup_steps: number;
  warmup_ratio: number;
  lr_scheduler_type: Schedule;
  /** > 0: stop after this many optimizer steps (overrides num_train_epochs). */
  max_steps: number;
  num_train_epochs: number;
  max_query_len: number;
  max_passage_len: number;
  group_size: number;
  embedding_temperature: number;
  embedding_matryoshka_dims: number[];
  matryoshka_weights: number[];
  /** `{text}` template or a prefix; null: the model's saved prompts (config_sentence_transformers.json), else none. */
  query_template: string | null;
  passage_template: string | null;
  /** A named template pair (models/prompts.ts PRESETS: `prompteol`, `qwen3-embedding`), under explicit templates. */
  template_preset: string | null;
  /** Replaces `{task}` in templates (Qwen3-Embedding's instruction). */
  task_description: string;
  /** null: the model's 1_Pooling/config.json, else `last` for decoders (Qwen) and `cls` for encoders. */
  pooling: Pooling | null;
  normalize: boolean;
  /** GradCache: texts per encoder run; unset = the whole batch in one run. */
  mini_batch_size: number | null;
  no_duplicates: boolean;
  save_steps: number;
  save_total_limit: number | null;
  logging_steps: number;
  seed: number;
  resume_from_checkpoint: boolean | string;
  eval_data: string | null;
  eval_negatives: string | null;
  eval_steps: number;
  metric_for_best_model: string;
  skip_invalid: boolean;
  threads: number | null;
  /** Keep the embedding tables (word, position, token type) fixed: less memory, no moments for them. */
  freeze_embeddings: boolean;
  /** LoRA: train rank-`lora_rank` adapters on `lora_target_modules` (PEFT names) instead of the weights. */
  lora: boolean;
  lora_rank: number;
  lora_alpha: number;
  /** Accepted for PEFT configs; embedtune trains without dropout (see README). */
  lora_dropout: number;
  /** null: the attention projections (q/k/v(/o)); `"all-linear"`: every linear layer (PEFT's shorthand). */
  lora_target_modules: string[] | null;
  /** Gradient checkpointing: recompute each layer's activations in backward (less memory, one more forward). */
  recompute: boolean;
  /** Hub revision (branch, tag or commit) when model_name_or_path is a Hub id. */
  revision: string | null;
  /** Distil from the records' `pos_scores` / `neg_scores` (FlagEmbedding's key); records without them are refused. */
  knowledge_distillation: boolean;
  /** `kl_div` (FlagEmbedding's) or `margin_mse`. */
  kd_loss_type: string;
  /** Weight of the distillation term next to InfoNCE's 1. */
  kd_weight: number;
  /** Temperature of the teacher's softmax (kl_div). */
  teacher_temperature: number;
  /** Where training runs: `cpu` (default), `cuda[:i]`, `webgpu`, … (see README "Devices"). */
  device: string;
  /**
   * Data parallel: `cpu:NxT` (N workers of T threads) or `cuda:0,cuda:1`; each worker takes
   * `per_device_train_batch_size × gradient_accumulation_steps` queries of every batch (the
   * batch is that times the workers, as on N devices). null: one process.
   */
  devices: string | null;
  /** With `devices`: every query sees every worker's passages (loss of the whole batch); false: each worker's own, averaged. */
  embedding_negatives_cross_device: boolean;
  /**
   * `contrastive` (InfoNCE over the whole score matrix) or `inf_cl`: the same loss computed tile
   * by tile (Inf-CL), so the batch can grow until the embeddings fill memory; as the spec, at
   * scale 1.0 (no temperature) unless `inf_cl_temperature`, over GradCache slices.
   */
  loss_type: string;
  /** The spec's Triton tile size for inf_cl: accepted, not used (tiles here: 256 × 4096 scores). */
  inf_cl_head_dim: number;
  /** inf_cl: apply `embedding_temperature` (scores × 1/τ) instead of the spec's scale 1.0. */
  inf_cl_temperature: boolean;
  /**
   * bge-m3's unified fine-tuning (FlagEmbedding's key): dense, sparse and ColBERT trained together,
   * the heads read from the model folder (new ones made when it has none) and exported beside it.
   */
  unified_finetuning: boolean;
  /** With unified_finetuning: the ensemble of the three scores teaches each (self-knowledge distillation). */
  use_self_distill: boolean;
  /** ColBERT's vector size when the folder has no colbert_linear (-1: the hidden size, as FlagEmbedding). */
  colbert_dim: number;
  /** With use_self_distill: distil from the step after this one (FlagEmbedding's; -1: from the first). */
  self_distill_start_step: number;
  /**
   * Re-mining (ANCE): every this many epochs (0: never), the training records' negatives are mined
   * again with the current weights before the epoch starts (training/remine.ts).
   */
  remine_every: number;
  /** Mine's options for those rounds, under its library keys (`{"rangeMin": 2, "rangeMax": 50, "lexical": "bm25"}`). */
  remine_options: Record<string, unknown>;
  /**
   * A share (0–0.5) of the training queries held out, seeded, and evaluated at every epoch's end
   * (training/holdout.ts); the output is the best epoch's model. 0: none.
   */
  eval_holdout: number;
  /** Hugging Face's key: output_dir gets the best evaluation's model, not the last step's (on with eval_holdout). */
  load_best_model_at_end: boolean;
}

export const DEFAULTS: Omit<TrainConfig, 'model_name_or_path' | 'output_dir' | 'train_data'> = {
  per_device_train_batch_size: 8,
  gradient_accumulation_steps: 1,
  learning_rate: 1e-5,
  weight_decay: 0.0,
  adam_beta1: 0.9,
  adam_beta2: 0.999,
  adam_epsilon: 1e-8,
  max_grad_norm: 1.0,
  warmup_steps: 0,
  warmup_ratio: 0,
  lr_scheduler_type: 'linear',
  max_steps: -1,
  num_train_epochs: 1,
  max_query_len: 64,
  max_passage_len: 256,
  group_size: 8,
  embedding_temperature: 0.02,
  embedding_matryoshka_dims: [],
  matryoshka_weights: [],
  query_template: null,
  passage_template: null,
  template_preset: null,
  task_description: QWEN3_TASK,
  pooling: null,
  normalize: true,
  mini_batch_size: null,
  no_duplicates: true,
  save_steps: 500,
  save_total_limit: null,
  logging_steps: 10,
  seed: 42,
  resume_from_checkpoint: false,
  eval_data: null,
  eval_negatives: null,
  eval_steps: 500,
  metric_for_best_model: 'ndcg@10',
  skip_invalid: false,
  threads: null,
  freeze_embeddings: false,
  lora: false,
  lora_rank: 8,
  lora_alpha: 16,
  lora_dropout: 0,
  lora_target_modules: null,
  recompute: false,
  revision: null,
  knowledge_distillation: false,
  kd_loss_type: 'kl_div',
  kd_weight: 1,
  teacher_temperature: 1,
  device: 'cpu',
  devices: null,
  embedding_negatives_cross_device: true,
  loss_type: 'contrastive',
  inf_cl_head_dim: 64,
  inf_cl_temperature: false,
  unified_finetuning: false,
  use_self_distill: false,
  colbert_dim: -1,
  self_distill_start_step: -1,
  remine_every: 0,
  remine_options: {},
  eval_holdout: 0,
  load_best_model_at_end: false,
};

/** Other names for our keys (the spec's, FlagEmbedding's). */
const ALIASES: Record<string, keyof TrainConfig> = {
  dataset_name_or_path: 'train_data',
  train_group_size: 'group_size',
  temperature: 'embedding_temperature',
  query_max_len: 'max_query_len',
  passage_max_len: 'max_passage_len',
  sentence_pooling_method: 'pooling',
  normalize_embeddings: 'normalize',
  query_instruction_for_retrieval: 'query_template',
  gradient_checkpointing: 'recompute',
};

/**
 * Half-precision keys: accepted and answered with what happens instead. onnxruntime's x86 CPU
 * kernels have no float16/bfloat16 MatMul, so computing in half precision would only add casts.
 */
const PRECISION = new Set(['bf16', 'fp16', 'fp16_opt_level']);
export const PRECISION_NOTE =
  'computes in float32 on CPU (onnxruntime has no half-precision MatMul kernels for x86): weights, gradients and AdamW moments are float32; F16/BF16 checkpoints load, and the export keeps the base model\'s dtype (export --dtype chooses)';

/** Keys of PaddleNLP / HF configs that do not apply on CPU ONNX Runtime: accepted, ignored, warned about. */
export const IGNORED = new Set([
  'sharding', 'use_flash_attention', 'tensor_parallel_degree', 'pipeline_parallel_degree',
  'unified_checkpoint', 'amp_custom_black_list', 'release_grads', 'zero_padding', 'do_train', 'do_eval', 'disable_tqdm',
  'eval_with_do_generation', 'per_device_eval_batch_size', 'eval_accumulation_steps', 'evaluation_strategy',
  'save_strategy', 'dataloader_num_workers', 'report_to', 'overwrite_output_dir', 'logging_dir',
  'deepspeed', 'logging_strategy', 'tokenizer_name_or_path', 'use_fast_tokenizer',
]);

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length]![b.length]!;
}

export function closestKey(key: string): string {
  const known = [...Object.keys(DEFAULTS), 'model_name_or_path', 'output_dir', 'train_data', ...Object.keys(ALIASES)];
  return known.reduce((best, k) => (editDistance(key, k) < editDistance(key, best) ? k : best));
}

/** Keys whose value is a number or null; the other nullable keys take a string or null. */
const NULLABLE_NUMBERS = new Set(['mini_batch_size', 'save_total_limit', 'threads']);

const TYPES: Record<string, string> = Object.fromEntries(
  Object.entries(DEFAULTS).map(([k, v]) => [k, v === null ? 'nullable' : Array.isArray(v) ? 'array' : typeof v]),
);

/**
 * Merges a raw config (from JSON and flag overrides) over the defaults and checks it.
 * Returns the config and the ignored keys (for one warning line).
 */
export function resolveConfig(raw: Record<string, unknown>, source = 'config'): { config: TrainConfig; ignored: string[]; notes: string[] } {
  const out: Record<string, unknown> = { ...DEFAULTS };
  const ignored: string[] = [];
  const notes: string[] = [];
  for (const [key0, value] of Object.entries(raw)) {
    const key: string = ALIASES[key0] ?? key0;
    if (PRECISION.has(key)) {
      if (value === true || (key === 'fp16_opt_level' && value !== 'O0' && value !== null)) notes.push(`${key0}: ${JSON.stringify(value)} — embedtune ${PRECISION_NOTE}`);
      continue;
    }
    if (IGNORED.has(key)) {
      ignored.push(key);
      continue;
    }
    if (!(key in DEFAULTS) && !['model_name_or_path', 'output_dir', 'train_data'].includes(key)) {
      throw new Error(`${source}: unknown key "${key0}"; did you mean "${closestKey(key0)}"?`);
    }
    const type = TYPES[key];
    const ok =
      type === undefined ? typeof value === 'string'
      : key === 'lora_target_modules' ? value === null || typeof value === 'string' || (Array.isArray(value) && value.every((x) => typeof x === 'string'))
      : type === 'nullable' ? value === null || (NULLABLE_NUMBERS.has(key) ? typeof value === 'number' : typeof value === 'string')
      : type === 'array' ? Array.isArray(value) && value.every((x) => typeof x === 'number')
      : key === 'resume_from_checkpoint' ? typeof value === 'boolean' || typeof value === 'string'
      : key === 'remine_options' ? value !== null && typeof value === 'object' && !Array.isArray(value)
      : typeof value === type;
    const expected = key === 'remine_options' ? "an object of mine's options" : type === 'array' ? 'a list of numbers' : type === 'nullable' ? `${NULLABLE_NUMBERS.has(key) ? 'a number' : 'a string'} or null` : type ?? 'a string';
    if (!ok) throw new Error(`${source}: "${key0}" must be ${expected}, got ${JSON.stringify(value)}`);
    // JSON reads 1e999 as Infinity: no setting takes an infinite or NaN number.
    if ([value].flat().some((x) => typeof x === 'number' && !Number.isFinite(x))) throw new Error(`${source}: "${key0}" must be finite, got ${JSON.stringify(raw[key0] === value ? String(value) : value)}`);
    out[key] = key === 'lora_target_modules' && typeof value === 'string' ? [value] : value;
  }
  for (const k of ['model_name_or_path', 'output_dir', 'train_data']) {
    if (typeof out[k] !== 'string' || !(out[k] as string)) throw new Error(`${source}: "${k}" is required`);
  }
  const c = out as unknown as TrainConfig;
  const positive = ['per_device_train_batch_size', 'gradient_accumulation_steps', 'group_size', 'max_query_len', 'max_passage_len', 'save_steps', 'logging_steps', 'eval_steps'] as const;
  for (const k of positive) if (!Number.isInteger(c[k]) || c[k] < 1) throw new Error(`${source}: "${k}" must be a positive integer, got ${c[k]}`);
  const range = (k: keyof TrainConfig, ok: (x: number) => boolean, what: string) => {
    if (!ok(c[k] as number)) throw new Error(`${source}: "${k}" must be ${what}, got ${JSON.stringify(c[k])}`);
  };
  range('adam_beta1', (x) => x >= 0 && x < 1, 'in [0, 1)');
  range('adam_beta2', (x) => x >= 0 && x < 1, 'in [0, 1)');
  range('adam_epsilon', (x) => x > 0, '> 0');
  range('weight_decay', (x) => x >= 0, '≥ 0');
  range('warmup_ratio', (x) => x >= 0 && x <= 1, 'in [0, 1]');
  range('warmup_steps', (x) => Number.isInteger(x) && x >= 0, 'an integer ≥ 0');
  range('max_grad_norm', (x) => x >= 0, '≥ 0 (0 = no clipping)');
  range('num_train_epochs', (x) => x > 0, '> 0');
  range('max_steps', Number.isInteger, 'an integer (≤ 0: train by epochs)');
  range('seed', (x) => Number.isSafeInteger(x) && x >= 0, 'an integer ≥ 0');
  if (c.save_total_limit !== null) range('save_total_limit', (x) => Number.isInteger(x) && x >= 1, 'a positive integer or null');
  if (c.mini_batch_size !== null) range('mini_batch_size', (x) => Number.isInteger(x) && x >= 1, 'a positive integer or null');
  if (c.threads !== null) range('threads', (x) => Number.isInteger(x) && x >= 1, 'a positive integer or null');
  if (c.threads !== null) checkThreads(c.threads, `${source}: "threads"`);
  if (!c.embedding_matryoshka_dims.every((d) => Number.isInteger(d) && d > 0)) throw new Error(`${source}: "embedding_matryoshka_dims" must be positive integers, got ${JSON.stringify(c.embedding_matryoshka_dims)}`);
  if (!/^(hit|mrr|ndcg|recall|precision|map)@(1|3|5|10)$/.test(c.metric_for_best_model)) {
    throw new Error(`${source}: "metric_for_best_model" must be one of hit, mrr, ndcg, recall, precision, map @ 1, 3, 5 or 10 (e.g. "ndcg@10"), got ${JSON.stringify(c.metric_for_best_model)}`);
  }
  if (!(c.learning_rate > 0)) throw new Error(`${source}: "learning_rate" must be > 0`);
  if (!(c.embedding_temperature > 0)) throw new Error(`${source}: "embedding_temperature" must be > 0`);
  if (!['linear', 'cosine', 'constant'].includes(c.lr_scheduler_type)) throw new Error(`${source}: "lr_scheduler_type" must be linear, cosine or constant`);
  if (c.pooling !== null && !POOLINGS.includes(c.pooling)) throw new Error(`${source}: "pooling" must be one of ${POOLINGS.join(', ')}`);
  for (const k of ['query_template', 'passage_template', 'template_preset', 'task_description'] as const) {
    if (c[k] !== null && typeof c[k] !== 'string') throw new Error(`${source}: "${k}" must be a string${k === 'task_description' ? '' : ' or null'}, got ${JSON.stringify(c[k])}`);
  }
  if (!Number.isInteger(c.lora_rank) || c.lora_rank < 1) throw new Error(`${source}: "lora_rank" must be a positive integer, got ${JSON.stringify(c.lora_rank)}`);
  range('lora_alpha', (x) => x > 0, '> 0');
  range('lora_dropout', (x) => x >= 0 && x < 1, 'in [0, 1)');
  if (c.lora_target_modules !== null && !(Array.isArray(c.lora_target_modules) && c.lora_target_modules.length > 0 && c.lora_target_modules.every((t) => typeof t === 'string'))) {
    throw new Error(`${source}: "lora_target_modules" must be a non-empty list of module names (e.g. ["q_proj", "v_proj"]) or null, got ${JSON.stringify(c.lora_target_modules)}`);
  }
  if (c.lora && c.lora_dropout > 0) notes.push(`lora_dropout ${c.lora_dropout}: not applied — embedtune trains without dropout (the adapters see the same inputs as at inference)`);
  if (c.template_preset !== null && !(c.template_preset in PRESETS)) throw new Error(`${source}: "template_preset" must be one of ${Object.keys(PRESETS).join(', ')}, got ${JSON.stringify(c.template_preset)}`);
  parseDevice(c.device);
  if (c.devices !== null) {
    if (typeof c.devices !== 'string') throw new Error(`${source}: "devices" must be a string such as "cpu:2x1" or "cuda:0,cuda:1", got ${JSON.stringify(c.devices)}`);
    try {
      parseDevices(c.devices);
    } catch (e) {
      throw new Error(`${source}: "devices": ${(e as Error).message}`);
    }
    if (c.device !== 'cpu') throw new Error(`${source}: give "device" (one process) or "devices" (data-parallel workers), not both`);
  }
  if (!['contrastive', 'inf_cl'].includes(c.loss_type)) throw new Error(`${source}: "loss_type" must be contrastive or inf_cl, got ${JSON.stringify(c.loss_type)}`);
  if (c.loss_type === 'inf_cl' && c.knowledge_distillation) throw new Error(`${source}: "loss_type" inf_cl has no distillation term (as the spec's SimpleInfclLoss); use contrastive with knowledge_distillation`);
  if (!['kl_div', 'margin_mse'].includes(c.kd_loss_type)) throw new Error(`${source}: "kd_loss_type" must be kl_div or margin_mse, got ${JSON.stringify(c.kd_loss_type)}`);
  range('kd_weight', (x) => x >= 0, '≥ 0');
  range('teacher_temperature', (x) => x > 0, '> 0');
  if (c.knowledge_distillation && c.group_size < 2 && c.kd_loss_type === 'margin_mse') throw new Error(`${source}: "kd_loss_type" margin_mse needs group_size ≥ 2 (a positive and a negative per query)`);
  if (c.colbert_dim !== -1 && !(Number.isInteger(c.colbert_dim) && c.colbert_dim > 0)) throw new Error(`${source}: "colbert_dim" must be a positive integer or -1 (the hidden size), got ${JSON.stringify(c.colbert_dim)}`);
  if (!Number.isInteger(c.self_distill_start_step) || c.self_distill_start_step < -1) throw new Error(`${source}: "self_distill_start_step" must be an integer ≥ -1, got ${JSON.stringify(c.self_distill_start_step)}`);
  if (c.use_self_distill && !c.unified_finetuning) throw new Error(`${source}: "use_self_distill" distils the ensemble of unified fine-tuning's three scores; set "unified_finetuning": true with it`);
  if (c.unified_finetuning) {
    const clash = (['lora', 'knowledge_distillation'] as const).filter((k) => c[k]);
    if (c.devices !== null) clash.push('devices' as never);
    if (c.loss_type !== 'contrastive') clash.push('loss_type' as never);
    if (c.embedding_matryoshka_dims.length) clash.push('embedding_matryoshka_dims' as never);
    if (clash.length) throw new Error(`${source}: "unified_finetuning" runs in one process (fused, GradCache with mini_batch_size, or recompute), with the contrastive loss; not with ${clash.map((k) => `"${k}"`).join(', ')}`);
  }
  range('remine_every', (x) => Number.isInteger(x) && x >= 0, 'an integer ≥ 0 (epochs between re-mining rounds; 0: never)');
  if (c.remine_every > 0 && c.knowledge_distillation) throw new Error(`${source}: "remine_every" replaces the negatives, whose teacher scores knowledge_distillation needs; score the re-mined records (\`embedtune score\`) and train on them instead`);
  if (c.remine_every === 0 && Object.keys(c.remine_options).length) notes.push('remine_options: not used — remine_every is 0 (no re-mining rounds)');
  range('eval_holdout', (x) => x >= 0 && x <= 0.5, 'a share in [0, 0.5] (0: none)');
  if (c.eval_holdout > 0 && c.eval_data !== null) throw new Error(`${source}: give "eval_data" (a separate set, every eval_steps) or "eval_holdout" (a share of the training queries, every epoch), not both`);
  if (c.load_best_model_at_end && c.eval_data === null && c.eval_holdout === 0) throw new Error(`${source}: "load_best_model_at_end" keeps the best evaluation's model; set "eval_data" or "eval_holdout" to evaluate`);
  if (!c.matryoshka_weights.every((w) => w >= 0) || (c.matryoshka_weights.length && !c.matryoshka_weights.some((w) => w > 0))) {
    throw new Error(`${source}: "matryoshka_weights" must be ≥ 0, at least one > 0, got ${JSON.stringify(c.matryoshka_weights)}`);
  }
  if (c.matryoshka_weights.length && c.matryoshka_weights.length !== c.embedding_matryoshka_dims.length) {
    throw new Error(`${source}: "matryoshka_weights" needs one weight per entry of "embedding_matryoshka_dims"`);
  }
  return { config: c, ignored, notes };
}

/** Reads a JSON config file and applies overrides (already parsed values) on top. */
export function loadTrainConfig(path: string | undefined, overrides: Record<string, unknown> = {}): { config: TrainConfig; ignored: string[]; notes: string[] } {
  let raw: Record<string, unknown> = {};
  if (path) {
    try {
      raw = JSON.parse(readFileSync(path, 'utf8'));
    } catch (e) {
      throw new Error(`${path}: cannot read config (${(e as Error).message})`);
    }
  }
  return resolveConfig({ ...raw, ...overrides }, path ?? 'config');
}
