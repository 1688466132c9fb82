/**
 * How many mined negatives are false, and what removing them is worth (issue 13): the demo's
 * Cranfield split (seed 13, 30% of judged queries held out), but with ONE positive per training
 * query — the best-graded judgement, as users' query–passage pairs come — so the other judged
 * documents are unlabelled and mining can pick them. Mines as the demo does (ranks 10..100, 8
 * negatives) once plainly and once with the qrels as an oracle reranker, counts the judged-relevant
 * negatives in each, trains USE-Lite on each as the demo does, and evaluates both on the held-out
 * queries.
 *   node dist/scripts/false-negatives.js [OUT_DIR] [THREADS]
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBeir } from '../src/data/beir.js';
import { evaluateSet, type RetrievalSet } from '../src/jobs/evaluate.js';
import { mine } from '../src/jobs/mine.js';
import { train } from '../src/jobs/train.js';
import { resolveConfig } from '../src/training/config.js';
import { Rng } from '../src/util/rng.js';
import { repoRoot } from './make-models.js';

const out = process.argv[2] ?? join(tmpdir(), 'embedtune-false-negatives');
const threads = process.argv[3] ? Number(process.argv[3]) : undefined;
mkdirSync(out, { recursive: true });
const data = join(repoRoot, 'data', 'cranfield-full');
const set = await loadBeir(data);
const judged = [...set.queries.keys()].filter((q) => set.qrels.has(q));
const seed = 13;
const test = new Set(new Rng(seed).sample(judged, Math.round(judged.length * 0.3)));
const text = new Map(set.corpus.map((d) => [d.id, d.text]));
const relevant = new Map<string, Set<string>>();
const lines: string[] = [];
for (const q of judged) {
  if (test.has(q)) continue;
  const rel = [...set.qrels.get(q)!].filter(([id, g]) => g > 0 && text.has(id)).sort((a, b) => b[1] - a[1]);
  if (!rel.length) continue;
  relevant.set(set.queries.get(q)!, new Set(rel.map(([id]) => text.get(id)!)));
  lines.push(JSON.stringify({ query: set.queries.get(q), pos_passage: [text.get(rel[0]![0])], neg_passage: [] }));
}
const p = (f: string) => join(out, f);
writeFileSync(p('train.jsonl'), lines.join('\n') + '\n');
writeFileSync(p('corpus.jsonl'), set.corpus.map((d) => JSON.stringify({ text: d.text })).join('\n') + '\n');
const common = { model: 'use-lite', threads, quiet: true, cacheDir: p('cache') };
const testSet: RetrievalSet = { queries: new Map([...test].map((q) => [q, set.queries.get(q)!])), corpus: set.corpus, qrels: set.qrels };
const KS = [1, 3, 5, 10];

const falseNegatives = (file: string) => {
  const rows = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { query: string; neg_passage: string[] });
  const all = rows.reduce((n, r) => n + r.neg_passage.length, 0);
  const bad = rows.reduce((n, r) => n + r.neg_passage.filter((t) => relevant.get(r.query)!.has(t)).length, 0);
  return { negatives: all, judgedRelevant: bad, queriesWithOne: rows.filter((r) => r.neg_passage.some((t) => relevant.get(r.query)!.has(t))).length };
};

const base = await evaluateSet(common, testSet, KS);
const results: Record<string, unknown> = { trainQueries: lines.length, testQueries: test.size, base: base.metrics['ndcg@10'] };
for (const [name, reranker] of [['plain', undefined], ['oracle', `qrels:${data}`]] as const) {
  const mined = p(`train.${name}.jsonl`);
  await mine({ ...common, input: p('train.jsonl'), output: mined, candidatePool: p('corpus.jsonl'), rangeMin: 10, rangeMax: 100, numNegatives: 8, reranker });
  const counts = falseNegatives(mined);
  const { config } = resolveConfig({
    model_name_or_path: 'use-lite', train_data: mined, output_dir: p(`model.${name}`), per_device_train_batch_size: 32, num_train_epochs: 3,
    learning_rate: 5e-5, warmup_ratio: 0.1, weight_decay: 0.01, max_query_len: 64, max_passage_len: 128, group_size: 4,
    embedding_temperature: 0.05, pooling: 'mean', logging_steps: 5, save_steps: 100000, save_total_limit: 1, seed, threads: threads ?? null,
  });
  await train(config, { quiet: true });
  const tuned = await evaluateSet({ ...common, model: p(`model.${name}`), cacheDir: undefined }, testSet, KS);
  results[name] = { ...counts, ndcg10: tuned.metrics['ndcg@10'], mrr10: tuned.metrics['mrr@10'] };
  console.log(name, JSON.stringify(results[name]));
}
writeFileSync(p('results.json'), JSON.stringify(results, null, 2) + '\n');
console.log(JSON.stringify(results, null, 2));
