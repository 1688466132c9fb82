/**
 * A model directory's weights: `model.safetensors`, or shards listed by
 * `model.safetensors.index.json` (`{"weight_map": {tensor: file}}`), as Hugging Face saves
 * models past its shard size. Names come back canonical (task-head prefixes stripped).
 */
import { existsSync } from 'node:fs';
import { readJsonFile } from '../util/json.js';
import { join } from 'node:path';
import { canonicalNames } from './params.js';
import { mainDType, type NamedTensor, readHeader, readSafetensors, type SafeDType } from './safetensors.js';

const SINGLE = 'model.safetensors';
const UNUSED_HEADS = /^lm_head\./;
const INDEX = 'model.safetensors.index.json';

/** The safetensors files holding a model's weights, in a fixed order. */
export function weightFiles(dir: string): string[] {
  if (existsSync(join(dir, SINGLE))) return [join(dir, SINGLE)];
  const index = join(dir, INDEX);
  if (existsSync(index)) {
    const map = (readJsonFile(index) as { weight_map?: Record<string, string> } | null)?.weight_map;
    if (!map || typeof map !== 'object') throw new Error(`${index}: no "weight_map"`);
    const files = [...new Set(Object.values(map))].sort();
    for (const f of files) if (!existsSync(join(dir, f))) throw new Error(`${index}: lists ${f}, which is missing from ${dir}`);
    return files.map((f) => join(dir, f));
  }
  const hint = existsSync(join(dir, 'pytorch_model.bin')) ? ' (found pytorch_model.bin: re-save with safe_serialization=True)' : '';
  throw new Error(`${dir}: no ${SINGLE} or ${INDEX}${hint}`);
}

/**
 * Every weight of a model directory as float32, by canonical name.
 * @example
 *   const weights = loadWeights('models/bge-m3'); // single file or shards
 */
export function loadWeights(dir: string): Map<string, NamedTensor> {
  const out = new Map<string, NamedTensor>();
  // A language-model head (an untied `lm_head`, vocab × hidden) is never used for embeddings:
  // not read (export copies it from the base file unchanged).
  for (const file of weightFiles(dir)) for (const [name, t] of readSafetensors(file, (n) => !UNUSED_HEADS.test(n))) out.set(name, t);
  return canonicalNames(out);
}

/** The dtype the model is stored in (by bytes), the default for export. */
export function storedDType(dir: string): SafeDType {
  return mainDType(weightFiles(dir).flatMap((f) => [...readHeader(f).tensors.values()]));
}

/**
 * Runs `fn` (which builds a graph over the weights of `dir`), naming the weight file(s) and
 * config.json in a weights error (a missing tensor, a shape the config does not give).
 * @example const encoder = await withWeightFiles(dir, () => Encoder.fromWeights(dir, config, tokenizer, loadWeights(dir)));
 */
export async function withWeightFiles<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const m = /^weights: (.*)$/s.exec((e as Error).message);
    if (!m) throw e;
    const files = weightFiles(dir);
    const where = files.length === 1 ? files[0] : `${join(dir, INDEX)} (${files.length} files)`;
    throw new Error(`${where}: ${m[1]} (for the model ${join(dir, 'config.json')} describes)`);
  }
}
