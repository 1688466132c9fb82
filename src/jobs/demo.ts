/**
 * demo: the pipeline on the bundled Cranfield slice, end to end. Splits the judged queries
 * into train and test by a fixed seed, cleans the train queries, mines hard negatives from
 * the corpus, and evaluates on the held-out test queries.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadBeir } from '../data/beir.js';
import { writeAtomically, writeFileAtomic } from '../data/jsonl.js';
import { Rng } from '../util/rng.js';
import { clean } from './clean.js';
import { log, type ModelOptions, withEncoder } from './common.js';
import { evaluateSet, type EvaluationResult } from './evaluate.js';
import { mine } from './mine.js';

export interface DemoOptions extends Omit<ModelOptions, 'model'> {
  model: string;
  /** BEIR folder (default: the bundled Cranfield slice). */
  data: string;
  outDir: string;
  /** Fraction of judged queries held out for testing (default 0.3). */
  testFraction?: number;
  seed?: number;
}

export interface DemoResult {
  trainQueries: number;
  testQueries: number;
  kept: number;
  base: EvaluationResult;
}

export async function demo(o: DemoOptions): Promise<DemoResult> {
  mkdirSync(o.outDir, { recursive: true });
  const set = await loadBeir(o.data);
  const judged = [...set.queries.keys()].filter((q) => set.qrels.has(q));
  const rng = new Rng(o.seed ?? 13);
  const test = new Set(rng.sample(judged, Math.round(judged.length * (o.testFraction ?? 0.3))));
  const text = new Map(set.corpus.map((d) => [d.id, d.text]));
  const trainPath = join(o.outDir, 'train.jsonl');
  await writeAtomically(trainPath, async (w) => {
    for (const q of judged) {
      if (test.has(q)) continue;
      const pos = [...set.qrels.get(q)!].sort((a, b) => b[1] - a[1]).map(([id]) => text.get(id)).filter((t) => t !== undefined);
      await w.writeJson({ query: set.queries.get(q), pos_passage: pos, neg_passage: [] });
    }
  });
  const corpusPath = join(o.outDir, 'corpus.jsonl');
  await writeAtomically(corpusPath, async (w) => {
    for (const d of set.corpus) await w.writeJson({ text: d.text });
  });
  log(o.quiet, `demo: ${judged.length - test.size} train / ${test.size} test queries (seed ${o.seed ?? 13})`);

  return withEncoder(o, async (encoder) => {
    const common = { ...o, model: encoder };
    const cleaned = await clean({ ...common, input: trainPath, output: join(o.outDir, 'train.clean.jsonl') });
    await mine({ ...common, input: join(o.outDir, 'train.clean.jsonl'), output: join(o.outDir, 'train.mined.jsonl'), candidatePool: corpusPath, rangeMin: 3, rangeMax: 100, numNegatives: 7, relativeMargin: 0.02 });
    const testSet = { queries: new Map([...test].map((q) => [q, set.queries.get(q)!])), corpus: set.corpus, qrels: set.qrels };
    const base = await evaluateSet(common, testSet, [1, 3, 5, 10]);
    writeFileAtomic(join(o.outDir, 'eval.base.json'), JSON.stringify(base, null, 2) + '\n');
    log(o.quiet, `demo: done; outputs in ${o.outDir}`);
    return { trainQueries: judged.length - test.size, testQueries: test.size, kept: cleaned.kept, base };
  });
}
