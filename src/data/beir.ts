/**
 * BEIR folders: `corpus.jsonl` ({_id, title, text}), `queries.jsonl` ({_id, text}) and
 * `qrels/<split>.tsv` (query-id, corpus-id, score; graded scores kept).
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DataError, parseObject, readLines } from './jsonl.js';

export interface BeirDocument {
  id: string;
  /** `title + " " + text` when the title is set and `withTitle` is on, else `text`. */
  text: string;
}

export interface BeirDataset {
  corpus: BeirDocument[];
  queries: Map<string, string>;
  /**
   * query id → (document id → graded relevance > 0), for queries the folder has. A document the
   * corpus lacks stays relevant (it lowers recall, as in BEIR's own scoring) and is counted in `unknown`.
   */
  qrels: Map<string, Map<string, number>>;
  /** qrels rows naming a query the folder lacks (dropped) or a document the corpus lacks (kept). */
  unknown: { queries: number; documents: number };
}

/** One warning line for qrels rows that named unknown ids, or null when there were none. */
export function unknownIdsWarning(dir: string, u: BeirDataset['unknown']): string | null {
  if (!u.queries && !u.documents) return null;
  return `${dir}: qrels name ids the folder lacks: ${u.queries} rows a query not in queries.jsonl (ignored), ${u.documents} a document not in corpus.jsonl (counted as relevant, never retrieved)`;
}

function stringField(path: string, line: number, obj: Record<string, unknown>, field: string, optional = false): string {
  const v = obj[field];
  if (v === undefined && optional) return '';
  if (typeof v === 'number' && field === '_id') return String(v);
  if (typeof v !== 'string') throw new DataError(path, line, v === undefined ? 'missing' : `expected a string, got ${typeof v}`, field);
  return v;
}

export async function readBeirCorpus(path: string, withTitle = true): Promise<BeirDocument[]> {
  const docs: BeirDocument[] = [];
  for await (const l of readLines(path)) {
    const o = parseObject(path, l);
    const title = stringField(path, l.line, o, 'title', true);
    const text = stringField(path, l.line, o, 'text');
    docs.push({ id: stringField(path, l.line, o, '_id'), text: withTitle && title ? `${title} ${text}` : text });
  }
  return docs;
}

export async function readBeirQueries(path: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const l of readLines(path)) {
    const o = parseObject(path, l);
    out.set(stringField(path, l.line, o, '_id'), stringField(path, l.line, o, 'text'));
  }
  return out;
}

export async function readQrels(path: string): Promise<Map<string, Map<string, number>>> {
  const out = new Map<string, Map<string, number>>();
  let header = true;
  for await (const l of readLines(path)) {
    const cols = l.text.split('\t');
    if (header && !/^\d+$/.test(cols[2]?.trim() ?? '')) {
      header = false;
      continue; // the header row
    }
    header = false;
    if (cols.length < 3) throw new DataError(path, l.line, `expected 3 tab-separated columns (query-id, corpus-id, score), got ${cols.length}`);
    const score = Number(cols[2]);
    if (!Number.isFinite(score)) throw new DataError(path, l.line, `score "${cols[2]}" is not a number`, 'score');
    if (score <= 0) continue;
    const q = cols[0]!.trim();
    if (!out.has(q)) out.set(q, new Map());
    out.get(q)!.set(cols[1]!.trim(), score);
  }
  return out;
}

/** The files a BEIR folder's `split` is read from (outputs must not be one of them). */
export function beirFiles(dir: string, split = 'test'): { corpus: string; queries: string; qrels: string } {
  return { corpus: join(dir, 'corpus.jsonl'), queries: join(dir, 'queries.jsonl'), qrels: join(dir, 'qrels', `${split}.tsv`) };
}

/** Loads a BEIR folder; `split` picks `qrels/<split>.tsv`. */
export async function loadBeir(dir: string, split = 'test', withTitle = true): Promise<BeirDataset> {
  const need = (p: string) => {
    if (!existsSync(p)) throw new Error(`${dir}: not a BEIR folder: missing ${p}`);
    return p;
  };
  const files = beirFiles(dir, split);
  const corpus = await readBeirCorpus(need(files.corpus), withTitle);
  const queries = await readBeirQueries(need(files.queries));
  const all = await readQrels(need(files.qrels));
  for (const [path, n] of [[files.corpus, corpus.length], [files.queries, queries.size], [files.qrels, all.size]] as const) {
    if (n === 0) throw new Error(`${path}: empty: a BEIR folder needs documents, queries and judgements`);
  }
  const docs = new Set(corpus.map((d) => d.id));
  const unknown = { queries: 0, documents: 0 };
  const qrels = new Map<string, Map<string, number>>();
  for (const [q, rel] of all) {
    if (!queries.has(q)) {
      unknown.queries += rel.size;
      continue;
    }
    for (const d of rel.keys()) if (!docs.has(d)) unknown.documents++;
    qrels.set(q, rel);
  }
  return { corpus, queries, qrels, unknown };
}

export function isBeirFolder(dir: string): boolean {
  if (existsSync(join(dir, 'corpus.jsonl')) && existsSync(join(dir, 'queries.jsonl'))) return true;
  // A folder that is not a complete BEIR folder is named by what it lacks (it is no JSONL file either).
  if (existsSync(dir) && statSync(dir).isDirectory()) {
    const missing = ['corpus.jsonl', 'queries.jsonl', 'qrels'].filter((f) => !existsSync(join(dir, f)));
    throw new Error(`${dir}: a folder, but not a BEIR folder: no ${missing.join(', no ')} (a BEIR folder has corpus.jsonl, queries.jsonl and qrels/<split>.tsv)`);
  }
  return false;
}
