/** encode: embed a file of texts into a .npy matrix or JSONL of {text, embedding}. */
import { checkOutput, DataError, parseObject, readLines, writeAtomically } from '../data/jsonl.js';
import type { Embeddings } from '../models/encoder.js';
import { SkipReport } from '../data/records.js';
import { npyHeader } from '../util/npy.js';
import { encodeAll, modelReads, type ModelOptions, requireRecords, withEncoder } from './common.js';
import { openRun, type Run } from '../run.js';
import { M3Encoder } from '../models/m3.js';
import { checkModes, encodeM3, type M3Mode } from './m3-rank.js';

export interface EncodeFileOptions extends ModelOptions {
  /** `.txt` (one text per line) or JSONL with a "text" or "query" field. */
  input: string;
  /** `.npy` (float32 [n, dim]) or `.jsonl`. */
  output: string;
  template?: string;
  /** Without `template`: the model's saved prompt for this role (as sentence-transformers' prompt_name). */
  promptName?: 'query' | 'passage';
  maxLength?: number;
  /** Skip bad JSONL records (counted and reported) instead of stopping. */
  skipInvalid?: boolean;
  /**
   * bge-m3's outputs to write (a folder with its heads): `dense`, `sparse`, `colbert`, as JSONL
   * lines `{"text", "dense_vecs", "lexical_weights": {token id: weight}, "colbert_vecs"}` — the
   * names FlagEmbedding's BGEM3FlagModel.encode returns them by.
   */
  modes?: M3Mode[];
}

/**
 * The texts of a `.txt` (one per line) or JSONL file (`text` or `query`). A bad record stops the
 * read naming file, line and field — or, given `skips`, is counted there and left out.
 */
export async function readTexts(path: string, skips?: SkipReport): Promise<string[]> {
  const texts: string[] = [];
  const isText = /\.txt$/i.test(path);
  for await (const l of readLines(path)) {
    if (isText) {
      texts.push(l.text);
      continue;
    }
    try {
      const o = parseObject(path, l);
      const field = 'text' in o ? 'text' : 'query';
      if (typeof o[field] !== 'string') throw new DataError(path, l.line, o[field] === undefined ? 'missing (need "text" or "query")' : 'expected a string', field);
      texts.push(o[field] as string);
    } catch (e) {
      if (!(skips && e instanceof DataError)) throw e;
      skips.add(e);
    }
  }
  return texts;
}

/** A NumPy .npy (version 1.0) file holding a float32 matrix. */
export function npyBytes(e: Embeddings): Buffer {
  return Buffer.concat([npyHeader(e.count, e.dim), Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength)]);
}

/**
 * @example
 *   await encodeFile({ model: 'models/bge-small-en', input: 'texts.txt', output: 'emb.npy' });
 */
export async function encodeFile(job: EncodeFileOptions): Promise<Embeddings> {
  await using run = openRun(job);
  const { options: o, reads } = await modelReads(job, run);
  checkOutput(o.output, [o.input, ...reads]);
  const skips = new SkipReport();
  const texts = await readTexts(o.input, o.skipInvalid ? skips : undefined);
  requireRecords(texts.length, o.input, skips.total);
  if (o.modes?.length) return encodeModes(o, texts, run);
  const [e] = (await withEncoder(o, run, (enc) => encodeAll(enc, [[texts, { batchSize: o.batchSize, maxLength: o.maxLength, template: o.template, role: o.promptName, quiet: o.quiet, progress: run.progress, cacheDir: o.cacheDir }]]), { normalizeFromModel: true })) as [Embeddings];
  if (/\.npy$/i.test(o.output)) {
    await writeAtomically(o.output, (w) => w.writeBytes(npyBytes(e!)));
  } else {
    await writeAtomically(o.output, async (w) => {
      for (let i = 0; i < e.count; i++) await w.writeJson({ text: texts[i], embedding: Array.from(e.data.subarray(i * e.dim, (i + 1) * e.dim)) });
    });
  }
  run.log(`encode: ${e.count} texts → ${o.output} (${e.count} × ${e.dim})`);
  if (o.skipInvalid) run.log(`encode: ${skips.summary()}${skips.total ? '\nencode: the rows are the valid records, in order' : ''}`);
  return e;
}

/** encodeFile with bge-m3's modes: each text's asked outputs, one JSONL line per text; returns the dense embeddings. */
async function encodeModes(o: EncodeFileOptions, texts: string[], run: Run): Promise<Embeddings> {
  const modes = checkModes(o.modes!, 'encode --modes');
  if (modes.includes('hybrid')) throw new Error('encode --modes: hybrid is a score of a pair, not a representation; name dense, sparse and/or colbert');
  if (!/\.jsonl$/i.test(o.output)) throw new Error(`${o.output}: encode --modes writes JSONL (sparse weights and ColBERT vectors are no matrix); name a .jsonl output`);
  if (typeof o.model !== 'string') throw new Error('encode --modes: give the model as a folder or Hub id (its heads are read from there)');
  await using m3 = await M3Encoder.load(o.model, { threads: o.threads });
  const bar = run.progress('encode (bge-m3)', texts.length);
  const reps = await encodeM3(m3, texts, { batchSize: o.batchSize, maxLength: o.maxLength, template: o.template }, bar);
  bar.done();
  await writeAtomically(o.output, async (w) => {
    for (const [i, r] of reps.entries()) {
      const colbert = () => Array.from({ length: r.colbert.length / r.colbertDim }, (_, t) => Array.from(r.colbert.subarray(t * r.colbertDim, (t + 1) * r.colbertDim)));
      await w.writeJson({
        text: texts[i],
        ...(modes.includes('dense') && { dense_vecs: Array.from(r.dense) }),
        ...(modes.includes('sparse') && { lexical_weights: Object.fromEntries([...r.sparse].map(([id, v]) => [String(id), v])) }),
        ...(modes.includes('colbert') && { colbert_vecs: colbert() }),
      });
    }
  });
  run.log(`encode: ${reps.length} texts → ${o.output} (${modes.join(', ')})`);
  const dim = reps[0]?.dense.length ?? 0;
  const data = new Float32Array(reps.length * dim);
  reps.forEach((r, i) => data.set(r.dense, i * dim));
  return { data, dim, count: reps.length };
}
