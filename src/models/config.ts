/** The parts of a Hugging Face `config.json` that our architectures read. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export type Architecture = 'bert' | 'xlm-roberta' | 'use-lite';

export interface ModelConfig {
  architecture: Architecture;
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  /** Width of the token embeddings (= hiddenSize except USE-Lite's 256). */
  embeddingSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  maxPositions: number;
  typeVocabSize: number;
  layerNormEps: number;
  padTokenId: number;
  hiddenAct: string;
  /** The raw JSON, written back unchanged on export. */
  raw: Record<string, unknown>;
}

/** model_type values we build, mapped to the architecture file that builds them. */
const ARCHITECTURES: Record<string, Architecture> = {
  bert: 'bert',
  'xlm-roberta': 'xlm-roberta',
  roberta: 'xlm-roberta',
  camembert: 'xlm-roberta',
  'use-lite': 'use-lite',
};

export function readConfig(dir: string): ModelConfig {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) throw new Error(`${dir}: no config.json; expected a Hugging Face model directory`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: invalid JSON (${(e as Error).message})`);
  }
  const modelType = String(raw.model_type ?? '');
  const architecture = ARCHITECTURES[modelType];
  if (!architecture) {
    throw new Error(
      `${path}: model_type "${modelType}" is not supported; supported: ${Object.keys(ARCHITECTURES).join(', ')}`,
    );
  }
  const num = (key: string, fallback?: number): number => {
    const v = raw[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${path}: field "${key}" must be a number`);
    return v;
  };
  const hiddenAct = String(raw.hidden_act ?? 'gelu');
  const act = architecture === 'use-lite' ? 'relu' : 'gelu';
  if (hiddenAct !== act) throw new Error(`${path}: hidden_act "${hiddenAct}" is not supported for ${modelType} (only "${act}")`);
  const config: ModelConfig = {
    architecture,
    modelType,
    vocabSize: num('vocab_size'),
    hiddenSize: num('hidden_size'),
    embeddingSize: num('embedding_size', num('hidden_size')),
    numLayers: num('num_hidden_layers'),
    numHeads: num('num_attention_heads'),
    intermediateSize: num('intermediate_size'),
    maxPositions: num('max_position_embeddings'),
    typeVocabSize: num('type_vocab_size', 2),
    layerNormEps: num('layer_norm_eps', 1e-12),
    padTokenId: num('pad_token_id', architecture === 'bert' ? 0 : 1),
    hiddenAct,
    raw,
  };
  if (config.hiddenSize % config.numHeads !== 0) {
    throw new Error(`${path}: hidden_size ${config.hiddenSize} is not divisible by num_attention_heads ${config.numHeads}`);
  }
  return config;
}
