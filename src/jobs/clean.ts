/**
 * clean (spec 1.1): embed every query; walking in input order, drop a query whose cosine
 * similarity to an already kept query is ≥ threshold. Kept records are written unchanged;
 * a report lists each dropped query with the kept query it matched and the score.
 */
import { checkOutput, startsWithBom, writeTogether } from '../data/jsonl.js';
import { readRecords, SkipReport } from '../data/records.js';
import { greedyDedup } from '../search/dedup.js';
import { encodeAll, modelReads, type ModelOptions, requireRecords, requireNormalized, sidePath, withEncoder } from './common.js';
import { openRun } from '../run.js';
import { float32Value } from '../util/float.js';
import { DEFAULTS } from '../options.js';

const BOM = new Uint8Array([0xef, 0xbb, 0xbf]);
const NEWLINE = new Uint8Array([0x0a]);

export interface CleanOptions extends ModelOptions {
  input: string;
  output: string;
  /** Dropped-query report (JSONL); default `<output>.dropped.jsonl`. */
  report?: string;
  /** Cosine similarity at or above which a query is a duplicate (default 0.70, the spec's). */
  threshold?: number;
  /** Template applied to queries before encoding, e.g. `"query: {text}"`. */
  queryTemplate?: string;
  maxLength?: number;
  skipInvalid?: boolean;
}

export interface CleanResult {
  total: number;
  kept: number;
  dropped: number;
  skipped: number;
  report: string;
}

/**
 * @example
 *   const r = await clean({ model: 'models/bge-small-zh', input: 'train.jsonl', output: 'clean.jsonl' });
 *   console.log(`${r.dropped} of ${r.total} queries were near-duplicates`);
 */
export async function clean(job: CleanOptions): Promise<CleanResult> {
  await using run = openRun(job);
  const { options: o, reads } = await modelReads(job, run);
  const threshold = o.threshold ?? DEFAULTS.clean.threshold;
  if (!(threshold > -1 && threshold <= 1)) throw new Error(`threshold must be in (-1, 1], got ${threshold}`);
  const report = o.report ?? sidePath(o.output, '.dropped.jsonl');
  checkOutput(o.output, [o.input, ...reads]);
  checkOutput(report, [o.input, o.output, ...reads]);
  const readOptions = { skipInvalid: o.skipInvalid };

  // Pass 1: only the queries are held in memory.
  const skips = new SkipReport();
  const queries: string[] = [];
  const lines: number[] = [];
  for await (const r of readRecords(o.input, readOptions, skips)) {
    queries.push(r.query);
    lines.push(r.line);
  }

  requireRecords(queries.length, o.input, skips.total);
  const result = await withEncoder(o, run, async (encoder) => {
    requireNormalized(encoder, 'clean');
    const [emb] = await encodeAll(encoder, [[queries, { batchSize: o.batchSize, maxLength: o.maxLength, template: o.queryTemplate, role: 'query', label: 'clean: encode queries', quiet: o.quiet, progress: run.progress, cacheDir: o.cacheDir }]]);
    return greedyDedup(emb!, threshold, { threads: o.threads, progress: run.progress });
  });

  // Pass 2: stream the input again and copy the kept records' bytes unchanged (a BOM, CRLF);
  // the report is written with it, so the two always come from the same run.
  let i = 0;
  await writeTogether([
    {
      path: o.output,
      fill: async (w) => {
        if (startsWithBom(o.input)) await w.write(BOM);
        for await (const r of readRecords(o.input, readOptions, new SkipReport())) {
          if (result.keep[i++]) await w.write(Buffer.concat([r.bytes, NEWLINE]));
        }
      },
    },
    {
      path: report,
      fill: async (w) => {
        for (let j = 0; j < queries.length; j++) {
          if (result.keep[j]) continue;
          const m = result.matchedRow[j];
          await w.writeJson({ line: lines[j], query: queries[j], matched_line: lines[m!], matched_query: queries[m!], score: float32Value(result.matchedScore[j]!) });
        }
      },
    },
  ]);
  const kept = result.keep.reduce((a, b) => a + b, 0);
  const summary = { total: queries.length, kept, dropped: queries.length - kept, skipped: skips.total, report };
  run.log(`clean: ${summary.total} queries, kept ${kept}, dropped ${summary.dropped} (threshold ${threshold}); report: ${report}`);
  if (o.skipInvalid) run.log(`clean: ${skips.summary()}`);
  return summary;
}
