/**
 * Training records in the spec's shape `{query, pos_passage[], neg_passage[]}` or FlagEmbedding's
 * `{query, pos[], neg[]}`, checked line by line (no file system: records.ts streams files through
 * it, the browser build reads text in memory).
 */
import { DataError, type Line } from './lines.js';

export type RecordShape = 'spec' | 'bge';

export const FIELDS: Record<RecordShape, { pos: string; neg: string }> = {
  spec: { pos: 'pos_passage', neg: 'neg_passage' },
  bge: { pos: 'pos', neg: 'neg' },
};

export interface QueryRecord {
  query: string;
  pos: string[];
  neg: string[];
  /** The parsed line, written back with only the fields a job changes. */
  raw: Record<string, unknown>;
  /** A teacher's scores of `pos` and `neg` (`pos_scores` / `neg_scores`), when read for distillation. */
  posScores?: number[];
  negScores?: number[];
  /** The line's bytes as in the file, for jobs that copy records unchanged (CRLF's CR kept, a BOM left out). */
  bytes: Uint8Array;
  line: number;
}

export interface ReadOptions {
  /** Records must have a non-empty positive list (mine, train, evaluate); clean only needs queries. */
  requirePositives?: boolean;
  /** Skip bad records (counted in `skipped`) instead of stopping at the first. */
  skipInvalid?: boolean;
}

/** What a read skipped, by reason, with the first few locations. */
export class SkipReport {
  readonly counts = new Map<string, number>();
  readonly examples: string[] = [];

  add(e: DataError): void {
    const key = e.field ? `${e.field}: ${e.reason}` : e.reason;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    if (this.examples.length < 5) this.examples.push(e.message);
  }

  get total(): number {
    let n = 0;
    for (const c of this.counts.values()) n += c;
    return n;
  }

  /** One line per reason, for the job's summary. */
  summary(): string {
    if (this.total === 0) return 'skipped 0 invalid records';
    const reasons = [...this.counts].map(([k, v]) => `  ${v} × ${k}`).join('\n');
    return `skipped ${this.total} invalid records:\n${reasons}\n  first: ${this.examples[0]}`;
  }
}

function stringList(path: string, line: number, obj: Record<string, unknown>, field: string, required: boolean): string[] {
  const v = obj[field];
  if (v === undefined || v === null) {
    if (required) throw new DataError(path, line, 'missing; expected a non-empty list of strings', field);
    return [];
  }
  if (!Array.isArray(v)) throw new DataError(path, line, `expected a list of strings, got ${typeof v}`, field);
  if (required && v.length === 0) throw new DataError(path, line, 'empty; expected at least one passage', field);
  v.forEach((item, i) => {
    if (typeof item !== 'string') throw new DataError(path, line, `expected a string, got ${item === null ? 'null' : typeof item}`, `${field}[${i}]`);
  });
  return v as string[];
}

/** Validates one parsed line against a shape (detected when `shape` is undefined). */
export function toRecord(path: string, l: Line, obj: Record<string, unknown>, shape: RecordShape | undefined, o: ReadOptions): { record: QueryRecord; shape: RecordShape } {
  if (!('query' in obj)) throw new DataError(path, l.line, 'missing', 'query');
  if (typeof obj.query !== 'string') throw new DataError(path, l.line, `expected a string, got ${obj.query === null ? 'null' : typeof obj.query}`, 'query');
  if (obj.query.trim() === '') throw new DataError(path, l.line, 'empty string', 'query');
  const detected: RecordShape = shape ?? ('pos' in obj || 'neg' in obj ? 'bge' : 'spec');
  const f = FIELDS[detected];
  const other = FIELDS[detected === 'spec' ? 'bge' : 'spec'];
  if (!(f.pos in obj) && other.pos in obj) {
    throw new DataError(path, l.line, `this file uses "${f.pos}" (from its first record), this record has "${other.pos}"`, f.pos);
  }
  const pos = stringList(path, l.line, obj, f.pos, o.requirePositives ?? false);
  const neg = stringList(path, l.line, obj, f.neg, false);
  return { record: { query: obj.query, pos, neg, raw: obj, bytes: l.bytes, line: l.line }, shape: detected };
}

