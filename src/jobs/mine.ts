/**
 * mine (spec 1.2): embed queries and a candidate pool, retrieve each query's nearest passages,
 * and keep as hard negatives those that are not its positives, inside a rank window, and
 * (optionally) safely below the positive's score — the false-negative guard. Options follow
 * FlagEmbedding's hn_mine and sentence-transformers' mine_hard_negatives.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readBeirCorpus } from '../data/beir.js';
import { checkOutput, DataError, parseObject, readLines, writeTogether } from '../data/jsonl.js';
import { FIELDS, type RecordShape, readRecords, SkipReport } from '../data/records.js';
import { HnswSearch, sampledRecall } from '../search/hnsw.js';
import { ExactSearch, type TopK } from '../search/topk.js';
import { RowFile } from '../search/rows.js';
import { tempPathFor } from '../util/atomic.js';
import { Rng } from '../util/rng.js';
import { encodeAll, modelReads, type ModelOptions, requireRecords, sidePath, type TextEncoder, withEncoder } from './common.js';
import { M3Encoder } from '../models/m3.js';
import { Bm25Index } from '../search/bm25.js';
import { encodeM3, type M3Mode, pairScore, rankModes } from './m3-rank.js';
import { openRun, type Run } from '../run.js';
import { Scope } from '../util/scope.js';
import type { Embeddings } from '../models/encoder.js';
import { checkReranker, rerankerFolders, rerankGuard, resolveReranker, type RerankOptions } from './rerank-guard.js';
import { formatRows, OUTPUT_FORMATS, type OutputFormat } from './mine-formats.js';
import type { PairTruncation } from '../models/tokenizer.js';
import { float32Value } from '../util/float.js';
import { describeScores, formatScoreTable, histogram, round, type ScoreSummary } from './stats.js';
import { DEFAULTS } from '../options.js';

export interface MineOptions extends ModelOptions {
  input: string;
  output: string;
  /** First rank (0-based, after removing the query's positives) that may be sampled. Default 10. */
  rangeMin?: number;
  /** Rank past the last that may be sampled. Default 210 (FlagEmbedding's "10-210"). */
  rangeMax?: number;
  /** Negatives per query. Default 15. */
  numNegatives?: number;
  /** Count ranks before the score filters (FlagEmbedding's order); default after them (sentence-transformers'). */
  rankBeforeFilters?: boolean;
  /** `random`: a seeded sample of the window (FlagEmbedding); `top`: the best-ranked ones. */
  sampling?: 'random' | 'top';
  seed?: number;
  /** A negative must score ≤ positive − margin. */
  absoluteMargin?: number;
  /** A negative must score ≤ positive × (1 − margin). */
  relativeMargin?: number;
  /** Skip candidates scoring above this. */
  maxScore?: number;
  /** Skip candidates scoring below this. */
  minScore?: number;
  /** JSONL of `{"text"}` lines, or a BEIR corpus (folder or corpus.jsonl); default: every positive and negative in the input. */
  candidatePool?: string;
  /** Append to a record's existing negatives instead of replacing them. */
  keepExisting?: boolean;
  queryTemplate?: string;
  passageTemplate?: string;
  maxQueryLength?: number;
  maxPassageLength?: number;
  skipInvalid?: boolean;
  /** Score statistics JSON; default `<output>.stats.json`. */
  statsPath?: string;
  /**
   * A cross-encoder (folder, Hub id, loaded) or `qrels:BEIR_DIR[:split]` (an oracle): window
   * candidates it scores within `rerankMargin` of the positive, or above, are dropped as likely
   * false negatives (see rerank-guard.ts).
   */
  reranker?: RerankOptions['reranker'];
  rerankMargin?: number;
  rerankRelativeMargin?: number;
  /** The reranker's logit to use, for a model with several labels. */
  rerankLabel?: number;
  /** How the reranker cuts a pair past its limit (default `longest_first`, as CrossEncoder). */
  rerankTruncation?: PairTruncation;
  /** Write `pos_scores` / `neg_scores` (the reranker's when there is one, else the embedding's). */
  outputScores?: boolean;
  /** `seed` (default: the records with new negatives) or a sentence-transformers format (mine-formats.ts). */
  outputFormat?: OutputFormat;
  /**
   * Keep the pool's embeddings in a temp file beside the output, searched a block at a time, so a
   * pool bigger than memory can be mined (default: when they would take more than 2 GiB).
   */
  poolOnDisk?: boolean;
  /**
   * `exact` (default) or `hnsw`: an approximate graph index (usearch, int8) for pools exact
   * search cannot serve in time; its candidates are rescored against the pool's rows.
   */
  index?: 'exact' | 'hnsw';
  /**
   * Rank candidates by one of bge-m3's modes (a folder with its heads): `sparse` over the whole
   * pool, `colbert` or `hybrid` rescoring the dense and sparse top `candidates` (m3-rank.ts);
   * margins and score filters then apply to that mode's scores. Default: the dense embedding.
   */
  mode?: M3Mode;
  /** With `mode` colbert or hybrid: dense and sparse candidates per query to rescore (default 100, at least the window's depth). */
  candidates?: number;
  /**
   * `bm25` or `bm25:K`: the query's BM25 top K over the pool (default 30; search/bm25.ts), its own
   * text, positives and kept negatives excluded, scored by the model and passed through the same
   * score filters and margins, join its window after the ranked candidates — the negatives a
   * lexical retriever would rank high. The stats give the share of chosen negatives they gave.
   */
  lexical?: string;
}

/** `lexical`'s BM25 depth, from `bm25` / `bm25:K`. */
function lexicalDepth(spec: string | undefined): number | undefined {
  if (spec === undefined) return undefined;
  const m = /^bm25(?::(\d+))?$/.exec(spec);
  if (!m || (m[1] !== undefined && Number(m[1]) < 1)) throw new Error(`lexical must be bm25 or bm25:K (K ≥ 1 candidates per query), got "${spec}"`);
  return m[1] ? Number(m[1]) : 30;
}

/**
 * A query's BM25 candidates not already in its window, scored by the model (`score(row)`) and
 * filtered as the window is (no rank range: `k` bounds them), best first.
 */
function lexicalCandidates(lex: { index: Bm25Index; k: number }, query: string, g: QueryGroup, window: Candidate[], o: MineOptions, pool: TextPool, pos: number, score: (row: number) => number): Candidate[] {
  const have = new Set(window.map((c) => c.text));
  const found: Candidate[] = [];
  let taken = 0; // of the top k after the exclusions, those already in the window included
  for (const { row } of lex.index.search(query, lex.k + g.positives.size + (o.keepExisting ? g.existing.size : 0) + 1)) {
    const text = pool.texts[row]!;
    if (text === query || g.positives.has(text) || (o.keepExisting && g.existing.has(text))) continue;
    if (taken++ === lex.k) break;
    if (!have.has(text)) found.push({ text, score: Math.fround(score(row)) });
  }
  found.sort((a, b) => b.score - a.score);
  return negativeWindow(found, pos, { ...o, rangeMin: 0, rangeMax: Infinity, rankBeforeFilters: false });
}

/** Pool embeddings past this many bytes go to disk unless told otherwise. */
export const POOL_IN_MEMORY_BYTES = 2 ** 31;

export interface MineResult {
  records: number;
  uniqueQueries: number;
  poolSize: number;
  /** Records that got fewer negatives than asked. */
  short: number;
  skipped: number;
  positives: ScoreSummary;
  negatives: ScoreSummary;
  statsPath: string;
  /** With `lexical`: the share of chosen negatives that only BM25 proposed (as in the stats). */
  lexicalShare?: number;
}

/** Histograms of reranker scores (logits: unbounded) over one range spanning them all. */
function rerankHistograms(s: Record<'positives' | 'kept' | 'dropped', number[]>) {
  const all = [...s.positives, ...s.kept, ...s.dropped];
  const lo = all.reduce((a, b) => Math.min(a, b), Infinity);
  const hi = all.reduce((a, b) => Math.max(a, b), -Infinity);
  const [from, to] = lo < hi ? [lo, hi] : [lo, lo + 1];
  return { positives: histogram(s.positives, 40, from, to), kept: histogram(s.kept, 40, from, to), dropped: histogram(s.dropped, 40, from, to) };
}

/** Reads a candidate pool file or BEIR corpus into texts. */
export interface WindowOptions {
  rangeMin: number;
  rangeMax: number;
  absoluteMargin?: number;
  relativeMargin?: number;
  maxScore?: number;
  minScore?: number;
  /** Count ranks before the score filters (FlagEmbedding's order) instead of after them (sentence-transformers'). */
  rankBeforeFilters?: boolean;
}

/**
 * The negatives a query may draw from: its ranked candidates (exclusions already removed, best
 * first) that pass the score filters — `maxScore`, `minScore`, and the margins against the lowest
 * positive score `pos`: `neg ≤ pos − absoluteMargin` and `neg ≤ pos − |pos|·relativeMargin` (the
 * form sentence-transformers adopted in #3821; `pos·(1 − m)` lets negatives above a negative
 * positive through) — whose rank lies in [rangeMin, rangeMax). As sentence-transformers does,
 * ranks count the candidates that pass the filters; `rankBeforeFilters` counts every candidate
 * and filters within the window, as FlagEmbedding slices its range first.
 * @example negativeWindow([{ text: 'a', score: 0.9 }, { text: 'b', score: 0.5 }], 0.8, { rangeMin: 0, rangeMax: 5, absoluteMargin: 0.1 }); // [b]
 */
export function negativeWindow(ranked: Iterable<{ text: string; score: number }>, pos: number, o: WindowOptions): { text: string; score: number }[] {
  let ceiling = o.maxScore ?? Infinity;
  if (o.absoluteMargin !== undefined) ceiling = Math.min(ceiling, pos - o.absoluteMargin);
  if (o.relativeMargin !== undefined) ceiling = Math.min(ceiling, pos - Math.abs(pos) * o.relativeMargin);
  const floor = o.minScore ?? -Infinity;
  const window: { text: string; score: number }[] = [];
  let rank = 0;
  for (const c of ranked) {
    if (rank >= o.rangeMax) break;
    const passes = c.score <= ceiling && c.score >= floor;
    if (!o.rankBeforeFilters && !passes) continue;
    if (rank++ < o.rangeMin || !passes) continue;
    window.push(c);
  }
  return window;
}

export async function readCandidatePool(path: string): Promise<string[]> {
  if (existsSync(path) && statSync(path).isDirectory()) return (await readBeirCorpus(join(path, 'corpus.jsonl'))).map((d) => d.text);
  const texts: string[] = [];
  for await (const l of readLines(path)) {
    const o = parseObject(path, l);
    if ('_id' in o) return (await readBeirCorpus(path)).map((d) => d.text);
    if (typeof o.text !== 'string') throw new DataError(path, l.line, o.text === undefined ? 'missing' : 'expected a string', 'text');
    texts.push(o.text);
  }
  return texts;
}

/** Unique texts with stable indices. */
class TextPool {
  readonly texts: string[] = [];
  private readonly index = new Map<string, number>();

  add(t: string): number {
    let i = this.index.get(t);
    if (i === undefined) {
      i = this.texts.length;
      this.index.set(t, i);
      this.texts.push(t);
    }
    return i;
  }

  get(t: string): number | undefined {
    return this.index.get(t);
  }
}

interface QueryGroup {
  positives: Set<string>;
  existing: Set<string>;
}

/** The settings a run mines with, checked, defaults filled in. */
function mineSettings(o: MineOptions) {
  const rangeMin = o.rangeMin ?? DEFAULTS.mine.rangeMin;
  const rangeMax = o.rangeMax ?? DEFAULTS.mine.rangeMax;
  const want = o.numNegatives ?? DEFAULTS.mine.numNegatives;
  if (!(Number.isInteger(rangeMin) && Number.isInteger(rangeMax) && rangeMin >= 0 && rangeMax > rangeMin)) {
    throw new Error(`need integers 0 ≤ rangeMin < rangeMax, got ${rangeMin}..${rangeMax}`);
  }
  if (!(Number.isInteger(want) && want >= 1)) throw new Error(`numNegatives must be a positive integer, got ${want}`);
  const format = o.outputFormat ?? DEFAULTS.mine.outputFormat;
  if (!OUTPUT_FORMATS.includes(format)) throw new Error(`outputFormat must be one of ${OUTPUT_FORMATS.join(', ')}, got "${format}"`);
  if (o.index !== undefined && o.index !== 'exact' && o.index !== 'hnsw') throw new Error(`index must be exact or hnsw, got "${o.index}"`);
  return { rangeMin, rangeMax, want, format, sampling: o.sampling ?? DEFAULTS.mine.sampling, seed: o.seed ?? DEFAULTS.mine.seed };
}

/** Pass 1: records grouped by query text (duplicates share their positives), and the candidate pool. */
async function collectQueries(o: MineOptions, readOptions: { requirePositives: boolean; skipInvalid?: boolean }) {
  const skips = new SkipReport();
  const groups = new Map<string, QueryGroup>();
  const pool = new TextPool();
  let shape: RecordShape = 'spec';
  let records = 0;
  for await (const r of readRecords(o.input, readOptions, skips, (s) => (shape = s))) {
    records++;
    const g = groups.get(r.query) ?? { positives: new Set<string>(), existing: new Set<string>() };
    groups.set(r.query, g);
    r.pos.forEach((p) => g.positives.add(p));
    r.neg.forEach((n) => g.existing.add(n));
    if (!o.candidatePool) [...r.pos, ...r.neg].forEach((t) => pool.add(t));
  }
  requireRecords(records, o.input, skips.total);
  if (o.candidatePool) (await readCandidatePool(o.candidatePool)).forEach((t) => pool.add(t));
  if (pool.texts.length === 0) throw new Error(`${o.input}: the candidate pool is empty`);
  // Positives outside the pool still need embeddings for the margin guard.
  const extraPositives = new TextPool();
  for (const g of groups.values()) for (const p of g.positives) if (pool.get(p) === undefined) extraPositives.add(p);
  return { skips, groups, pool, shape: shape as RecordShape, records, extraPositives, queries: [...groups.keys()] };
}

type Collected = Awaited<ReturnType<typeof collectQueries>>;
type Candidate = { text: string; score: number; rerank?: number };

/**
 * Encodes queries, pool and stray positives, searches the pool (exactly, or through an HNSW
 * index) and returns each query's positive scores and window of candidates.
 */
async function rankWindows(encoder: TextEncoder, o: MineOptions, c: Collected, s: ReturnType<typeof mineSettings>, run: Run, lex?: { index: Bm25Index; k: number }) {
  const lexical: Set<string>[] = [];
  const { groups, pool, queries, extraPositives } = c;
  const common = { batchSize: o.batchSize, quiet: o.quiet, progress: run.progress, cacheDir: o.cacheDir };
  const passage = { ...common, maxLength: o.maxPassageLength, template: o.passageTemplate, role: 'passage' as const };
  // A pool bigger than memory: its rows go to a temp file beside the output, searched a block at a time.
  await using scope = new Scope();
  const file = o.poolOnDisk ?? pool.texts.length * encoder.dim * 4 > POOL_IN_MEMORY_BYTES ? RowFile.create(tempPathFor(o.output), encoder.dim, pool.texts.length) : undefined;
  if (file) scope.defer(() => file.remove());
  const [q, p, x] = (await encodeAll(encoder, [
    [queries, { ...common, maxLength: o.maxQueryLength, template: o.queryTemplate, role: 'query', label: 'mine: encode queries' }],
    [pool.texts, { ...passage, label: 'mine: encode pool', ...(file && { sink: (rows: Float32Array) => file.append(rows) }) }],
    [extraPositives.texts, { ...passage, label: 'mine: encode positives' }],
  ])) as [Embeddings, Embeddings, Embeddings];
  const d = q.dim;
  const poolRow = (row: number) => (file ? file.rows(row, row + 1).slice() : p.data.subarray(row * d, (row + 1) * d));
  const dot = (qi: number, vec: Float32Array, row: number) => {
    let sum = 0;
    for (let k = 0; k < d; k++) sum += q.data[qi * d + k]! * vec[row * d + k]!;
    return sum;
  };
  // sentence-transformers' depth: range_max + the most positives of any query (+ its kept
  // negatives with keepExisting); the window is what passes the exclusions and filters in it.
  let maxExcluded = 0;
  for (const g of groups.values()) maxExcluded = Math.max(maxExcluded, g.positives.size + (o.keepExisting ? g.existing.size : 0));
  const depth = s.rangeMax + maxExcluded;
  let hits: TopK;
  let approximate: { recall: number; queries: number } | undefined;
  if (o.index === 'hnsw') {
    const index = await HnswSearch.build(file ?? p, { threads: o.threads, label: 'mine: index', progress: run.progress });
    hits = index.search(q, depth);
    // How much of the exact ranking the index finds, checked on a sample of the queries.
    approximate = await sampledRecall(q, file ?? p, hits, { threads: o.threads });
    const low = approximate.recall < 0.9 ? ' — low: these embeddings have little neighbourhood structure for the graph; exact search (no --index) finds all' : '';
    run.log(`mine: --index hnsw found ${(100 * approximate.recall).toFixed(1)}% of the exact top ${hits.k} on ${approximate.queries} sampled queries${low}`);
  } else {
    await using search = await ExactSearch.create({ threads: o.threads });
    hits = await search.search(q, file ?? p, depth, { label: 'mine: search', progress: run.progress });
  }

  const positiveLists = queries.map((query) => [...groups.get(query)!.positives]);
  const positiveScores: number[][] = [];
  const windows: Candidate[][] = [];
  queries.forEach((query, qi) => {
    const g = groups.get(query)!;
    // Ranked candidates, best first; a query's own text, its positives and (--keep-existing) its negatives excluded.
    const candidates = function* () {
      for (let j = 0; j < hits.k; j++) {
        const row = hits.indices[qi * hits.k + j]!;
        if (row < 0) break; // the approximate index found no more
        const text = pool.texts[row]!;
        if (text === query || g.positives.has(text) || (o.keepExisting && g.existing.has(text))) continue;
        yield { text, score: hits.scores[qi * hits.k + j]! };
      }
    };
    const scores = positiveLists[qi]!.map((t) => {
      const row = pool.get(t);
      // float32, as the search's candidate scores: one precision on both sides of the margins.
      return Math.fround(row !== undefined ? dot(qi, poolRow(row), 0) : dot(qi, x.data, extraPositives.get(t)!));
    });
    positiveScores.push(scores);
    const window = negativeWindow(candidates(), Math.min(...scores), { ...o, rangeMin: s.rangeMin, rangeMax: s.rangeMax });
    const extra = lex ? lexicalCandidates(lex, query, g, window, o, pool, Math.min(...scores), (row) => dot(qi, poolRow(row), 0)) : [];
    lexical.push(new Set(extra.map((c) => c.text)));
    windows.push([...window, ...extra]);
  });
  return { positiveLists, positiveScores, windows, approximate, lexical };
}

/**
 * rankWindows with a bge-m3 mode: queries, pool and stray positives through M3Encoder (dense,
 * sparse and ColBERT in one pass; ColBERT's vectors kept only when the mode needs them), each
 * query's pool ranked as m3-rank.ts does, positives scored in the same mode.
 */
async function rankWindowsM3(o: MineOptions, mode: M3Mode, c: Collected, s: ReturnType<typeof mineSettings>, run: Run, lex?: { index: Bm25Index; k: number }) {
  const lexical: Set<string>[] = [];
  for (const [key, set] of [['index', o.index === 'hnsw'], ['poolOnDisk', o.poolOnDisk], ['devices', o.devices]] as const) {
    if (set) throw new Error(`mine: mode ${mode} ranks in memory with bge-m3's heads; not with ${key}`);
  }
  const { groups, pool, queries, extraPositives } = c;
  if (typeof o.model !== 'string') throw new Error(`mine: mode ${mode} needs a model folder (bge-m3's layout), not a loaded encoder`);
  await using m3 = await M3Encoder.load(o.model, { threads: o.threads });
  const keep = mode === 'colbert' || mode === 'hybrid';
  const encode = async (texts: string[], label: string, maxLength: number | undefined, template: string | undefined) => {
    const bar = run.progress(label, texts.length);
    const out = await encodeM3(m3, texts, { batchSize: o.batchSize, maxLength, template }, bar);
    bar.done();
    return keep ? out : out.map((r) => ({ ...r, colbert: new Float32Array(0) }));
  };
  const q = await encode(queries, 'mine: encode queries (bge-m3)', o.maxQueryLength, o.queryTemplate);
  const p = await encode(pool.texts, 'mine: encode pool (bge-m3)', o.maxPassageLength, o.passageTemplate);
  const x = await encode(extraPositives.texts, 'mine: encode positives (bge-m3)', o.maxPassageLength, o.passageTemplate);
  let maxExcluded = 0;
  for (const g of groups.values()) maxExcluded = Math.max(maxExcluded, g.positives.size + (o.keepExisting ? g.existing.size : 0));
  const depth = Math.min(s.rangeMax + maxExcluded, pool.texts.length);
  const positiveLists = queries.map((query) => [...groups.get(query)!.positives]);
  const positiveScores: number[][] = [];
  const windows: Candidate[][] = [];
  const bar = run.progress(`mine: rank (${mode})`, queries.length);
  queries.forEach((query, qi) => {
    const g = groups.get(query)!;
    const ranked = rankModes(q[qi]!, p, [mode], depth, { candidates: o.candidates }, (a, b) => a - b)[mode]!;
    const candidates = function* () {
      for (const { row, score } of ranked) {
        const text = pool.texts[row]!;
        if (text === query || g.positives.has(text) || (o.keepExisting && g.existing.has(text))) continue;
        yield { text, score: Math.fround(score) };
      }
    };
    const scores = positiveLists[qi]!.map((t) => {
      const row = pool.get(t);
      return Math.fround(pairScore(mode, q[qi]!, row !== undefined ? p[row]! : x[extraPositives.get(t)!]!));
    });
    positiveScores.push(scores);
    const window = negativeWindow(candidates(), Math.min(...scores), { ...o, rangeMin: s.rangeMin, rangeMax: s.rangeMax });
    const extra = lex ? lexicalCandidates(lex, query, g, window, o, pool, Math.min(...scores), (row) => pairScore(mode, q[qi]!, p[row]!)) : [];
    lexical.push(new Set(extra.map((c) => c.text)));
    windows.push([...window, ...extra]);
    bar.tick(1);
  });
  bar.done();
  return { positiveLists, positiveScores, windows, approximate: undefined, lexical };
}

/**
 * @example
 *   await mine({ model: 'models/bge-small-en', input: 'train.jsonl', output: 'train.mined.jsonl',
 *                rangeMin: 2, rangeMax: 50, numNegatives: 7, relativeMargin: 0.05 });
 */
export async function mine(job: MineOptions): Promise<MineResult> {
  await using run = openRun(job);
  const { options: resolved, reads: modelFolder } = await modelReads(job, run);
  const o = { ...resolved, reranker: await resolveReranker(resolved.reranker) };
  const s = mineSettings(o);
  const statsPath = o.statsPath ?? sidePath(o.output, '.stats.json');
  const reads = [o.input, ...(o.candidatePool ? [o.candidatePool] : []), ...modelFolder, ...rerankerFolders(o.reranker)];
  checkOutput(o.output, reads);
  checkOutput(statsPath, [o.output, ...reads]);
  const readOptions = { requirePositives: true, skipInvalid: o.skipInvalid };
  await checkReranker(o);

  const collected = await collectQueries(o, readOptions);
  const { queries, records, pool, skips } = collected;
  const k = lexicalDepth(o.lexical);
  const lex = k ? { index: Bm25Index.build(pool.texts), k } : undefined;
  const ranked = o.mode && o.mode !== 'dense' ? await rankWindowsM3(o, o.mode, collected, s, run, lex) : await withEncoder(o, run, (encoder) => rankWindows(encoder, o, collected, s, run, lex));
  const { positiveLists, approximate } = ranked;
  const guarded = o.reranker
    ? await rerankGuard(queries, positiveLists, ranked.windows, { ...o, reranker: o.reranker, label: o.rerankLabel, truncation: o.rerankTruncation, progress: run.progress })
    : undefined;
  const windows = guarded ? guarded.kept : ranked.windows;

  // Choose each query's negatives from its window (seeded), keeping the scores to write.
  const rng = new Rng(s.seed);
  const chosen = new Map<string, string[]>();
  const posScores = ranked.positiveScores.flat();
  const negScores: number[] = [];
  const written = new Map<string, { pos: number[]; neg: number[] }>();
  let at = 0;
  let lexicalChosen = 0;
  queries.forEach((query, qi) => {
    const window = windows[qi]!;
    const picked = s.sampling === 'top' ? window.slice(0, s.want) : rng.sample(window, s.want);
    lexicalChosen += picked.filter((c) => ranked.lexical[qi]!.has(c.text)).length;
    picked.forEach((c) => negScores.push(c.score));
    chosen.set(query, picked.map((c) => c.text));
    const pos = guarded ? guarded.scores.positives.slice(at, (at += positiveLists[qi]!.length)) : ranked.positiveScores[qi]!;
    if (o.outputScores) written.set(query, { pos, neg: picked.map((c) => c.rerank ?? c.score) });
  });
  const lexicalShare = negScores.length ? lexicalChosen / negScores.length : 0;

  // Pass 2: write every record with its new negatives, other fields unchanged; the stats are
  // written with it, so the two always come from the same run.
  const negField = FIELDS[collected.shape].neg;
  const queryIndex = new Map(queries.map((q, i) => [q, i]));
  let short = 0;
  const positives = describeScores(posScores);
  const negatives = describeScores(negScores);
  await writeTogether([
    {
      path: o.output,
      fill: async (w) => {
        for await (const r of readRecords(o.input, readOptions, new SkipReport())) {
          const fresh = chosen.get(r.query)!;
          if (fresh.length < s.want) short++;
          const negatives = o.keepExisting ? [...r.neg, ...fresh.filter((t) => !r.neg.includes(t))] : fresh;
          const sc = written.get(r.query);
          // Scores of this record's own positives and its negatives (kept old ones have none: null).
          const scores = sc && { pos_scores: r.pos.map((t) => float32Value(sc.pos[positiveLists[queryIndex.get(r.query)!]!.indexOf(t)]!)), neg_scores: negatives.map((t) => (fresh.includes(t) ? float32Value(sc.neg[fresh.indexOf(t)]!) : null)) };
          if (s.format === 'seed') await w.writeJson({ ...r.raw, [negField]: negatives, ...scores });
          else for (const row of formatRows(s.format, { query: r.query, positives: r.pos, negatives, scores: scores && { pos: scores.pos_scores, neg: scores.neg_scores } }, s.want)) await w.writeJson(row);
        }
      },
    },
    {
      path: statsPath,
      fill: async (w) => {
        const stats = {
          positives,
          negatives,
          histogram: { positives: histogram(posScores), negatives: histogram(negScores) },
          ...(guarded && {
            reranker: {
              model: typeof o.reranker === 'string' ? o.reranker : o.reranker!.dir,
              margin: o.rerankMargin ?? 0,
              relativeMargin: o.rerankRelativeMargin,
              positives: describeScores(guarded.scores.positives),
              kept: describeScores(guarded.scores.kept),
              dropped: describeScores(guarded.scores.dropped),
              dropped_count: guarded.scores.dropped.length,
              histogram: rerankHistograms(guarded.scores),
            },
          }),
          ...(approximate && { index: { kind: 'hnsw', sampled_recall: approximate.recall, sampled_queries: approximate.queries } }),
          ...(lex && { lexical: { kind: 'bm25', k: lex.k, candidates_added: ranked.lexical.reduce((n, x) => n + x.size, 0), chosen: lexicalChosen, share_of_negatives: lexicalShare } }),
          records,
          unique_queries: queries.length,
          pool_size: pool.texts.length,
          short,
          skipped: skips.total,
          settings: { outputFormat: s.format, rangeMin: s.rangeMin, rangeMax: s.rangeMax, numNegatives: s.want, sampling: s.sampling, seed: s.seed, absoluteMargin: o.absoluteMargin, relativeMargin: o.relativeMargin, maxScore: o.maxScore, minScore: o.minScore, keepExisting: !!o.keepExisting, rankBeforeFilters: !!o.rankBeforeFilters },
        };
        await w.write(JSON.stringify(stats, (_, v) => (typeof v === 'number' ? round(v) : v), 2) + '\n');
      },
    },
  ]);
  run.log(formatScoreTable({ 'query·positive': positives, 'query·negative': negatives }));
  if (lex) run.log(`mine: --lexical bm25:${lex.k}: ${lexicalChosen} of ${negScores.length} chosen negatives came from BM25 alone (${(100 * lexicalShare).toFixed(1)}%)`);
  if (guarded) run.log(`mine: the reranker dropped ${guarded.scores.dropped.length} of ${guarded.scores.dropped.length + guarded.scores.kept.length} window candidates as likely false negatives`);
  run.log(`mine: ${records} records (${queries.length} unique queries), pool ${pool.texts.length}; ${short} records got fewer than ${s.want} negatives; stats: ${statsPath}`);
  if (o.skipInvalid) run.log(`mine: ${skips.summary()}`);
  return { records, uniqueQueries: queries.length, poolSize: pool.texts.length, short, skipped: skips.total, positives, negatives, statsPath, ...(lex && { lexicalShare }) };
}
