/**
 * Every command's options, declared once: the CLI builds its parser from this table (cli.ts),
 * the jobs take their defaults from it (`DEFAULTS`), and the README's option reference is
 * rendered from it (`node dist/scripts/options-doc.js`; a test checks the README matches). Each
 * row names the flag, the key the library's options object uses for it, how the text is read,
 * and the help line. Type-checked against the jobs' option types: a key that is not an option
 * of its job does not compile.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CleanOptions } from './jobs/clean.js';
import type { ConvertOptions } from './jobs/convert.js';
import type { WebOptions } from './jobs/web.js';
import type { DemoOptions } from './jobs/demo.js';
import type { EncodeFileOptions } from './jobs/encode.js';
import type { EvaluateOptions } from './jobs/evaluate.js';
import type { MineOptions } from './jobs/mine.js';
import type { ScoreJobOptions } from './jobs/score.js';
import type { ExportJobOptions } from './jobs/export.js';
import type { ModelOptions } from './jobs/common.js';
import type { TrainConfig } from './training/config.js';
import { OUTPUT_FORMATS } from './jobs/mine-formats.js';
import { POOLINGS } from './models/pooling.js';
import { PAIR_TRUNCATIONS } from './models/tokenizer.js';

/** The package root (this file is dist/src/options.js). */
export const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * How an option's text becomes a value: an integer, an integer ≥ 1, a finite number, a thread
 * count (checked against the cores), comma-separated integers or words, a weight dtype (f32 → F32), or a
 * JSON value where one parses (`--set`).
 */
export type Parse = 'int' | 'positive' | 'number' | 'threads' | 'intList' | 'list' | 'dtype' | 'json';

export interface OptionSpec<K extends string = string> {
  /** Commander's flags: `-i, --input <file>`, `--normalize`, `--no-normalize`. */
  flags: string;
  /** The library's name for it (the job's options key, or train's config key). */
  key: K;
  help: string;
  parse?: Parse;
  choices?: readonly string[];
  required?: boolean;
  /** Accepts several values (`--set a=1 b=2`). */
  variadic?: boolean;
}

export interface CommandSpec<K extends string = string> {
  name: string;
  description: string;
  /** A positional argument: `<shard-dir>` or `[config]`, with its help, and the key it fills. */
  argument?: { name: string; help: string; key: K };
  options: OptionSpec<K>[];
}

/** Defaults the jobs apply to what is not given (the CLI passes only what was typed). */
export const DEFAULTS = {
  model: { batchSize: 32 },
  clean: { threshold: 0.7 },
  mine: { rangeMin: 10, rangeMax: 210, numNegatives: 15, sampling: 'random', seed: 42, outputFormat: 'seed' },
  eval: { split: 'test', ks: [1, 3, 5, 10] },
  score: { truncation: 'longest_first', batchSize: 32 },
  demo: { model: 'use-lite', data: join(PACKAGE_ROOT, 'data', 'cranfield-full'), outDir: join('runs', 'demo'), epochs: 3, seed: 13, lexical: 'bm25', remineEvery: 1, evalHoldout: 0 },
  convert: { split: 'test', minScore: 1 },
  web: { port: 8080, host: '127.0.0.1', models: ['use-lite'], data: [join(PACKAGE_ROOT, 'data', 'contrastive-zh', 'train.jsonl')] },
} as const;

const quiet = { flags: '-q, --quiet', key: 'quiet', help: 'no progress or summary output' } as const;
const skipInvalid = { flags: '--skip-invalid', key: 'skipInvalid', help: 'skip bad records (counted and reported) instead of stopping' } as const;
const threads = { flags: '--threads <n>', key: 'threads', parse: 'threads', help: 'onnxruntime threads (default: all cores)' } as const;
const revision = { flags: '--revision <rev>', key: 'revision', help: 'Hub branch, tag or commit (default main)' } as const;

/** What every encoding command takes (encode, clean, mine, eval). */
export const MODEL: OptionSpec<keyof ModelOptions | 'shard' | 'shardDir' | 'shardDtype'>[] = [
  { flags: '-m, --model <dir>', key: 'model', required: true, help: 'model folder (config.json, tokenizer.json, model.safetensors), alias (use-lite) or Hub id (BAAI/bge-m3)' },
  revision,
  { flags: '--pooling <mode>', key: 'pooling', choices: POOLINGS, help: 'pooling (default: from 1_Pooling/config.json, else cls)' },
  { flags: '--normalize', key: 'normalize', help: "L2-normalise embeddings (default; encode: as the model's modules.json says)" },
  { flags: '--no-normalize', key: 'normalize', help: 'do not L2-normalise embeddings' },
  { flags: '--dimensions <n>', key: 'dimensions', parse: 'positive', help: 'keep only the first n dimensions (Matryoshka)' },
  { flags: '--batch-size <n>', key: 'batchSize', parse: 'positive', help: 'texts per batch' },
  threads,
  { flags: '--cache-dir <dir>', key: 'cacheDir', help: 'on-disk embedding cache: a second run re-encodes nothing' },
  { flags: '--device <d>', key: 'device', help: 'cpu (default), cuda[:i], webgpu, dml[:i] or coreml: where onnxruntime runs the model' },
  { flags: '--devices <list>', key: 'devices', help: 'several encoders in worker threads, blocks of texts dealt out (same rows as one): cpu:NxT (N workers × T threads) or cuda:0,cuda:1' },
  { flags: '--quantize <type>', key: 'quantize', choices: ['int8'], help: 'run linear layers as int8 GEMMs (weights per channel, activations per batch): ~2–3× faster on CPUs with VNNI' },
  { flags: '--shard <i/N>', key: 'shard', help: 'encode only shard i of N (auto/N: the index from JOB_COMPLETION_INDEX, SLURM_ARRAY_TASK_ID or AWS_BATCH_JOB_ARRAY_INDEX); then `embedtune merge`' },
  { flags: '--shard-dir <dir>', key: 'shardDir', help: 'where shards are written (default: <output>.shards)' },
  { flags: '--shard-dtype <type>', key: 'shardDtype', choices: ['f32', 'f16'], help: 'f32 (default; the merge is byte-identical to one run) or f16 (half the shard files; rows rounded to half precision)' },
  quiet,
];

const queryTemplate = { flags: '--query-template <t>', key: 'queryTemplate', help: 'template for queries, e.g. "query: {text}"' } as const;
const passageTemplate = { flags: '--passage-template <t>', key: 'passageTemplate', help: 'template for passages' } as const;
const maxQueryLength = { flags: '--max-query-length <n>', key: 'maxQueryLength', parse: 'positive', help: 'token limit per query' } as const;
const maxPassageLength = { flags: '--max-passage-length <n>', key: 'maxPassageLength', parse: 'positive', help: 'token limit per passage' } as const;

const encode: CommandSpec<keyof EncodeFileOptions | 'shard' | 'shardDir' | 'shardDtype'> = {
  name: 'encode',
  description: 'embed texts: a .txt file (one per line) or JSONL ({"text"} or {"query"})',
  options: [
    ...MODEL,
    { flags: '-i, --input <file>', key: 'input', required: true, help: 'input texts' },
    { flags: '-o, --output <file>', key: 'output', required: true, help: 'output: .npy (float32 matrix) or .jsonl ({"text","embedding"})' },
    { flags: '--template <t>', key: 'template', help: 'text template, e.g. "query: {text}" (without {text}: a prefix)' },
    { flags: '--prompt-name <role>', key: 'promptName', choices: ['query', 'passage'], help: "without --template: the model's saved prompt for this role (config_sentence_transformers.json)" },
    { flags: '--max-length <n>', key: 'maxLength', parse: 'positive', help: 'token limit per text' },
    { flags: '--modes <list>', key: 'modes', parse: 'list', help: "bge-m3's outputs, comma-separated: dense, sparse, colbert (JSONL: dense_vecs, lexical_weights, colbert_vecs; the folder needs sparse_linear and colbert_linear)" },
    skipInvalid,
  ],
};

const clean: CommandSpec<keyof CleanOptions | 'shard' | 'shardDir' | 'shardDtype'> = {
  name: 'clean',
  description: 'drop near-duplicate queries (spec 1.1), keeping input order',
  options: [
    ...MODEL,
    { flags: '-i, --input <file>', key: 'input', required: true, help: 'JSONL records {query, pos_passage, neg_passage} or {query, pos, neg}' },
    { flags: '-o, --output <file>', key: 'output', required: true, help: 'kept records, unchanged' },
    { flags: '--report <file>', key: 'report', help: 'dropped queries with their match (default: <output>.dropped.jsonl)' },
    { flags: '--threshold <x>', key: 'threshold', parse: 'number', help: 'cosine similarity at or above which a query is a duplicate' },
    queryTemplate,
    { flags: '--max-length <n>', key: 'maxLength', parse: 'positive', help: 'token limit per query' },
    skipInvalid,
  ],
};

const mine: CommandSpec<keyof MineOptions | 'shard' | 'shardDir' | 'shardDtype'> = {
  name: 'mine',
  description: 'mine hard negatives (spec 1.2) into neg_passage / neg',
  options: [
    ...MODEL,
    { flags: '-i, --input <file>', key: 'input', required: true, help: 'JSONL records with positives' },
    { flags: '-o, --output <file>', key: 'output', required: true, help: 'records with mined negatives' },
    { flags: '--range-min <n>', key: 'rangeMin', parse: 'int', help: 'first rank that may be sampled (after removing positives)' },
    { flags: '--range-max <n>', key: 'rangeMax', parse: 'int', help: 'rank past the last that may be sampled' },
    { flags: '--rank-before-filters', key: 'rankBeforeFilters', help: 'count ranks before the score/margin filters (FlagEmbedding) instead of after them (sentence-transformers)' },
    { flags: '--num-negatives <n>', key: 'numNegatives', parse: 'positive', help: 'negatives per query' },
    { flags: '--sampling <how>', key: 'sampling', choices: ['random', 'top'], help: 'random: seeded sample of the window; top: best ranked' },
    { flags: '--seed <n>', key: 'seed', parse: 'int', help: 'sampling seed' },
    { flags: '--absolute-margin <x>', key: 'absoluteMargin', parse: 'number', help: 'negative score must be ≤ positive score − x' },
    { flags: '--relative-margin <x>', key: 'relativeMargin', parse: 'number', help: 'negative score must be ≤ positive score − |positive score| × x' },
    { flags: '--max-score <x>', key: 'maxScore', parse: 'number', help: 'skip candidates scoring above x' },
    { flags: '--min-score <x>', key: 'minScore', parse: 'number', help: 'skip candidates scoring below x' },
    { flags: '--candidate-pool <path>', key: 'candidatePool', help: 'JSONL of {"text"} or a BEIR corpus (default: all passages in the input)' },
    { flags: '--keep-existing', key: 'keepExisting', help: 'append to existing negatives instead of replacing them' },
    queryTemplate,
    passageTemplate,
    maxQueryLength,
    maxPassageLength,
    { flags: '--stats <file>', key: 'statsPath', help: 'score statistics JSON (default: <output>.stats.json)' },
    { flags: '--reranker <dir>', key: 'reranker', help: 'cross-encoder that rescores each window (or qrels:BEIR_DIR[:split], an oracle from judgements); candidates it scores near or above the positive are dropped' },
    { flags: '--rerank-margin <x>', key: 'rerankMargin', parse: 'number', help: 'with --reranker: drop candidates scoring ≥ positive − x (default 0)' },
    { flags: '--rerank-relative-margin <x>', key: 'rerankRelativeMargin', parse: 'number', help: 'with --reranker: drop candidates scoring ≥ positive − |positive| × x' },
    { flags: '--rerank-label <n>', key: 'rerankLabel', parse: 'int', help: 'with --reranker: which logit is the score, for a model with several labels' },
    { flags: '--rerank-truncation <rule>', key: 'rerankTruncation', choices: PAIR_TRUNCATIONS, help: 'with --reranker: how a pair past its limit is cut (longest_first, only_second, flag)' },
    { flags: '--pool-on-disk', key: 'poolOnDisk', help: "keep the pool's embeddings in a temp file searched a block at a time (default: past 2 GiB of them)" },
    { flags: '--index <kind>', key: 'index', choices: ['exact', 'hnsw'], help: 'exact (default) or hnsw: an approximate graph index for pools too big to search exactly in time' },
    { flags: '--lexical <bm25[:k]>', key: 'lexical', help: "add each query's BM25 top k (default 30) to its window, scored and filtered as the rest; the stats give their share of the negatives" },
    { flags: '--mode <m>', key: 'mode', choices: ['dense', 'sparse', 'colbert', 'hybrid'], help: "rank candidates by one of bge-m3's modes (a folder with sparse_linear and colbert_linear); margins and filters apply to its scores" },
    { flags: '--candidates <n>', key: 'candidates', parse: 'positive', help: 'with --mode colbert or hybrid: dense and sparse candidates per query to rescore (default 100)' },
    { flags: '--output-scores', key: 'outputScores', help: "write pos_scores / neg_scores (the reranker's with --reranker, else the embedding's)" },
    { flags: '--output-format <f>', key: 'outputFormat', choices: OUTPUT_FORMATS, help: "seed: the records with new negatives; else sentence-transformers' rows" },
    skipInvalid,
  ],
};

const evaluate: CommandSpec<keyof EvaluateOptions | 'shard' | 'shardDir' | 'shardDtype'> = {
  name: 'eval',
  description: 'hit rate, MRR, NDCG, recall, precision and MAP at k (spec 3)',
  options: [
    ...MODEL,
    { flags: '-d, --data <path>', key: 'data', required: true, help: 'query–positive JSONL (spec mode) or a BEIR folder' },
    { flags: '--negatives <file>', key: 'negatives', help: 'spec mode: JSONL of {"neg_passage": [...]} lines added to the corpus' },
    { flags: '--split <name>', key: 'split', help: 'BEIR mode: qrels split' },
    { flags: '--k <list>', key: 'ks', parse: 'intList', help: 'cut-offs, comma-separated' },
    queryTemplate,
    passageTemplate,
    maxQueryLength,
    maxPassageLength,
    { flags: '-o, --output <file>', key: 'output', help: 'write the metrics as JSON' },
    { flags: '--modes <list>', key: 'modes', parse: 'list', help: "bge-m3's retrieval modes, comma-separated: dense, sparse, colbert, hybrid (the model folder needs sparse_linear and colbert_linear)" },
    { flags: '--candidates <n>', key: 'candidates', parse: 'positive', help: 'with --modes: dense and sparse candidates per query that colbert and hybrid rescore; with --hybrid: the depth of each list fused (default 100)' },
    { flags: '--hybrid <kind>', key: 'hybrid', choices: ['bm25'], help: 'bm25: also report BM25 alone and dense + BM25 fused by reciprocal rank, next to dense' },
    skipInvalid,
  ],
};

const score: CommandSpec<keyof ScoreJobOptions> = {
  name: 'score',
  description: "add a reranker's pos_scores / neg_scores (FlagEmbedding's fields) to every record",
  options: [
    { flags: '-r, --reranker <dir>', key: 'reranker', required: true, help: 'cross-encoder folder (BERT / XLM-R *ForSequenceClassification, e.g. bge-reranker-base) or Hub id' },
    { flags: '-i, --input <file>', key: 'input', required: true, help: 'JSONL records with positives (and negatives)' },
    { flags: '-o, --output <file>', key: 'output', required: true, help: 'the records with pos_scores and neg_scores' },
    revision,
    { flags: '--label <n>', key: 'label', parse: 'int', help: 'which logit is the score, for a model with several labels' },
    { flags: '--sigmoid', key: 'sigmoid', help: 'σ(logit) instead of the logit' },
    { flags: '--max-length <n>', key: 'maxLength', parse: 'positive', help: "token limit per pair (default: the reranker's)" },
    { flags: '--truncation <rule>', key: 'truncation', choices: PAIR_TRUNCATIONS, help: 'how a pair past the limit is cut: longest_first (CrossEncoder), only_second (the passage), flag (FlagEmbedding: query ≤ ¾)' },
    { flags: '--batch-size <n>', key: 'batchSize', parse: 'positive', help: 'pairs per batch' },
    threads,
    { flags: '--device <d>', key: 'device', help: 'cpu (default), cuda[:i], webgpu, dml[:i] or coreml' },
    { flags: '--cache-dir <dir>', key: 'cacheDir', help: 'on-disk score cache: a second run scores nothing' },
    skipInvalid,
    quiet,
  ],
};

const merge: CommandSpec<'dir' | 'quiet'> = {
  name: 'merge',
  description: 'combine the shards of a `--shard i/N` job and finish it: output identical to the unsharded run',
  argument: { name: '<shard-dir>', key: 'dir', help: 'the folder holding shard-0-of-N … shard-(N−1)-of-N' },
  options: [quiet],
};

/** train's flags override config keys (the spec's emb_argument.json names). */
const train: CommandSpec<keyof TrainConfig | 'config' | 'set' | 'quiet'> = {
  name: 'train',
  description: "contrastive fine-tuning (spec 2) from a JSON config (the spec's emb_argument.json keys)",
  argument: { name: '[config]', key: 'config', help: 'JSON config, as `run_embedding.py emb_argument.json` takes it (or -c)' },
  options: [
    { flags: '-c, --config <file>', key: 'config', help: 'JSON config' },
    { flags: '-m, --model <dir>', key: 'model_name_or_path', help: 'override model_name_or_path' },
    { flags: '--train-data <path>', key: 'train_data', help: 'override train_data (file or folder)' },
    { flags: '-o, --output-dir <dir>', key: 'output_dir', help: 'override output_dir' },
    { flags: '--max-steps <n>', key: 'max_steps', parse: 'int', help: 'override max_steps' },
    { flags: '--num-train-epochs <n>', key: 'num_train_epochs', parse: 'number', help: 'override num_train_epochs' },
    { flags: '--learning-rate <x>', key: 'learning_rate', parse: 'number', help: 'override learning_rate' },
    { flags: '--batch-size <n>', key: 'per_device_train_batch_size', parse: 'positive', help: 'override per_device_train_batch_size' },
    { flags: '--group-size <n>', key: 'group_size', parse: 'positive', help: 'override group_size' },
    { flags: '--threads <n>', key: 'threads', parse: 'threads', help: 'onnxruntime threads' },
    { flags: '--device <name>', key: 'device', help: 'override device: cpu, cuda[:i], webgpu, dml, coreml' },
    { flags: '--devices <spec>', key: 'devices', help: 'override devices: data-parallel workers, cpu:NxT or cuda:0,cuda:1' },
    { flags: '--resume', key: 'resume_from_checkpoint', help: 'continue from the newest complete checkpoint in output_dir' },
    { flags: '--skip-invalid', key: 'skip_invalid', help: 'skip bad training records (counted and reported) instead of stopping' },
    { flags: '--set <key=value...>', key: 'set', variadic: true, help: 'override any config key (value parsed as JSON when it can be)' },
    { flags: '-q, --quiet', key: 'quiet', help: 'no progress output' },
  ],
};

const exportSpec: CommandSpec<keyof ExportJobOptions> = {
  name: 'export',
  description: 'write a checkpoint as a model folder (Hugging Face + sentence-transformers + onnx/model.onnx)',
  options: [
    { flags: '--checkpoint <dir>', key: 'checkpoint', required: true, help: 'a checkpoint-N folder of a train run' },
    { flags: '-o, --output <dir>', key: 'output', required: true, help: 'where to write the model' },
    { flags: '-m, --model <dir>', key: 'model', help: "the base model (default: from the run's train_config.json)" },
    { flags: '--dtype <type>', key: 'dtype', parse: 'dtype', help: "model.safetensors storage: f32, f16 or bf16 (default: the base model's)" },
    { flags: '--adapter-only', key: 'adapterOnly', help: "a LoRA run: write the adapter alone in PEFT's layout (adapter_config.json + adapter_model.safetensors) instead of the merged model" },
    { flags: '--overwrite', key: 'overwrite', help: 'replace the output folder even if it is not an earlier embedtune export' },
  ],
};

const demo: CommandSpec<keyof DemoOptions> = {
  name: 'demo',
  description: 'the whole pipeline on bundled Cranfield with USE-Lite: split, clean, mine, fine-tune, evaluate, report',
  options: [
    { flags: '-m, --model <dir>', key: 'model', help: 'model directory or alias' },
    { flags: '--data <dir>', key: 'data', help: 'BEIR folder' },
    { flags: '-o, --out-dir <dir>', key: 'outDir', help: "where to write every step's output" },
    { flags: '--epochs <n>', key: 'epochs', parse: 'positive', help: 'training epochs' },
    { flags: '--seed <n>', key: 'seed', parse: 'int', help: 'train/test split and training seed' },
    { flags: '--reranker <dir>', key: 'reranker', help: 'cross-encoder (or qrels:BEIR_DIR) that drops likely false negatives while mining' },
    { flags: '--learning-rate <x>', key: 'learningRate', parse: 'number', help: 'peak learning rate' },
    { flags: '--lexical <bm25[:k]|none>', key: 'lexical', help: "mine: add each query's BM25 top k to its window (mine --lexical; none: the model's own neighbours only)" },
    { flags: '--remine-every <n>', key: 'remineEvery', parse: 'int', help: 'train: re-mine the negatives with the current weights every n epochs (remine_every; 0: never)' },
    { flags: '--eval-holdout <share>', key: 'evalHoldout', parse: 'number', help: "train: hold out this share of the training queries, evaluate each epoch, keep the best epoch's model (eval_holdout)" },
    threads,
    quiet,
  ],
};

const report: CommandSpec<'runDir'> = {
  name: 'report',
  description: 'write a self-contained report.html for a run directory (demo or train output)',
  argument: { name: '<run-dir>', key: 'runDir', help: 'the run directory' },
  options: [],
};

const web: CommandSpec<keyof WebOptions> = {
  name: 'web',
  description: 'serve the page that fine-tunes in the browser (onnxruntime-web; nothing leaves the machine) on localhost',
  options: [
    { flags: '--port <n>', key: 'port', parse: 'int', help: 'port (0: any free one)' },
    { flags: '--host <addr>', key: 'host', help: 'address to listen on' },
    { flags: '-m, --models <list>', key: 'models', parse: 'list', help: 'model folders, aliases or Hub ids offered on the page, comma-separated (name=dir names one)' },
    { flags: '--data <list>', key: 'data', parse: 'list', help: 'JSONL files {query, pos_passage, neg_passage} offered on the page, comma-separated (name=file names one)' },
    quiet,
  ],
};

const convert: CommandSpec<keyof ConvertOptions> = {
  name: 'convert',
  description: 'turn a BEIR folder into JSONL records {query, pos_passage, neg_passage}',
  options: [
    { flags: '--beir <dir>', key: 'beir', required: true, help: 'BEIR folder (corpus.jsonl, queries.jsonl, qrels/)' },
    { flags: '-o, --output <file>', key: 'output', required: true, help: 'output JSONL' },
    { flags: '--split <name>', key: 'split', help: 'qrels split' },
    { flags: '--min-score <n>', key: 'minScore', parse: 'int', help: 'lowest qrels grade counted as positive' },
    quiet,
  ],
};

/** The options every command takes, before the command's name. */
export const GLOBAL: OptionSpec[] = [
  { flags: '--progress <how>', key: 'progressFormat', choices: ['bar', 'json'], help: 'progress on stderr: bar (a bar on a terminal, lines in logs; default) or json (one JSON line per update)' },
];

export const COMMANDS: CommandSpec[] = [encode, clean, mine, evaluate, score, merge, train, exportSpec, demo, report, convert, web];

/** The default the jobs apply to `key` of `command`, if any (shown in help and the README). */
export function defaultOf(command: string, key: string): unknown {
  const table = DEFAULTS as unknown as Record<string, Record<string, unknown>>;
  const own = table[command]?.[key];
  if (own !== undefined) return own;
  const encoding = ['encode', 'clean', 'mine', 'eval'].includes(command);
  return encoding ? table.model![key] : undefined;
}

/** The option reference as Markdown: one table per command (README.md holds it between markers). */
export function optionsMarkdown(): string {
  const row = (command: string, o: OptionSpec) => {
    const d = defaultOf(command, o.key);
    const shown = d === undefined || o.flags.startsWith('--no-') ? '' : [d].flat().map((x) => String(x).replace(PACKAGE_ROOT, '<package>')).join(',');
    const choices = o.choices ? ` (${o.choices.join(' \\| ')})` : '';
    const help = o.help.replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/>/g, '&gt;');
    return `| \`${o.flags.replace(/\|/g, '\\|')}\`${o.required ? ' (required)' : ''} | \`${o.key}\` | ${help}${choices} | ${shown && `\`${shown}\``} |`;
  };
  const table = (command: string, options: OptionSpec[]) => ['| flag | library key | what | default |', '|---|---|---|---|', ...options.map((o) => row(command, o))].join('\n');
  const encoding = COMMANDS.filter((c) => MODEL.every((o) => c.options.includes(o as OptionSpec)));
  const parts = [
    `Global: ${GLOBAL.map((o) => `\`${o.flags}\` (\`${o.key}\`): ${o.help}`).join('; ')}.`,
    `**Model options** (${encoding.map((c) => c.name).join(', ')}; \`shard\`, \`shardDir\`, \`shardDtype\` are the CLI's: the library runs a shard with \`runShard\`):`,
    table('encode', MODEL),
  ];
  for (const c of COMMANDS) {
    const own = c.options.filter((o) => !(MODEL as OptionSpec[]).includes(o) || !encoding.includes(c));
    parts.push(`**${c.name}**${c.argument ? ` \`${c.argument.name}\`` : ''}: ${c.description}${encoding.includes(c) ? '. The model options, and:' : '.'}`);
    if (own.length) parts.push(table(c.name, own));
  }
  return parts.join('\n\n');
}
