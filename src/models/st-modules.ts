/**
 * What a sentence-transformers folder says about how it embeds: `modules.json` (which modules,
 * and where), the Pooling module's `config.json` and the Transformer's `sentence_bert_config.json`.
 * Read as sentence-transformers 6 reads them — its own `pooling_mode` and the older
 * `pooling_mode_*_tokens` flags alike — so every job embeds as `SentenceTransformer.encode` does.
 */
import type { Pooling } from './pooling.js';

/**
 * What these readers need of a model folder: whether it has a file, and a file's JSON (errors
 * name the file). `./folder.js` gives a directory on disk (st-config.ts reads folders so); the browser build, files in memory.
 */
export interface ModelFiles {
  /** The path shown in errors for a file of the folder. */
  path(rel: string): string;
  has(rel: string): boolean;
  json(rel: string): unknown;
}

const join = (...parts: string[]) => parts.filter((x) => x !== '').join('/');

function jsonObject(f: ModelFiles, rel: string): Record<string, unknown> {
  const c = f.json(rel);
  if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new Error(`${f.path(rel)}: expected a JSON object`);
  return c as Record<string, unknown>;
}

interface Module {
  type: string;
  path: string;
}

/** The folder's `modules.json`, or undefined without one. */
function modules(dir: ModelFiles): Module[] | undefined {
  if (!dir.has('modules.json')) return undefined;
  const path = dir.path('modules.json');
  const list = dir.json('modules.json');
  if (!Array.isArray(list)) throw new Error(`${path}: expected a list of modules`);
  return list.map((m, i) => {
    if (typeof m?.type !== 'string') throw new Error(`${path}: module ${i}: "type" must be a string`);
    if (m.path !== undefined && typeof m.path !== 'string') throw new Error(`${path}: module ${i}: "path" must be a string`);
    return { type: m.type, path: m.path ?? '' };
  });
}

const isModule = (m: Module, name: string) => new RegExp(`(^|\\.)${name}$`).test(m.type);

/** sentence-transformers' mode names → ours. */
const MODE_NAMES: Record<string, Pooling> = { cls: 'cls', mean: 'mean', lasttoken: 'last', max: 'max', mean_sqrt_len_tokens: 'mean_sqrt_len_tokens', weightedmean: 'weightedmean' };
/** The flags sentence-transformers before v6 wrote (and v6 still reads), in its order. */
const LEGACY_FLAGS: [string, string][] = [
  ['pooling_mode_cls_token', 'cls'],
  ['pooling_mode_max_tokens', 'max'],
  ['pooling_mode_mean_tokens', 'mean'],
  ['pooling_mode_mean_sqrt_len_tokens', 'mean_sqrt_len_tokens'],
  ['pooling_mode_weightedmean_tokens', 'weightedmean'],
  ['pooling_mode_lasttoken', 'lasttoken'],
];

/**
 * The pooling a sentence-transformers folder names, if it has a Pooling module: its
 * `pooling_mode` (v6), else the `pooling_mode_*` flags, else — as sentence-transformers
 * defaults — mean. Several modes at once (concatenated vectors) and `include_prompt: false`
 * are refused by name.
 * @example savedPooling(diskFolder('models/all-MiniLM-L6-v2')); // 'mean'
 */
export function savedPooling(dir: ModelFiles): Pooling | undefined {
  const listed = modules(dir);
  const module = listed?.find((m) => isModule(m, 'Pooling'));
  if (listed && !module) return undefined;
  const rel = join(module?.path ?? '1_Pooling', 'config.json');
  if (!dir.has(rel)) return undefined;
  const path = dir.path(rel);
  const c = jsonObject(dir, rel);
  let modes: unknown[];
  if (c.pooling_mode !== undefined) modes = Array.isArray(c.pooling_mode) ? c.pooling_mode : [c.pooling_mode];
  else {
    modes = LEGACY_FLAGS.filter(([flag]) => c[flag] === true).map(([, mode]) => mode);
    if (!modes.length) modes = ['mean'];
  }
  if (modes.length !== 1) throw new Error(`${path}: pooling modes ${JSON.stringify(modes)} concatenate several vectors, which embedtune does not support; one of ${Object.keys(MODE_NAMES).join(', ')}`);
  const ours = typeof modes[0] === 'string' ? MODE_NAMES[modes[0]] : undefined;
  if (!ours) throw new Error(`${path}: "pooling_mode" ${JSON.stringify(modes[0])} is not one of ${Object.keys(MODE_NAMES).join(', ')}`);
  if (c.include_prompt === false) throw new Error(`${path}: "include_prompt": false (prompt tokens left out of the pooling) is not supported`);
  return ours;
}

/**
 * Whether a sentence-transformers folder normalises its embeddings: `modules.json` lists a
 * `Normalize` module or not. Undefined without a `modules.json`.
 */
export function savedNormalize(dir: ModelFiles): boolean | undefined {
  return modules(dir)?.some((m) => isModule(m, 'Normalize'));
}

/** The Transformer module's config, under the names sentence-transformers tries in turn. */
const TRANSFORMER_CONFIGS = ['sentence_bert_config.json', 'sentence_roberta_config.json', 'sentence_distilbert_config.json', 'sentence_camembert_config.json', 'sentence_albert_config.json', 'sentence_xlm-roberta_config.json', 'sentence_xlnet_config.json'];

/**
 * The Transformer module's `max_seq_length` (`sentence_bert_config.json` of sentence-transformers
 * before 6), which it truncates to in place of the tokenizer's own limit. (Version 6 saves it as
 * the tokenizer's `model_max_length`, which the tokenizer reads.)
 * @example savedMaxSeqLength(diskFolder('models/all-MiniLM-L6-v2')); // 256
 */
export function savedMaxSeqLength(dir: ModelFiles): number | undefined {
  const module = modules(dir)?.find((m) => isModule(m, 'Transformer'));
  const rel = TRANSFORMER_CONFIGS.map((f) => join(module?.path ?? '', f)).find((r) => dir.has(r));
  if (!rel) return undefined;
  const path = dir.path(rel);
  const v = jsonObject(dir, rel).max_seq_length;
  if (v === undefined || v === null) return undefined;
  if (!Number.isInteger(v) || (v as number) < 2) throw new Error(`${path}: "max_seq_length" must be an integer ≥ 2, got ${JSON.stringify(v)}`);
  return v as number;
}

/** The `1_Pooling/config.json` embedtune writes: the flags every sentence-transformers version reads. */
export function poolingConfig(pooling: Pooling, dim: number): Record<string, unknown> {
  const st = Object.entries(MODE_NAMES).find(([, ours]) => ours === pooling)![0];
  return { word_embedding_dimension: dim, ...Object.fromEntries(LEGACY_FLAGS.map(([flag, mode]) => [flag, mode === st])), include_prompt: true };
}

