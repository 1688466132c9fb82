/**
 * `eval_holdout`: a seeded share of the training queries kept out of training and evaluated at
 * every epoch's end, so the best epoch can be kept without touching the test queries. The split
 * is by query text (all records of a query go one way); the held-out queries rank every passage
 * of the training file (their own and the training records'), their positives relevant.
 */
import type { QueryRecord } from '../data/records.js';
import type { RetrievalSet } from '../jobs/evaluate.js';
import { Rng } from '../util/rng.js';

/**
 * @example const { train, heldOut } = splitHoldout(records, 0.1, 42); // heldOut.queries.size ≈ 10% of the queries
 */
export function splitHoldout(records: QueryRecord[], share: number, seed: number): { train: QueryRecord[]; heldOut: RetrievalSet } {
  const queries = [...new Set(records.map((r) => r.query))];
  const count = Math.max(1, Math.round(share * queries.length));
  if (count >= queries.length) throw new Error(`eval_holdout: ${share} of ${queries.length} queries leaves none to train on`);
  const held = new Set(new Rng(seed).sample(queries, count));
  const ids = new Map<string, string>();
  const corpus: { id: string; text: string }[] = [];
  for (const r of records) {
    for (const t of [...r.pos, ...r.neg]) {
      if (ids.has(t)) continue;
      ids.set(t, `d${corpus.length}`);
      corpus.push({ id: ids.get(t)!, text: t });
    }
  }
  const heldOut: RetrievalSet = { queries: new Map(), corpus, qrels: new Map() };
  const qid = new Map([...held].map((q, i) => [q, `q${i}`]));
  for (const r of records) {
    const id = qid.get(r.query);
    if (id === undefined) continue;
    heldOut.queries.set(id, r.query);
    const rel = heldOut.qrels.get(id) ?? new Map<string, number>();
    r.pos.forEach((p) => rel.set(ids.get(p)!, 1));
    heldOut.qrels.set(id, rel);
  }
  return { train: records.filter((r) => !held.has(r.query)), heldOut };
}
