/**
 * Training records in the spec's shape `{query, pos_passage[], neg_passage[]}` or FlagEmbedding's
 * `{query, pos[], neg[]}`. The shape is detected from the first record and kept on output;
 * extra fields ride along unchanged.
 */
import { DataError, parseObject, readLines } from './jsonl.js';
import { type QueryRecord, type ReadOptions, type RecordShape, SkipReport, toRecord } from './record-shape.js';

export * from './record-shape.js';

/**
 * Streams validated records from a JSONL file.
 * @example
 *   const skips = new SkipReport();
 *   for await (const r of readRecords('train.jsonl', { requirePositives: true, skipInvalid: true }, skips)) …
 *   console.log(skips.summary());
 */
export async function* readRecords(
  path: string,
  options: ReadOptions = {},
  skips: SkipReport = new SkipReport(),
  onShape?: (s: RecordShape) => void,
): AsyncGenerator<QueryRecord> {
  let shape: RecordShape | undefined;
  const bad = (e: DataError) => {
    if (!options.skipInvalid) throw e;
    skips.add(e);
  };
  for await (const l of readLines(path, options.skipInvalid ? bad : undefined)) {
    try {
      const r = toRecord(path, l, parseObject(path, l), shape, options);
      if (!shape) onShape?.(r.shape);
      shape = r.shape;
      yield r.record;
    } catch (e) {
      if (!(e instanceof DataError)) throw e;
      bad(e);
    }
  }
}

/** Reads a whole file of records (jobs that need every query at once). */
export async function loadRecords(path: string, options: ReadOptions = {}): Promise<{ records: QueryRecord[]; shape: RecordShape; skips: SkipReport }> {
  const skips = new SkipReport();
  const records: QueryRecord[] = [];
  let shape: RecordShape = 'spec';
  for await (const r of readRecords(path, options, skips, (s) => (shape = s))) records.push(r);
  return { records, shape, skips };
}
