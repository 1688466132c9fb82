/** convert: a BEIR folder → JSONL training records in the spec's shape. */
import { loadBeir, unknownIdsWarning } from '../data/beir.js';
import { checkOutput, writeAtomically } from '../data/jsonl.js';
import { openRun, type RunOptions } from '../run.js';
import { DEFAULTS } from '../options.js';

export interface ConvertOptions extends RunOptions {
  beir: string;
  output: string;
  split?: string;
  /** Lowest qrels grade that counts as a positive (default 1). */
  minScore?: number;
}

/**
 * One record per judged query: `{query, pos_passage: [relevant texts, best grade first], neg_passage: []}`.
 * @example
 *   await beirToRecords({ beir: 'data/cranfield', output: 'cranfield.jsonl' });
 */
export async function beirToRecords(o: ConvertOptions): Promise<number> {
  await using run = openRun(o);
  const split = o.split ?? DEFAULTS.convert.split;
  checkOutput(o.output, [o.beir]);
  const set = await loadBeir(o.beir, split);
  const warning = unknownIdsWarning(o.beir, set.unknown);
  if (warning) run.log(`convert: ${warning}`);
  const text = new Map(set.corpus.map((d) => [d.id, d.text]));
  const records: object[] = [];
  for (const [qid, query] of set.queries) {
    const rel = [...(set.qrels.get(qid) ?? [])].filter(([id, s]) => s >= (o.minScore ?? DEFAULTS.convert.minScore) && text.has(id)).sort((a, b) => b[1] - a[1]);
    if (rel.length) records.push({ query, pos_passage: rel.map(([id]) => text.get(id)), neg_passage: [] });
  }
  const n = records.length;
  if (n === 0) throw new Error(`${o.beir}: no query has a judged document with score ≥ ${o.minScore ?? DEFAULTS.convert.minScore} in qrels/${split}.tsv: nothing to convert`);
  await writeAtomically(o.output, async (w) => {
    for (const r of records) await w.writeJson(r);
  });
  run.log(`convert: ${n} records → ${o.output}`);
  return n;
}
