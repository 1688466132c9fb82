/**
 * A model in the browser: its files fetched from a URL or picked by the user, held in memory,
 * and read by the same parsers as the Node build (config, tokenizer, safetensors, the
 * sentence-transformers modules).
 */
import { isDecoder, type ModelConfig, parseConfig, positionLimit } from '../models/model-config.js';
import { TextTokenizer, type Tokenizer } from '../models/tokenizer-json.js';
import { UseTokenizer } from '../models/use-tokenizer.js';
import { decodeSafetensors, type NamedTensor } from '../models/safetensors-format.js';
import { type ModelFiles, savedMaxSeqLength, savedNormalize, savedPooling } from '../models/st-modules.js';
import type { Pooling } from '../models/pooling.js';

/** A model folder's files by relative path (`config.json`, `1_Pooling/config.json`, …). */
export type FileMap = Map<string, Uint8Array>;

export interface WebModel {
  name: string;
  config: ModelConfig;
  tokenizer: Tokenizer;
  /** Hugging Face names and layout. A trainer takes them over (transposes in place). */
  weights: Map<string, NamedTensor>;
  pooling: Pooling;
  normalize: boolean;
  /** Token limit: sentence-transformers' max_seq_length, else the tokenizer's, within the position table. */
  maxLength: number;
  files: FileMap;
}

/** Files a model folder may have besides config.json and model.safetensors. */
const OPTIONAL = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.json', 'modules.json', '1_Pooling/config.json', 'config_sentence_transformers.json', 'sentence_bert_config.json'];

/**
 * A model folder served over HTTP (a Hub-style `resolve/main` URL, or any static server).
 * @example const files = await fetchModelFiles('/models/tiny-bert/');
 */
export async function fetchModelFiles(base: string, fetchFile: typeof fetch = fetch): Promise<FileMap> {
  const root = base.endsWith('/') ? base : `${base}/`;
  const files: FileMap = new Map();
  const get = async (rel: string, required: boolean) => {
    const r = await fetchFile(root + rel);
    if (r.ok) files.set(rel, new Uint8Array(await r.arrayBuffer()));
    else if (required) throw new Error(`${root}${rel}: HTTP ${r.status}`);
  };
  await get('config.json', true);
  await get('model.safetensors', true);
  await Promise.all(OPTIONAL.map((rel) => get(rel, false)));
  return files;
}

/**
 * Files the user picked (`<input type="file" webkitdirectory>`): paths relative to the folder.
 * @example const files = await pickedFiles(input.files!);
 */
export async function pickedFiles(list: ArrayLike<File>): Promise<FileMap> {
  const files: FileMap = new Map();
  for (const f of Array.from(list)) {
    const parts = (f.webkitRelativePath || f.name).split('/');
    if (parts.length > 1) parts.shift(); // the folder's own name
    const rel = parts.join('/');
    // Only what openModel reads: not the folder's ONNX files or other weights.
    if (rel === 'config.json' || rel === 'model.safetensors' || OPTIONAL.includes(rel)) files.set(rel, new Uint8Array(await f.arrayBuffer()));
  }
  return files;
}

/** `files` as st-modules.ts's folder; `name` prefixes paths in errors. */
export function memoryFolder(files: FileMap, name: string): ModelFiles {
  const path = (rel: string) => `${name}/${rel}`;
  return {
    path,
    has: (rel) => files.has(rel),
    json: (rel) => {
      const bytes = files.get(rel);
      if (!bytes) throw new Error(`${path(rel)}: missing`);
      try {
        return JSON.parse(new TextDecoder().decode(bytes));
      } catch (e) {
        throw new Error(`${path(rel)}: not valid JSON (${(e as Error).message})`);
      }
    },
  };
}

/**
 * A model from its files, parsed as the Node build parses a folder.
 * @example const model = openModel(await fetchModelFiles('/models/tiny-bert/'), 'tiny-bert');
 */
export function openModel(files: FileMap, name = 'model'): WebModel {
  const folder = memoryFolder(files, name);
  const object = (rel: string) => (folder.has(rel) ? (folder.json(rel) as Record<string, unknown>) : {});
  if (!folder.has('config.json')) throw new Error(`${folder.path('config.json')}: missing; expected a Hugging Face model folder`);
  const config = parseConfig(folder.json('config.json'), folder.path('config.json'));
  const tokConfig = object('tokenizer_config.json');
  let tokenizer: Tokenizer;
  if (tokConfig.tokenizer_class === 'UseTokenizer' && folder.has('vocab.json')) {
    tokenizer = new UseTokenizer(folder.json('vocab.json') as [string, number][], Number(tokConfig.model_max_length ?? 128), folder.path('vocab.json'));
  } else {
    if (!folder.has('tokenizer.json')) throw new Error(`${name}: no tokenizer.json; save the model with a fast tokenizer first`);
    tokenizer = TextTokenizer.fromJson(object('tokenizer.json'), tokConfig, folder.path('tokenizer.json'));
  }
  const safetensors = files.get('model.safetensors');
  if (!safetensors) throw new Error(`${folder.path('model.safetensors')}: missing (one model.safetensors file; sharded weights are not read in the browser)`);
  const weights = decodeSafetensors(safetensors, folder.path('model.safetensors'));
  return {
    name,
    config,
    tokenizer,
    weights,
    pooling: savedPooling(folder) ?? (isDecoder(config) ? 'last' : 'cls'),
    normalize: savedNormalize(folder) ?? true,
    maxLength: Math.min(savedMaxSeqLength(folder) ?? tokenizer.modelMaxLength, positionLimit(config)),
    files,
  };
}
