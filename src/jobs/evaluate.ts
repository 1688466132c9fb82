/**
 * evaluate (spec 3): rank a corpus for each query and report hit rate, MRR, NDCG, recall,
 * precision and MAP at k.
 *
 * Spec mode: a query–positive file (`{query, pos_passage}` or `{query, pos}`) plus an optional
 * negatives file (`{neg_passage: [...]}` or `{neg: [...]}` per line). The corpus is every
 * positive plus every negative (including negatives inside the query file); identical texts
 * are one document, so a text that is one query's positive and another's negative is counted
 * once and is relevant only to the first.
 * BEIR mode: a folder with corpus.jsonl, queries.jsonl and qrels/<split>.tsv; graded scores
 * are NDCG gains.
 */
import { isBeirFolder, loadBeir, unknownIdsWarning } from '../data/beir.js';
import { checkOutput, DataError, type Line, parseObject, readLines, writeFileAtomic } from '../data/jsonl.js';
import { readRecords, SkipReport } from '../data/records.js';
import { formatMetrics, meanMetrics, type MetricTable } from '../evaluation/metrics.js';
import { Bm25Index } from '../search/bm25.js';
import { ExactSearch, type SearchOptions, type Vectors } from '../search/topk.js';
import { encodeAll, modelReads, type ModelOptions, requireRecords, withEncoder } from './common.js';
import { openRun, type Run } from '../run.js';
import { evaluateM3, type M3Mode } from './m3-eval.js';
import { DEFAULTS } from '../options.js';

export interface EvaluateOptions extends ModelOptions {
  /** A query–positive JSONL file (spec mode) or a BEIR folder. */
  data: string;
  /** Spec mode: a JSONL file of extra negatives. */
  negatives?: string;
  /** BEIR mode: the qrels split (default `test`). */
  split?: string;
  /** Cut-offs (default 1, 3, 5, 10). */
  ks?: number[];
  queryTemplate?: string;
  passageTemplate?: string;
  maxQueryLength?: number;
  maxPassageLength?: number;
  /** Write the metrics here as JSON. */
  output?: string;
  skipInvalid?: boolean;
  /**
   * bge-m3's retrieval modes to report (dense, sparse, colbert, hybrid: jobs/m3-eval.ts); the
   * model needs its heads. Unset: the embedding alone.
   */
  modes?: M3Mode[];
  /** With `modes`: dense and sparse candidates per query that ColBERT and the hybrid rescore (default 100). */
  candidates?: number;
  /**
   * `bm25`: also report BM25 alone (search/bm25.ts) and the dense and BM25 rankings fused by
   * reciprocal rank (Σ 1 / (60 + rank) over each one's top `candidates`), next to dense.
   */
  hybrid?: 'bm25';
}

export interface EvaluationResult {
  metrics: MetricTable;
  queries: number;
  corpusSize: number;
  ks: number[];
  /** With `skipInvalid`: records and negatives lines skipped, by reason. */
  skipped?: { total: number; reasons: Record<string, number> };
  /** With `modes` or `hybrid`: the metrics of each (`metrics` is the first's: dense). */
  modes?: Record<string, MetricTable>;
}

export interface RetrievalSet {
  /** query id → text */
  queries: Map<string, string>;
  corpus: { id: string; text: string }[];
  qrels: Map<string, Map<string, number>>;
  /** Spec mode with `skipInvalid`: what was skipped, from the query and negatives files. */
  skips?: SkipReport;
}

/** Builds the spec-mode corpus and relevance judgements from the query and negatives files. */
export async function specRetrievalSet(data: string, negatives?: string, skipInvalid?: boolean): Promise<RetrievalSet> {
  const ids = new Map<string, string>();
  const corpus: { id: string; text: string }[] = [];
  const docId = (text: string) => {
    let id = ids.get(text);
    if (id === undefined) {
      id = `d${corpus.length}`;
      ids.set(text, id);
      corpus.push({ id, text });
    }
    return id;
  };
  const queries = new Map<string, string>();
  const qrels = new Map<string, Map<string, number>>();
  const negs: string[] = [];
  const skips = new SkipReport();
  for await (const r of readRecords(data, { requirePositives: true, skipInvalid }, skips)) {
    const qid = `q${r.line}`;
    queries.set(qid, r.query);
    qrels.set(qid, new Map(r.pos.map((p) => [docId(p), 1])));
    negs.push(...r.neg);
  }
  requireRecords(queries.size, data, skips.total);
  if (negatives) {
    const bad = (e: DataError) => {
      if (!skipInvalid) throw e;
      skips.add(e);
    };
    let lines = 0;
    for await (const l of readLines(negatives, skipInvalid ? bad : undefined)) {
      lines++;
      try {
        negs.push(...negativeTexts(negatives, l));
      } catch (e) {
        if (!(e instanceof DataError)) throw e;
        bad(e);
      }
    }
    // As every input: zero records is an error, not a silent no-op.
    if (!lines) throw new Error(`${negatives}: no negatives to add to the corpus (the file is empty)`);
  }
  negs.forEach(docId);
  return { queries, corpus, qrels, skips };
}

/** The texts of one negatives-file line: `{neg_passage: [...]}` or `{neg: [...]}`. */
function negativeTexts(path: string, l: Line): string[] {
  const o = parseObject(path, l);
  const field = 'neg_passage' in o ? 'neg_passage' : 'neg';
  const v = o[field];
  if (!Array.isArray(v)) throw new DataError(path, l.line, v === undefined ? 'missing' : 'expected a list of strings', field);
  v.forEach((t, i) => {
    if (typeof t !== 'string') throw new DataError(path, l.line, 'expected a string', `${field}[${i}]`);
  });
  return v as string[];
}

/** Embeds queries and corpus and returns each query's ranking of corpus ids (best first). */
export async function rank(o: ModelOptions & Omit<EvaluateOptions, 'data' | 'model'>, set: RetrievalSet, depth: number): Promise<Map<string, string[]>> {
  const qids = [...set.queries.keys()].filter((q) => set.qrels.has(q));
  await using run = openRun(o);
  return await withEncoder(o, run, async (encoder) => {
    const common = { batchSize: o.batchSize, quiet: o.quiet, progress: run.progress, cacheDir: o.cacheDir };
    const [q, c] = await encodeAll(encoder, [
      [qids.map((id) => set.queries.get(id)!), { ...common, maxLength: o.maxQueryLength, template: o.queryTemplate, role: 'query', label: 'eval: encode queries' }],
      [set.corpus.map((d) => d.text), { ...common, maxLength: o.maxPassageLength, template: o.passageTemplate, role: 'passage', label: 'eval: encode corpus' }],
    ]);
    await using search = await ExactSearch.create({ threads: o.threads });
    const top = await topIds(search, q!, c!, set.corpus.map((d) => d.id), depth, { label: 'eval: search', progress: run.progress });
    return new Map(qids.map((qid, i) => [qid, top[i]!]));
  });
}

/**
 * Each query's `depth` best corpus ids under the total order (−score, id as a string), as
 * sentence-transformers' InformationRetrievalEvaluator ranks: among texts tied at the cutoff the
 * lowest ids are kept. Search returns a few extra rows; a query whose tie at the cutoff runs to
 * the end of what came back is searched again, deeper, so the order is exact.
 * @example
 *   const top = await topIds(search, queries, corpus, ['d0', 'd1', 'd2'], 2);
 *   top[0]; // e.g. ['d2', 'd0']
 */
export async function topIds(search: ExactSearch, q: Vectors, c: Vectors, ids: string[], depth: number, o: SearchOptions = {}): Promise<string[][]> {
  const out: string[][] = new Array(q.count);
  let pending = Array.from({ length: q.count }, (_, i) => i);
  let fetch = Math.min(c.count, depth + 8);
  while (pending.length) {
    const sub = pending.length === q.count ? q : { dim: q.dim, count: pending.length, data: gatherRows(q, pending) };
    const hits = await search.search(sub, c, fetch, pending.length === q.count ? o : { ...o, progress: undefined });
    const k = hits.k;
    const deeper: number[] = [];
    pending.forEach((qi, i) => {
      const s = hits.scores.subarray(i * k, (i + 1) * k);
      const cut = Math.min(depth, k) - 1;
      if (k < c.count && cut >= 0 && s[k - 1] === s[cut]) return deeper.push(qi);
      const row = Array.from(hits.indices.subarray(i * k, (i + 1) * k), (j, r) => ({ id: ids[j]!, score: s[r]! }));
      out[qi] = tiesById(row).slice(0, depth);
    });
    pending = deeper;
    fetch = Math.min(c.count, fetch * 4);
  }
  return out;
}

function gatherRows(v: Vectors, rows: number[]): Float32Array {
  const data = new Float32Array(rows.length * v.dim);
  rows.forEach((r, i) => data.set(v.data.subarray(r * v.dim, (r + 1) * v.dim), i * v.dim));
  return data;
}

/**
 * Ids best first; equal scores (duplicate texts) ordered by id compared as strings, as
 * sentence-transformers' InformationRetrievalEvaluator orders them, so both give the same metrics.
 */
export function tiesById(row: { id: string; score: number }[]): string[] {
  return row.sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map((x) => x.id);
}

/** Evaluates an in-memory retrieval set (e.g. a held-out subset of a BEIR folder's queries). */
export async function evaluateSet(o: ModelOptions & Omit<EvaluateOptions, 'data' | 'model'>, set: RetrievalSet, ks: number[]): Promise<EvaluationResult> {
  await using run = openRun(o);
  const rankings = await rank({ ...o, run }, set, ks[ks.length - 1]!);
  const { metrics, queries } = meanMetrics(rankings, set.qrels, ks);
  run.log(`eval: ${queries} queries, corpus ${set.corpus.length}\n${formatMetrics(metrics, ks)}`);
  return { metrics, queries, corpusSize: set.corpus.length, ks };
}

/** evaluate with bge-m3's modes: each mode's metrics, the first as `metrics`. */
async function evaluateModes(o: EvaluateOptions, set: RetrievalSet, ks: number[], run: Run): Promise<EvaluationResult> {
  if (typeof o.model !== 'string') throw new Error('modes: give the model as a folder or Hub id (its heads are read from there)');
  const { byMode, queries } = await evaluateM3({ ...o, model: o.model, modes: o.modes! }, set, ks, run);
  for (const [mode, metrics] of Object.entries(byMode)) run.log(`eval (${mode}): ${queries} queries, corpus ${set.corpus.length}\n${formatMetrics(metrics, ks)}`);
  return { metrics: byMode[o.modes![0]!]!, queries, corpusSize: set.corpus.length, ks, modes: byMode };
}

/** Reciprocal-rank fusion's constant (Cormack et al., 2009). */
export const RRF_K = 60;

/**
 * Rankings fused by reciprocal rank: each id scores Σ 1 / (RRF_K + rank) over the lists it is
 * in (rank from 1); best first, ties by id.
 * @example fuseRankings([['a', 'b'], ['b', 'c']], 3); // ['b', 'a', 'c']
 */
export function fuseRankings(lists: string[][], depth: number): string[] {
  const score = new Map<string, number>();
  for (const list of lists) list.forEach((id, r) => score.set(id, (score.get(id) ?? 0) + 1 / (RRF_K + r + 1)));
  return tiesById([...score].map(([id, s]) => ({ id, score: s }))).slice(0, depth);
}

/** evaluate with `hybrid: 'bm25'`: dense, BM25, and the two fused, each query's lists `candidates` deep. */
async function evaluateHybrid(o: EvaluateOptions, set: RetrievalSet, ks: number[], run: Run): Promise<EvaluationResult> {
  const depth = Math.max(ks[ks.length - 1]!, o.candidates ?? 100);
  const dense = await rank({ ...o, run }, set, depth);
  const ids = set.corpus.map((d) => d.id);
  const index = Bm25Index.build(set.corpus.map((d) => d.text));
  const bm25 = new Map([...dense.keys()].map((q) => [q, tiesById(index.search(set.queries.get(q)!, index.size).map((r) => ({ id: ids[r.row]!, score: r.score }))).slice(0, depth)]));
  const fused = new Map([...dense.keys()].map((q) => [q, fuseRankings([dense.get(q)!, bm25.get(q)!], depth)]));
  const modes: Record<string, MetricTable> = {};
  let queries = 0;
  for (const [name, r] of [['dense', dense], ['bm25', bm25], ['dense+bm25', fused]] as const) {
    const m = meanMetrics(r, set.qrels, ks);
    [modes[name], queries] = [m.metrics, m.queries];
    run.log(`eval (${name}): ${queries} queries, corpus ${set.corpus.length}\n${formatMetrics(m.metrics, ks)}`);
  }
  return { metrics: modes.dense!, queries, corpusSize: set.corpus.length, ks, modes };
}

/**
 * @example
 *   const r = await evaluate({ model: 'runs/ft', data: 'dev.jsonl', negatives: 'dev_neg.jsonl' });
 *   console.log(r.metrics['ndcg@10']);
 */
export async function evaluate(job: EvaluateOptions): Promise<EvaluationResult> {
  await using run = openRun(job);
  const { options: o, reads } = await modelReads({ ...job, run }, run);
  const ks = [...new Set(o.ks ?? DEFAULTS.eval.ks)].sort((a, b) => a - b);
  if (ks.some((k) => !Number.isInteger(k) || k < 1)) throw new Error(`k values must be positive integers, got ${ks.join(',')}`);
  const beir = isBeirFolder(o.data);
  if (o.output) checkOutput(o.output, [o.data, ...(o.negatives ? [o.negatives] : []), ...reads]);
  let set: RetrievalSet;
  if (beir) {
    const dataset = await loadBeir(o.data, o.split ?? DEFAULTS.eval.split);
    const warning = unknownIdsWarning(o.data, dataset.unknown);
    if (warning) run.log(`eval: ${warning}`);
    set = dataset;
  } else set = await specRetrievalSet(o.data, o.negatives, o.skipInvalid);
  if (o.skipInvalid && set.skips) run.log(`eval: ${set.skips.summary()}`);
  if (o.hybrid !== undefined && o.hybrid !== 'bm25') throw new Error(`eval: hybrid must be bm25, got ${JSON.stringify(o.hybrid)}`);
  if (o.modes?.length && o.hybrid) throw new Error('eval: give --modes (bge-m3) or --hybrid bm25, not both');
  const result: EvaluationResult = o.modes?.length ? await evaluateModes(o, set, ks, run) : o.hybrid ? await evaluateHybrid(o, set, ks, run) : await evaluateSet(o, set, ks);
  if (o.skipInvalid && set.skips) result.skipped = { total: set.skips.total, reasons: Object.fromEntries(set.skips.counts) };
  if (o.output) writeFileAtomic(o.output, JSON.stringify({ ...result, data: o.data, model: typeof o.model === 'string' ? o.model : o.model.dir }, null, 2) + '\n');
  return result;
}
