/**
 * The false-negative guard of `mine --reranker`: the candidates in each query's rank window, and
 * its positives, are rescored by a cross-encoder, and a candidate whose reranker score comes
 * within the margin of the positive's (or above it) is dropped — sentence-transformers'
 * `mine_hard_negatives(cross_encoder=…)` with its margins applied to the reranker's scores.
 * `qrels:DIR[:split]` is an oracle reranker from a BEIR folder's judgements (1 judged relevant,
 * 0 otherwise), to measure how many mined negatives are false.
 */
import { existsSync } from 'node:fs';
import { beirFiles, loadBeir } from '../data/beir.js';
import { readConfig } from '../models/config.js';
import { classifierLabels, type Reranker, RerankerThread } from '../models/cross-encoder.js';
import { resolveModel } from '../models/resolve.js';
import { scorePairs, withReranker } from './score.js';
import type { Reporter } from '../progress.js';
import type { PairTruncation } from '../models/tokenizer.js';

export interface RerankOptions {
  /** Cross-encoder folder / Hub id, a loaded CrossEncoder, or `qrels:DIR[:split]`. */
  reranker: string | Reranker;
  /** Drop a candidate scoring ≥ positive − margin (default 0: at or above the positive). */
  rerankMargin?: number;
  /** Drop a candidate scoring ≥ positive − |positive| · margin. */
  rerankRelativeMargin?: number;
  label?: number;
  /** How a pair past the reranker's limit is cut (default `longest_first`). */
  truncation?: PairTruncation;
  sigmoid?: boolean;
  batchSize?: number;
  threads?: number;
  device?: string;
  cacheDir?: string;
  /** Shows the scoring's progress (a run's `run.progress`). */
  progress?: Reporter;
}

export interface Guarded {
  /** Per query: the window's candidates the reranker lets through, with its scores. */
  kept: { text: string; score: number; rerank: number }[][];
  /** Reranker scores of the positives, of the kept and of the dropped candidates. */
  scores: { positives: number[]; kept: number[]; dropped: number[] };
}

/**
 * A reranker named by Hub id or alias, resolved once to its folder (which loads it from then on);
 * a folder, a loaded reranker or a qrels oracle as given.
 */
export async function resolveReranker(reranker: RerankOptions['reranker'] | undefined): Promise<RerankOptions['reranker'] | undefined> {
  return typeof reranker === 'string' && !reranker.startsWith('qrels:') ? resolveModel(reranker) : reranker;
}

/** The folder a reranker reads: its model folder, or a qrels oracle's BEIR folder. */
export function rerankerFolders(reranker: RerankOptions['reranker'] | undefined): string[] {
  if (reranker === undefined) return [];
  if (typeof reranker !== 'string') return [reranker.dir];
  return [reranker.startsWith('qrels:') ? qrelsSpec(reranker)[0] : reranker];
}

/** `qrels:DIR[:split]` → the BEIR folder and split. */
function qrelsSpec(spec: string): [string, string] {
  const [dir, split] = spec.slice('qrels:'.length).split(/:(?=[^:/\\]+$)/);
  return [dir!, split ?? 'test'];
}

/** Query text → its judged-relevant passage texts, from a BEIR folder. */
async function qrelsOracle(spec: string): Promise<(query: string, passage: string) => number> {
  const set = await loadBeir(...qrelsSpec(spec));
  const text = new Map(set.corpus.map((d) => [d.id, d.text]));
  const relevant = new Map<string, Set<string>>();
  for (const [qid, rel] of set.qrels) {
    const q = set.queries.get(qid);
    if (q === undefined) continue;
    const s = relevant.get(q) ?? new Set<string>();
    for (const [doc, grade] of rel) if (grade > 0 && text.has(doc)) s.add(text.get(doc)!);
    relevant.set(q, s);
  }
  return (q, p) => (relevant.get(q)?.has(p) ? 1 : 0);
}

/**
 * Fails fast — before any encoding — on a reranker that will not load: a missing folder, a model
 * that is not a sequence classifier, a BEIR folder that is not one; margins without a reranker.
 * @example await checkReranker({ reranker: 'qrels:data/cranfield' });
 */
export async function checkReranker(o: { reranker?: RerankOptions['reranker']; rerankMargin?: number; rerankRelativeMargin?: number; rerankLabel?: number; revision?: string }): Promise<void> {
  if (!o.reranker) {
    const stray = (['rerankMargin', 'rerankRelativeMargin', 'rerankLabel'] as const).find((k) => o[k] !== undefined);
    if (stray) throw new Error(`${stray} needs a reranker`);
    return;
  }
  if (typeof o.reranker !== 'string') return;
  if (o.reranker.startsWith('qrels:')) {
    // The files only: the judgements are read once, when the windows are filtered.
    const [dir, split] = qrelsSpec(o.reranker);
    const missing = Object.values(beirFiles(dir, split)).find((f) => !existsSync(f));
    if (missing) throw new Error(`${dir}: not a BEIR folder: missing ${missing}`);
    return;
  }
  const dir = await resolveModel(o.reranker, {});
  classifierLabels(dir, readConfig(dir));
}

/**
 * Rescores every query's window and positives; keeps the candidates below the ceiling.
 * @example const g = await rerankGuard(['q'], [['p']], [[{ text: 'n', score: 0.3 }]], { reranker: 'models/bge-reranker-base' });
 */
export async function rerankGuard(queries: readonly string[], positives: readonly (readonly string[])[], windows: readonly { text: string; score: number }[][], o: RerankOptions): Promise<Guarded> {
  const pairs: [string, string][] = [];
  queries.forEach((q, i) => {
    positives[i]!.forEach((p) => pairs.push([q, p]));
    windows[i]!.forEach((c) => pairs.push([q, c.text]));
  });
  let scores: Float32Array;
  if (typeof o.reranker === 'string' && o.reranker.startsWith('qrels:')) {
    const oracle = await qrelsOracle(o.reranker);
    scores = Float32Array.from(pairs, ([q, p]) => oracle(q, p));
  } else {
    const load = () => RerankerThread.load(o.reranker as string, { threads: o.threads, label: o.label, device: o.device });
    scores = await withReranker(o.reranker, load, (model) => scorePairs(model, pairs, { batchSize: o.batchSize, sigmoid: o.sigmoid, label: o.label, truncation: o.truncation, cacheDir: o.cacheDir, progress: o.progress, progressLabel: 'mine: rerank' }));
  }
  const out: Guarded = { kept: [], scores: { positives: [], kept: [], dropped: [] } };
  let at = 0;
  queries.forEach((_, i) => {
    const pos = positives[i]!.map(() => scores[at++]!);
    out.scores.positives.push(...pos);
    const lowest = Math.min(...pos);
    let ceiling = lowest - (o.rerankMargin ?? 0);
    if (o.rerankRelativeMargin !== undefined) ceiling = Math.min(ceiling, lowest - Math.abs(lowest) * o.rerankRelativeMargin);
    const kept: Guarded['kept'][number] = [];
    for (const c of windows[i]!) {
      const rerank = scores[at++]!;
      if (rerank < ceiling) {
        kept.push({ ...c, rerank });
        out.scores.kept.push(rerank);
      } else out.scores.dropped.push(rerank);
    }
    out.kept.push(kept);
  });
  return out;
}
