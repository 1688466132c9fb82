/** The browser's jobs on records in memory: read JSONL, train for epochs, evaluate held-out queries. */
import { parseObject } from '../data/lines.js';
import { type QueryRecord, type RecordShape, toRecord } from '../data/record-shape.js';
import { meanMetrics, type MetricTable } from '../evaluation/metrics.js';
import { epochBatches, scheduleSteps } from '../training/sampler.js';
import { Rng } from '../util/rng.js';
import type { WebModel } from './model.js';
import { type WebTrainOptions, WebTrainer } from './trainer.js';

/**
 * JSONL records — the spec's `{query, pos_passage, neg_passage}` or FlagEmbedding's
 * `{query, pos, neg}` — checked as the Node jobs check them: a bad line is an error naming
 * `name`, the line and the field.
 * @example const records = parseRecords(await file.text(), file.name);
 */
export function parseRecords(text: string, name: string): QueryRecord[] {
  const out: QueryRecord[] = [];
  let shape: RecordShape | undefined;
  const encoder = new TextEncoder();
  text.replace(/^\uFEFF/, '').split('\n').forEach((raw, i) => {
    if (!raw.trim()) return;
    const l = { line: i + 1, text: raw, bytes: encoder.encode(raw) };
    const r = toRecord(name, l, parseObject(name, l), shape, { requirePositives: true });
    shape = r.shape;
    out.push(r.record);
  });
  if (!out.length) throw new Error(`${name}: no records`);
  return out;
}

export interface TrainProgress {
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number;
  lr: number;
}

/** How train() and fit() draw batches: the Node trainer's sampler options and seed. */
export interface FitOptions {
  epochs?: number;
  batchSize?: number;
  groupSize?: number;
  seed?: number;
  onStep?: (p: TrainProgress) => void;
}

const samplerOf = (o: FitOptions) => ({ batchSize: o.batchSize ?? 8, groupSize: o.groupSize ?? 4 });

/** The optimizer steps `fit` takes on `records` (what the learning-rate schedule spans). */
export function plannedSteps(records: QueryRecord[], o: FitOptions = {}): number {
  return scheduleSteps(records, samplerOf(o), o.seed ?? 42, o.epochs ?? 1);
}

/** Runs `trainer` over `records` for the epochs, batches drawn by the seeded sampler. */
export async function fit(trainer: WebTrainer, records: QueryRecord[], o: FitOptions = {}): Promise<void> {
  const rng = new Rng(o.seed ?? 42);
  const totalSteps = plannedSteps(records, o);
  for (let epoch = 0; epoch < (o.epochs ?? 1); epoch++) {
    for (const batch of epochBatches(records, samplerOf(o), rng)) {
      const r = await trainer.step(batch);
      o.onStep?.({ step: trainer.stepCount, totalSteps, epoch, loss: r.loss, lr: r.lr });
    }
  }
}

/**
 * Fine-tunes `model` on `records`: the Node trainer's sampler (seeded), step and schedule
 * (warm-up: `warmupRatio` of the steps, default 0.1).
 * @example const trainer = await train(model, records, { epochs: 1, batchSize: 8, groupSize: 4, onStep: (p) => console.log(p.loss) });
 */
export async function train(model: WebModel, records: QueryRecord[], o: WebTrainOptions & FitOptions & { warmupRatio?: number } = {}): Promise<WebTrainer> {
  const totalSteps = plannedSteps(records, o);
  const trainer = await WebTrainer.create(model, { ...o, totalSteps, warmupSteps: o.warmupSteps ?? Math.round((o.warmupRatio ?? 0.1) * totalSteps) });
  await fit(trainer, records, o);
  return trainer;
}

/**
 * Hit rate, MRR and nDCG at `ks` of `records`' queries over all their passages (positives
 * relevant), ranked by cosine (or dot, unnormalised) with the trainer's current weights.
 * @example const { metrics } = await evaluate(trainer, heldOut, [10]); // metrics['ndcg@10']
 */
export async function evaluate(trainer: WebTrainer, records: QueryRecord[], ks: number[] = [1, 3, 5, 10]): Promise<{ metrics: MetricTable; queries: number }> {
  const corpus = [...new Set(records.flatMap((r) => [...r.pos, ...r.neg]))];
  const ids = new Map(corpus.map((t, i) => [t, `d${i}`]));
  const q = await trainer.encode(records.map((r) => r.query), 'query');
  const p = await trainer.encode(corpus, 'passage');
  const dim = q.dim;
  const rankings = new Map<string, string[]>();
  const qrels = new Map<string, Map<string, number>>();
  records.forEach((r, i) => {
    const scores = corpus.map((_, j) => {
      let s = 0;
      for (let k = 0; k < dim; k++) s += q.data[i * dim + k]! * p.data[j * dim + k]!;
      return s;
    });
    const order = corpus.map((_, j) => j).sort((a, b) => scores[b]! - scores[a]! || a - b);
    rankings.set(`q${i}`, order.map((j) => `d${j}`));
    qrels.set(`q${i}`, new Map(r.pos.map((t) => [ids.get(t)!, 1])));
  });
  return meanMetrics(rankings, qrels, ks);
}
