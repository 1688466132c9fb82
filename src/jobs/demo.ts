/**
 * demo: the whole pipeline on bundled English data with a real pretrained model (USE-Lite by
 * default). Splits the judged Cranfield queries into train and test by a fixed seed, cleans the
 * train queries, mines hard negatives from the corpus, fine-tunes, evaluates base and
 * fine-tuned on the held-out test queries, and writes an HTML report.
 */
import { openRun, type RunOptions } from '../run.js';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadBeir } from '../data/beir.js';
import { loadRecords } from '../data/records.js';
import { writeAtomically, writeFileAtomic } from '../data/jsonl.js';
import { resolveConfig } from '../training/config.js';
import { Rng } from '../util/rng.js';
import { clean } from './clean.js';
import { evaluateSet, type EvaluationResult, type RetrievalSet } from './evaluate.js';
import { mine } from './mine.js';
import { writeReport } from './report.js';
import { train } from './train.js';
import { DEFAULTS } from '../options.js';

export interface DemoOptions extends RunOptions {
  /** Model directory or alias (default `use-lite`). */
  model?: string;
  /** BEIR folder (default: the bundled Cranfield collection). */
  data?: string;
  /** Where every step's output goes (default `runs/demo`). */
  outDir?: string;
  /** Fraction of judged queries held out for testing (default 0.3). */
  testFraction?: number;
  seed?: number;
  /** Training epochs. */
  epochs?: number;
  /** Peak learning rate (default 5e-5, for a pretrained model). */
  learningRate?: number;
  threads?: number;
  /** A cross-encoder (or `qrels:DIR`) that drops likely false negatives while mining. */
  reranker?: string;
  /** Mining's BM25 candidates (`bm25[:k]`, mine's `lexical`; `none`: the model's neighbours only). */
  lexical?: string;
  /** Re-mine with the current weights every n epochs (the train config's `remine_every`; 0: never). */
  remineEvery?: number;
  /** A share of the training queries held out to pick the best epoch (`eval_holdout`; 0: none). */
  evalHoldout?: number;
}

export interface DemoResult {
  trainQueries: number;
  testQueries: number;
  kept: number;
  base: EvaluationResult;
  tuned: EvaluationResult;
  report: string;
}

const KS = [1, 3, 5, 10];

export async function demo(o: DemoOptions): Promise<DemoResult> {
  // One run for every step: each shows its progress as the demo does.
  await using run = openRun(o);
  const out = o.outDir ?? DEFAULTS.demo.outDir;
  const model = o.model ?? DEFAULTS.demo.model;
  mkdirSync(out, { recursive: true });
  const set = await loadBeir(o.data ?? DEFAULTS.demo.data);
  const judged = [...set.queries.keys()].filter((q) => set.qrels.has(q));
  const seed = o.seed ?? DEFAULTS.demo.seed;
  const lexical: string = o.lexical ?? DEFAULTS.demo.lexical;
  const test = new Set(new Rng(seed).sample(judged, Math.round(judged.length * (o.testFraction ?? 0.3))));
  const text = new Map(set.corpus.map((d) => [d.id, d.text]));
  const p = (f: string) => join(out, f);
  await writeAtomically(p('train.jsonl'), async (w) => {
    for (const q of judged) {
      if (test.has(q)) continue;
      const pos = [...set.qrels.get(q)!].map(([id]) => text.get(id)).filter((t) => t !== undefined);
      await w.writeJson({ query: set.queries.get(q), pos_passage: pos, neg_passage: [] });
    }
  });
  await writeAtomically(p('corpus.jsonl'), async (w) => {
    for (const d of set.corpus) await w.writeJson({ text: d.text });
  });
  run.log(`demo: ${judged.length - test.size} train / ${test.size} test queries (seed ${seed}), corpus ${set.corpus.length}`);
  const common = { model, threads: o.threads, run, cacheDir: join(out, 'cache') };

  const cleaned = await clean({ ...common, input: p('train.jsonl'), output: p('train.clean.jsonl'), threshold: 0.9 });
  const mining = { candidatePool: p('corpus.jsonl'), rangeMin: 10, rangeMax: 100, numNegatives: 8, reranker: o.reranker, lexical: lexical === 'none' ? undefined : lexical };
  await mine({ ...common, input: p('train.clean.jsonl'), output: p('train.mined.jsonl'), statsPath: p('mine.stats.json'), ...mining });
  // One training record per (query, relevant document), sharing the query's mined negatives.
  const { records } = await loadRecords(p('train.mined.jsonl'), { requirePositives: true });
  // A query whose every candidate the reranker dropped has no negative to train with: left out.
  const bare = records.filter((r) => !r.neg.length).length;
  if (bare) run.log(`demo: ${bare} training queries have no negatives left after the reranker and are left out`);
  await writeAtomically(p('train.pairs.jsonl'), async (w) => {
    for (const r of records) if (r.neg.length) for (const pos of r.pos) await w.writeJson({ query: r.query, pos_passage: [pos], neg_passage: r.neg });
  });

  const testSet: RetrievalSet = { queries: new Map([...test].map((q) => [q, set.queries.get(q)!])), corpus: set.corpus, qrels: set.qrels };
  const base = await evaluateSet({ ...common, quiet: true }, testSet, KS);
  writeFileAtomic(p('eval.base.json'), JSON.stringify(base, null, 2) + '\n');
  const runDir = p('model');
  const { config } = resolveConfig({
    model_name_or_path: model,
    train_data: p('train.pairs.jsonl'),
    output_dir: runDir,
    per_device_train_batch_size: 32,
    num_train_epochs: o.epochs ?? DEFAULTS.demo.epochs,
    learning_rate: o.learningRate ?? 5e-5,
    warmup_ratio: 0.1,
    weight_decay: 0.01,
    max_query_len: 64,
    max_passage_len: 128,
    group_size: 4,
    embedding_temperature: 0.05,
    pooling: 'mean',
    logging_steps: 5,
    save_steps: 100000,
    save_total_limit: 1,
    seed,
    threads: o.threads ?? null,
    remine_every: o.remineEvery ?? DEFAULTS.demo.remineEvery,
    remine_options: Object.fromEntries(Object.entries(mining).filter(([, v]) => v !== undefined)),
    eval_holdout: o.evalHoldout ?? DEFAULTS.demo.evalHoldout,
  });
  await train(config, { run });
  const tuned = await evaluateSet({ ...common, model: runDir, cacheDir: undefined, quiet: true }, testSet, KS);
  writeFileAtomic(p('eval.tuned.json'), JSON.stringify(tuned, null, 2) + '\n');
  const report = writeReport(out);
  const row = (name: string) => `${name.padEnd(10)} ${KS.map((k) => `${base.metrics[`${name}@${k}`]!.toFixed(4)} → ${tuned.metrics[`${name}@${k}`]!.toFixed(4)}`).join('   ')}`;
  run.log(`demo: held-out test queries, base → fine-tuned (@${KS.join(', @')}):\n${['ndcg', 'mrr', 'hit', 'recall'].map(row).join('\n')}\ndemo: report: ${report}`);
  return { trainQueries: judged.length - test.size, testQueries: test.size, kept: cleaned.kept, base, tuned, report };
}
