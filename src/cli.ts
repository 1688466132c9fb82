#!/usr/bin/env node
/** The `embedtune` command line: encode, clean, mine, eval. */
import './runtime/no-telemetry.js'; // before onnxruntime-node loads
import type { SafeDType } from './models/safetensors.js';
import { Command, InvalidArgumentError, Option } from 'commander';
import { encodeFile } from './jobs/encode.js';
import { clean } from './jobs/clean.js';
import { mine } from './jobs/mine.js';
import { evaluate } from './jobs/evaluate.js';
import { beirToRecords } from './jobs/convert.js';
import { demo } from './jobs/demo.js';
import { writeReport } from './jobs/report.js';
import { train } from './jobs/train.js';
import { exportCheckpoint } from './jobs/export.js';
import { merge, parseShard, runShard, type ShardJob } from './jobs/shard.js';
import { score } from './jobs/score.js';
import { removePending } from './util/atomic.js';
import { loadTrainConfig } from './training/config.js';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root (this file is dist/src/cli.js). */
const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
import { POOLINGS, type Pooling } from './models/pooling.js';
import { PAIR_TRUNCATIONS } from './models/tokenizer.js';
import { checkThreads } from './runtime/device.js';
import { stopWorkers } from './util/worker-rpc.js';

const int = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be an integer`);
  return n;
};
/** Sizes and counts: an integer ≥ 1. */
const positive = (name: string) => (v: string) => {
  const n = int(name)(v);
  if (n < 1) throw new InvalidArgumentError(`${name} must be at least 1`);
  return n;
};
const threads = (v: string) => {
  const n = positive('threads')(v);
  try {
    return checkThreads(n, 'threads');
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message.replace(/^threads: /, ''));
  }
};
const num = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number`);
  return n;
};
const intList = (v: string) => v.split(',').map((x) => int('k')(x.trim()));

/** Options every encoding command takes. */
function withModelOptions(cmd: Command): Command {
  return cmd
    .requiredOption('-m, --model <dir>', 'model folder (config.json, tokenizer.json, model.safetensors), alias (use-lite) or Hub id (BAAI/bge-m3)')
    .option('--revision <rev>', 'Hub branch, tag or commit (default main)')
    .addOption(new Option('--pooling <mode>', 'pooling (default: from 1_Pooling/config.json, else cls)').choices(POOLINGS as string[]))
    .option('--normalize', 'L2-normalise embeddings (default; encode: as the model\'s modules.json says)')
    .option('--no-normalize', 'do not L2-normalise embeddings')
    .option('--dimensions <n>', 'keep only the first n dimensions (Matryoshka)', positive('dimensions'))
    .option('--batch-size <n>', 'texts per batch', positive('batch-size'), 32)
    .option('--threads <n>', 'onnxruntime threads (default: all cores)', threads)
    .option('--cache-dir <dir>', 'on-disk embedding cache: a second run re-encodes nothing')
    .option('--device <d>', 'cpu (default), cuda[:i], webgpu, dml[:i] or coreml: where onnxruntime runs the model')
    .option('--devices <list>', 'several encoders in worker threads, blocks of texts dealt out (same rows as one): cpu:NxT (N workers × T threads) or cuda:0,cuda:1')
    .addOption(new Option('--quantize <type>', 'run linear layers as int8 GEMMs (weights per channel, activations per batch): ~2–3× faster on CPUs with VNNI').choices(['int8']))
    .option('--shard <i/N>', 'encode only shard i of N (auto/N: the index from JOB_COMPLETION_INDEX, SLURM_ARRAY_TASK_ID or AWS_BATCH_JOB_ARRAY_INDEX); then `embedtune merge`')
    .option('--shard-dir <dir>', 'where shards are written (default: <output>.shards)')
    .option('--shard-dtype <type>', 'f32 (default; the merge is byte-identical to one run) or f16 (half the shard files; rows rounded to half precision)')
    .option('-q, --quiet', 'no progress or summary output');
}

/** Runs a job, or with --shard only its shard's encoding (finished later by `embedtune merge`). */
async function runJob<O extends ReturnType<typeof modelOptions> & { output?: string }>(job: ShardJob, options: O, o: Record<string, unknown>, run: (options: O) => Promise<unknown>): Promise<void> {
  if (o.shard === undefined) {
    if (o.shardDir !== undefined) throw new Error('--shard-dir needs --shard');
    if (o.shardDtype !== undefined) throw new Error('--shard-dtype needs --shard');
    await run(options);
    return;
  }
  const shard = parseShard(String(o.shard));
  const dir = (o.shardDir as string | undefined) ?? (options.output ? `${options.output}.shards` : undefined);
  if (!dir) throw new Error(`--shard: give --shard-dir (or -o) for the shard files`);
  await runShard(job, options, shard, dir, (o.shardDtype as 'f32' | 'f16' | undefined) ?? 'f32');
}

function modelOptions(o: Record<string, unknown>) {
  return {
    model: o.model as string,
    pooling: o.pooling as Pooling | undefined,
    normalize: o.normalize as boolean | undefined,
    dimensions: o.dimensions as number | undefined,
    batchSize: o.batchSize as number,
    threads: o.threads as number | undefined,
    cacheDir: o.cacheDir as string | undefined,
    quiet: o.quiet as boolean | undefined,
    revision: o.revision as string | undefined,
    quantize: o.quantize as 'int8' | undefined,
    device: o.device as string | undefined,
    devices: o.devices as string | undefined,
  };
}

export function buildProgram(): Command {
  const program = new Command('embedtune')
    .description('Fine-tune text embedding models end to end: clean queries, mine hard negatives, train, evaluate.')
    .version('0.1.0')
    .addOption(new Option('--progress <how>', 'progress on stderr: bar (a bar on a terminal, lines in logs) or json (one JSON line per update)').choices(['bar', 'json']).default('bar'))
    .hook('preAction', (cmd) => {
      if (cmd.opts().progress === 'json') process.env.EMBEDTUNE_PROGRESS = 'json';
    })
    .showHelpAfterError();

  withModelOptions(program.command('encode').description('embed texts: a .txt file (one per line) or JSONL ({"text"} or {"query"})'))
    .requiredOption('-i, --input <file>', 'input texts')
    .requiredOption('-o, --output <file>', 'output: .npy (float32 matrix) or .jsonl ({"text","embedding"})')
    .option('--template <t>', 'text template, e.g. "query: {text}" (without {text}: a prefix)')
    .addOption(new Option('--prompt-name <role>', 'without --template: the model\'s saved prompt for this role (config_sentence_transformers.json)').choices(['query', 'passage']))
    .option('--max-length <n>', 'token limit per text', positive('max-length'))
    .option('--skip-invalid', 'skip bad JSONL records (counted and reported) instead of stopping')
    .action(async (o) => {
      await runJob('encode', { ...modelOptions(o), input: o.input, output: o.output, template: o.template, promptName: o.promptName, maxLength: o.maxLength, skipInvalid: o.skipInvalid }, o, encodeFile);
    });

  withModelOptions(program.command('clean').description('drop near-duplicate queries (spec 1.1), keeping input order'))
    .requiredOption('-i, --input <file>', 'JSONL records {query, pos_passage, neg_passage} or {query, pos, neg}')
    .requiredOption('-o, --output <file>', 'kept records, unchanged')
    .option('--report <file>', 'dropped queries with their match (default: <output>.dropped.jsonl)')
    .option('--threshold <x>', 'cosine similarity at or above which a query is a duplicate', num('threshold'), 0.7)
    .option('--query-template <t>', 'template for queries, e.g. "query: {text}"')
    .option('--max-length <n>', 'token limit per query', positive('max-length'))
    .option('--skip-invalid', 'skip bad records (counted and reported) instead of stopping')
    .action(async (o) => {
      await runJob('clean', { ...modelOptions(o), input: o.input, output: o.output, report: o.report, threshold: o.threshold, queryTemplate: o.queryTemplate, maxLength: o.maxLength, skipInvalid: o.skipInvalid }, o, clean);
    });

  withModelOptions(program.command('mine').description('mine hard negatives (spec 1.2) into neg_passage / neg'))
    .requiredOption('-i, --input <file>', 'JSONL records with positives')
    .requiredOption('-o, --output <file>', 'records with mined negatives')
    .option('--range-min <n>', 'first rank that may be sampled (after removing positives)', int('range-min'), 10)
    .option('--range-max <n>', 'rank past the last that may be sampled', int('range-max'), 210)
    .option('--rank-before-filters', 'count ranks before the score/margin filters (FlagEmbedding) instead of after them (sentence-transformers)')
    .option('--num-negatives <n>', 'negatives per query', positive('num-negatives'), 15)
    .addOption(new Option('--sampling <how>', 'random: seeded sample of the window; top: best ranked').choices(['random', 'top']).default('random'))
    .option('--seed <n>', 'sampling seed', int('seed'), 42)
    .option('--absolute-margin <x>', 'negative score must be ≤ positive score − x', num('absolute-margin'))
    .option('--relative-margin <x>', 'negative score must be ≤ positive score − |positive score| × x', num('relative-margin'))
    .option('--max-score <x>', 'skip candidates scoring above x', num('max-score'))
    .option('--min-score <x>', 'skip candidates scoring below x', num('min-score'))
    .option('--candidate-pool <path>', 'JSONL of {"text"} or a BEIR corpus (default: all passages in the input)')
    .option('--keep-existing', 'append to existing negatives instead of replacing them')
    .option('--query-template <t>', 'template for queries')
    .option('--passage-template <t>', 'template for passages')
    .option('--max-query-length <n>', 'token limit per query', positive('max-query-length'))
    .option('--max-passage-length <n>', 'token limit per passage', positive('max-passage-length'))
    .option('--stats <file>', 'score statistics JSON (default: <output>.stats.json)')
    .option('--reranker <dir>', 'cross-encoder that rescores each window (or qrels:BEIR_DIR[:split], an oracle from judgements); candidates it scores near or above the positive are dropped')
    .option('--rerank-margin <x>', 'with --reranker: drop candidates scoring ≥ positive − x (default 0)', num('rerank-margin'))
    .option('--rerank-relative-margin <x>', 'with --reranker: drop candidates scoring ≥ positive − |positive| × x', num('rerank-relative-margin'))
    .option('--rerank-label <n>', 'with --reranker: which logit is the score, for a model with several labels', int('rerank-label'))
    .addOption(new Option('--rerank-truncation <rule>', 'with --reranker: how a pair past its limit is cut (longest_first, only_second, flag)').choices(PAIR_TRUNCATIONS as string[]))
    .option('--pool-on-disk', 'keep the pool\'s embeddings in a temp file searched a block at a time (default: past 2 GiB of them)')
    .option('--index <kind>', 'exact (default) or hnsw: an approximate graph index for pools too big to search exactly in time')
    .option('--output-scores', 'write pos_scores / neg_scores (the reranker\'s with --reranker, else the embedding\'s)')
    .addOption(new Option('--output-format <f>', 'seed: the records with new negatives; else sentence-transformers\' rows').choices(['seed', 'triplet', 'n-tuple', 'labeled-pair', 'labeled-list']).default('seed'))
    .option('--skip-invalid', 'skip bad records (counted and reported) instead of stopping')
    .action(async (o) => {
      await runJob('mine', {
        ...modelOptions(o),
        input: o.input,
        output: o.output,
        rangeMin: o.rangeMin,
        rangeMax: o.rangeMax,
        rankBeforeFilters: o.rankBeforeFilters,
        numNegatives: o.numNegatives,
        sampling: o.sampling,
        seed: o.seed,
        absoluteMargin: o.absoluteMargin,
        relativeMargin: o.relativeMargin,
        maxScore: o.maxScore,
        minScore: o.minScore,
        candidatePool: o.candidatePool,
        keepExisting: o.keepExisting,
        queryTemplate: o.queryTemplate,
        passageTemplate: o.passageTemplate,
        maxQueryLength: o.maxQueryLength,
        maxPassageLength: o.maxPassageLength,
        statsPath: o.stats,
        skipInvalid: o.skipInvalid,
        reranker: o.reranker,
        rerankMargin: o.rerankMargin,
        rerankRelativeMargin: o.rerankRelativeMargin,
        rerankLabel: o.rerankLabel,
        rerankTruncation: o.rerankTruncation,
        outputScores: o.outputScores,
        outputFormat: o.outputFormat,
        poolOnDisk: o.poolOnDisk,
        index: o.index,
      }, o, mine);
    });

  withModelOptions(program.command('eval').description('hit rate, MRR, NDCG, recall, precision and MAP at k (spec 3)'))
    .requiredOption('-d, --data <path>', 'query–positive JSONL (spec mode) or a BEIR folder')
    .option('--negatives <file>', 'spec mode: JSONL of {"neg_passage": [...]} lines added to the corpus')
    .option('--split <name>', 'BEIR mode: qrels split', 'test')
    .option('--k <list>', 'cut-offs, comma-separated', intList, [1, 3, 5, 10])
    .option('--query-template <t>', 'template for queries')
    .option('--passage-template <t>', 'template for passages')
    .option('--max-query-length <n>', 'token limit per query', positive('max-query-length'))
    .option('--max-passage-length <n>', 'token limit per passage', positive('max-passage-length'))
    .option('-o, --output <file>', 'write the metrics as JSON')
    .option('--skip-invalid', 'skip bad records instead of stopping')
    .action(async (o) => {
      await runJob('eval', {
        ...modelOptions(o),
        data: o.data,
        negatives: o.negatives,
        split: o.split,
        ks: o.k,
        queryTemplate: o.queryTemplate,
        passageTemplate: o.passageTemplate,
        maxQueryLength: o.maxQueryLength,
        maxPassageLength: o.maxPassageLength,
        output: o.output,
        skipInvalid: o.skipInvalid,
      }, o, evaluate);
    });

  program
    .command('score')
    .description('add a reranker\'s pos_scores / neg_scores (FlagEmbedding\'s fields) to every record')
    .requiredOption('-r, --reranker <dir>', 'cross-encoder folder (BERT / XLM-R *ForSequenceClassification, e.g. bge-reranker-base) or Hub id')
    .requiredOption('-i, --input <file>', 'JSONL records with positives (and negatives)')
    .requiredOption('-o, --output <file>', 'the records with pos_scores and neg_scores')
    .option('--revision <rev>', 'Hub branch, tag or commit (default main)')
    .option('--label <n>', 'which logit is the score, for a model with several labels', int('label'))
    .option('--sigmoid', 'σ(logit) instead of the logit')
    .option('--max-length <n>', 'token limit per pair (default: the reranker\'s)', positive('max-length'))
    .addOption(new Option('--truncation <rule>', 'how a pair past the limit is cut: longest_first (CrossEncoder), only_second (the passage), flag (FlagEmbedding: query ≤ ¾)').choices(PAIR_TRUNCATIONS as string[]).default('longest_first'))
    .option('--batch-size <n>', 'pairs per batch', positive('batch-size'), 32)
    .option('--threads <n>', 'onnxruntime threads (default: all cores)', threads)
    .option('--device <d>', 'cpu (default), cuda[:i], webgpu, dml[:i] or coreml')
    .option('--cache-dir <dir>', 'on-disk score cache: a second run scores nothing')
    .option('--skip-invalid', 'skip bad records (counted and reported) instead of stopping')
    .option('-q, --quiet', 'no progress or summary output')
    .action(async (o) => {
      await score({ reranker: o.reranker, input: o.input, output: o.output, revision: o.revision, label: o.label, sigmoid: o.sigmoid, maxLength: o.maxLength, truncation: o.truncation, batchSize: o.batchSize, threads: o.threads, device: o.device, cacheDir: o.cacheDir, skipInvalid: o.skipInvalid, quiet: o.quiet });
    });

  program
    .command('merge')
    .description('combine the shards of a `--shard i/N` job and finish it: output identical to the unsharded run')
    .argument('<shard-dir>', 'the folder holding shard-0-of-N … shard-(N−1)-of-N')
    .option('-q, --quiet', 'no progress or summary output')
    .action(async (dir: string, o) => {
      await merge(dir, { quiet: o.quiet });
    });

  program
    .command('train')
    .description('contrastive fine-tuning (spec 2) from a JSON config (the spec\'s emb_argument.json keys)')
    .argument('[config]', 'JSON config, as `run_embedding.py emb_argument.json` takes it (or -c)')
    .option('-c, --config <file>', 'JSON config')
    .option('-m, --model <dir>', 'override model_name_or_path')
    .option('--train-data <path>', 'override train_data (file or folder)')
    .option('-o, --output-dir <dir>', 'override output_dir')
    .option('--max-steps <n>', 'override max_steps', int('max-steps'))
    .option('--num-train-epochs <n>', 'override num_train_epochs', num('num-train-epochs'))
    .option('--learning-rate <x>', 'override learning_rate', num('learning-rate'))
    .option('--batch-size <n>', 'override per_device_train_batch_size', positive('batch-size'))
    .option('--group-size <n>', 'override group_size', positive('group-size'))
    .option('--threads <n>', 'onnxruntime threads', threads)
    .option('--device <name>', 'override device: cpu, cuda[:i], webgpu, dml, coreml')
    .option('--devices <spec>', 'override devices: data-parallel workers, cpu:NxT or cuda:0,cuda:1')
    .option('--resume', 'continue from the newest complete checkpoint in output_dir')
    .option('--skip-invalid', 'skip bad training records (counted and reported) instead of stopping')
    .option('--set <key=value...>', 'override any config key (value parsed as JSON when it can be)')
    .option('-q, --quiet', 'no progress output')
    .action(async (positional: string | undefined, o) => {
      if (positional && o.config && positional !== o.config) throw new Error(`train: two configs given (${positional} and -c ${o.config}); give one`);
      o.config ??= positional;
      const overrides: Record<string, unknown> = {};
      const flags: [string, unknown][] = [
        ['model_name_or_path', o.model], ['train_data', o.trainData], ['output_dir', o.outputDir], ['max_steps', o.maxSteps],
        ['num_train_epochs', o.numTrainEpochs], ['learning_rate', o.learningRate], ['per_device_train_batch_size', o.batchSize],
        ['group_size', o.groupSize], ['threads', o.threads], ['resume_from_checkpoint', o.resume ? true : undefined],
        ['skip_invalid', o.skipInvalid ? true : undefined], ['device', o.device], ['devices', o.devices],
      ];
      for (const [k, v] of flags) if (v !== undefined) overrides[k] = v;
      for (const kv of (o.set as string[] | undefined) ?? []) {
        const at = kv.indexOf('=');
        if (at < 1) throw new Error(`--set ${kv}: expected key=value`);
        const raw = kv.slice(at + 1);
        let value: unknown = raw;
        try {
          value = JSON.parse(raw);
        } catch {
          /* a plain string */
        }
        overrides[kv.slice(0, at)] = value;
      }
      const { config, ignored, notes } = loadTrainConfig(o.config, overrides);
      if (ignored.length && !o.quiet) process.stderr.write(`train: ignoring keys that do not apply here: ${ignored.join(', ')}\n`);
      if (!o.quiet) for (const n of notes) process.stderr.write(`train: ${n}\n`);
      await train(config, { quiet: o.quiet });
    });

  program
    .command('export')
    .description('write a checkpoint as a model folder (Hugging Face + sentence-transformers + onnx/model.onnx)')
    .requiredOption('--checkpoint <dir>', 'a checkpoint-N folder of a train run')
    .requiredOption('-o, --output <dir>', 'where to write the model')
    .option('-m, --model <dir>', 'the base model (default: from the run\'s train_config.json)')
    .option('--dtype <type>', 'model.safetensors storage: f32, f16 or bf16 (default: the base model\'s)')
    .option('--adapter-only', 'a LoRA run: write the adapter alone in PEFT\'s layout (adapter_config.json + adapter_model.safetensors) instead of the merged model')
    .option('--overwrite', 'replace the output folder even if it is not an earlier embedtune export')
    .action(async (o) => {
      const dtypes: Record<string, SafeDType> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };
      if (o.dtype !== undefined && !dtypes[String(o.dtype).toLowerCase()]) throw new Error(`--dtype must be f32, f16 or bf16, got "${o.dtype}"`);
      await exportCheckpoint({ checkpoint: o.checkpoint, output: o.output, model: o.model, dtype: o.dtype && dtypes[String(o.dtype).toLowerCase()], adapterOnly: o.adapterOnly, overwrite: o.overwrite });
    });

  program
    .command('demo')
    .description('the whole pipeline on bundled Cranfield with USE-Lite: split, clean, mine, fine-tune, evaluate, report')
    .option('-m, --model <dir>', 'model directory or alias', 'use-lite')
    .option('--data <dir>', 'BEIR folder', join(PACKAGE_ROOT, 'data', 'cranfield-full'))
    .option('-o, --out-dir <dir>', 'where to write every step\'s output', join('runs', 'demo'))
    .option('--epochs <n>', 'training epochs', positive('epochs'), 3)
    .option('--seed <n>', 'train/test split and training seed', int('seed'), 13)
    .option('--reranker <dir>', 'cross-encoder (or qrels:BEIR_DIR) that drops likely false negatives while mining')
    .option('--threads <n>', 'onnxruntime threads (default: all cores)', threads)
    .option('-q, --quiet', 'no progress or summary output')
    .action(async (o) => {
      await demo({ model: o.model, data: o.data, outDir: o.outDir, epochs: o.epochs, seed: o.seed, threads: o.threads, quiet: o.quiet, reranker: o.reranker });
    });

  program
    .command('report')
    .description('write a self-contained report.html for a run directory (demo or train output)')
    .argument('<run-dir>', 'the run directory')
    .action(async (runDir) => {
      process.stderr.write(`report: ${writeReport(runDir)}\n`);
    });

  program
    .command('convert')
    .description('turn a BEIR folder into JSONL records {query, pos_passage, neg_passage}')
    .requiredOption('--beir <dir>', 'BEIR folder (corpus.jsonl, queries.jsonl, qrels/)')
    .requiredOption('-o, --output <file>', 'output JSONL')
    .option('--split <name>', 'qrels split', 'test')
    .option('--min-score <n>', 'lowest qrels grade counted as positive', int('min-score'), 1)
    .option('-q, --quiet', 'no summary')
    .action(async (o) => {
      await beirToRecords({ beir: o.beir, output: o.output, split: o.split, minScore: o.minScore, quiet: o.quiet });
    });
  return program;
}

// Ctrl-C / kill: remove the temp files being written (outputs are renamed into place only when
// complete, so nothing half-written is left) and exit 130 / 143. A running onnxruntime batch
// finishes first: session.run holds the event loop, and worker threads are stopped after their
// batch (one terminated inside a run aborts the process: exit 134); a second signal exits at once.
let interrupted = false;
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  process.on(signal, () => {
    if (interrupted) process.exit(code);
    interrupted = true;
    const n = removePending();
    process.stderr.write(`\nembedtune: interrupted (${signal}); ${n ? `removed ${n} unfinished output(s); ` : ''}outputs from before are untouched\n`);
    void stopWorkers().finally(() => process.exit(code));
  });
}

buildProgram()
  .parseAsync(process.argv)
  .catch((e: Error) => {
    // Bad input and bad settings are the user's to fix: the message, not our stack.
    process.stderr.write(`embedtune: ${e.message}\n`);
    if (process.env.EMBEDTUNE_DEBUG) process.stderr.write(`${e.stack}\n`);
    process.exitCode = 1;
  });
