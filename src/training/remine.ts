/**
 * Re-mining during training (ANCE, Xiong et al. 2021): negatives mined with the base model go
 * stale as the model learns, so every `remine_every` epochs the train job mines them again with
 * the weights it has now — the `mine` job itself, on the training records, with the options
 * `remine_options` gives it (mine's library keys: rangeMin, rangeMax, numNegatives, margins,
 * lexical, reranker, …). Each round's records are written to `output_dir/remine/epoch-N.jsonl`
 * (N: the epoch they feed, from 1; mine's statistics beside it), so a resumed run reads the round its
 * checkpoint trained on.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadRecords, type QueryRecord } from '../data/records.js';
import type { Encoder } from '../models/encoder.js';
import { type MineOptions, mine } from '../jobs/mine.js';
import { round } from '../jobs/stats.js';
import { COMMANDS } from '../options.js';
import type { Run } from '../run.js';
import { writeFileAtomic } from '../util/atomic.js';

/** What a re-mining round adds to log.jsonl. */
export interface RemineEntry {
  step: number;
  remine: { epoch: number; file: string; queries: number; pool: number; kept_old: number; lexical_share?: number; seconds: number };
}

/** Mine's options a round may not set: the job's own input, output, model and run. */
const FIXED = new Set(['input', 'output', 'model', 'statsPath', 'outputFormat', 'outputScores', 'skipInvalid', 'quiet', 'progressFormat', 'shard', 'shardDir', 'shardDtype', 'revision', 'cacheDir', 'device', 'devices']);

/**
 * `remine_options` checked against the mine command's own option table (options.ts): known keys
 * only, numbers where mine takes numbers, one of its choices where it has them.
 */
export function checkRemineOptions(value: unknown, source: string): Partial<MineOptions> {
  const what = `${source}: "remine_options"`;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error(`${what} must be an object of mine's options (e.g. {"rangeMin": 2, "rangeMax": 50, "lexical": "bm25"}), got ${JSON.stringify(value)}`);
  const table = COMMANDS.find((c) => c.name === 'mine')!.options.filter((o) => !FIXED.has(o.key));
  for (const [key, v] of Object.entries(value)) {
    const spec = table.find((o) => o.key === key);
    if (!spec) throw new Error(`${what}: unknown key "${key}"; mine's options here are ${table.map((o) => o.key).join(', ')}`);
    const takesValue = /[<[]/.test(spec.flags);
    const ok = !takesValue ? typeof v === 'boolean'
      : spec.parse === 'int' || spec.parse === 'positive' ? Number.isInteger(v) && (spec.parse === 'int' || (v as number) >= 1)
      : spec.parse === 'number' ? typeof v === 'number' && Number.isFinite(v)
      : typeof v === 'string' && (!spec.choices || spec.choices.includes(v));
    const expected = !takesValue ? 'true or false' : spec.parse === 'positive' ? 'an integer ≥ 1' : spec.parse === 'int' ? 'an integer' : spec.parse === 'number' ? 'a number' : spec.choices ? `one of ${spec.choices.join(', ')}` : 'a string';
    if (!ok) throw new Error(`${what}: "${key}" must be ${expected} (mine's ${spec.flags.split(' ')[0]}), got ${JSON.stringify(v)}`);
  }
  return value as Partial<MineOptions>;
}

/** Whether the epoch (0-based) starts with a round: every `every` epochs after the first. */
export const remineDue = (epoch: number, every: number): boolean => every > 0 && epoch > 0 && epoch % every === 0;

/** The round a run at `epoch` (0-based) trains on: the last due epoch ≤ it, or none. */
export function lastRound(epoch: number, every: number): number | undefined {
  if (every <= 0 || epoch < every) return undefined;
  return epoch - (epoch % every);
}

export const roundFile = (outputDir: string, epoch: number): string => join(outputDir, 'remine', `epoch-${epoch + 1}.jsonl`);

/** The training records with the negatives of a round's file (same order, same queries). */
export async function readRound(records: QueryRecord[], file: string): Promise<QueryRecord[]> {
  if (!existsSync(file)) throw new Error(`${file}: missing — the checkpoint trained on this re-mining round's negatives; resume from a checkpoint before it, or start afresh`);
  const { records: mined } = await loadRecords(file, { requirePositives: true });
  if (mined.length !== records.length || mined.some((m, i) => m.query !== records[i]!.query)) throw new Error(`${file}: not a round of these training records (${mined.length} records for ${records.length})`);
  return records.map((r, i) => ({ ...r, neg: mined[i]!.neg }));
}

/** Records as FlagEmbedding's `{query, pos, neg}` lines, written atomically. */
function writeRecords(path: string, records: QueryRecord[]): void {
  writeFileAtomic(path, records.map((r) => JSON.stringify({ query: r.query, pos: r.pos, neg: r.neg }) + '\n').join(''));
}

export interface RoundOptions {
  outputDir: string;
  /** 0-based: the epoch the round feeds. */
  epoch: number;
  step: number;
  seed: number;
  options: Partial<MineOptions>;
  queryTemplate: string;
  passageTemplate: string;
  maxQueryLength: number;
  maxPassageLength: number;
}

/**
 * One round: `base` (the records as read, with their own negatives) mined with `encoder` (the
 * current weights); a query the window leaves without negatives keeps those it trained on.
 * @example records = (await remineRound(base, records, encoder, { outputDir, epoch: 1, step, seed: 42, options: { rangeMin: 2 }, … }, run)).records;
 */
export async function remineRound(base: QueryRecord[], current: QueryRecord[], encoder: Encoder, o: RoundOptions, run: Run): Promise<{ records: QueryRecord[]; entry: RemineEntry }> {
  const started = Date.now();
  const dir = join(o.outputDir, 'remine');
  mkdirSync(dir, { recursive: true });
  const input = join(dir, 'records.jsonl');
  const file = roundFile(o.outputDir, o.epoch);
  const output = file.replace(/\.jsonl$/, '.mined.jsonl');
  writeRecords(input, base);
  run.log(`train: epoch ${o.epoch + 1}: re-mining the negatives with the current weights (step ${o.step})`);
  const result = await mine({
    ...o.options,
    seed: (o.options.seed ?? o.seed) + o.epoch,
    model: encoder,
    input,
    output,
    statsPath: file.replace(/\.jsonl$/, '.stats.json'),
    queryTemplate: o.queryTemplate,
    passageTemplate: o.passageTemplate,
    maxQueryLength: o.maxQueryLength,
    maxPassageLength: o.maxPassageLength,
    run,
  });
  const mined = await readRound(base, output);
  let keptOld = 0;
  const records = mined.map((r, i) => {
    if (r.neg.length > 0) return r;
    keptOld++;
    return { ...r, neg: current[i]!.neg };
  });
  // What the epoch trains on, as a resumed run will read it.
  writeRecords(file, records);
  rmSync(output);
  const entry: RemineEntry = {
    step: o.step,
    remine: { epoch: o.epoch + 1, file, queries: result.uniqueQueries, pool: result.poolSize, kept_old: keptOld, ...(result.lexicalShare !== undefined && { lexical_share: round(result.lexicalShare) }), seconds: (Date.now() - started) / 1000 },
  };
  if (keptOld) run.log(`train: epoch ${o.epoch + 1}: ${keptOld} record(s) got no negatives from the window and keep their previous ones`);
  return { records, entry };
}
