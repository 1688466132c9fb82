/** The parts of a Hugging Face `config.json` that our architectures read (no file system: the browser build parses with it too). */

export type Architecture = 'bert' | 'xlm-roberta' | 'use-lite' | 'qwen2' | 'qwen3';

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
  /** Key/value heads: fewer than numHeads is grouped-query attention (decoders; = numHeads for encoders). */
  numKvHeads: number;
  /** Width of one attention head (Qwen3 sets it; else hiddenSize / numHeads). */
  headDim: number;
  /** Rotary position embedding base (decoders). */
  ropeTheta: number;
  /** q/k/v projections carry biases (BERT, Qwen2; not Qwen3). */
  attentionBias: boolean;
  /** Per-head RMSNorm of queries and keys before RoPE (Qwen3). */
  qkNorm: boolean;
  /** LoRA's alpha / r when the weights carry adapters (set by training; see training/lora.ts). */
  loraScale?: number;
  /**
   * Texts are single segments (token type 0 throughout): the graph adds token type 0's row
   * instead of looking token types up, and takes no token_type_ids (the browser trainer's graphs:
   * same numbers, and onnxruntime-web's WebGPU kernels run that lookup's backward wrongly).
   */
  singleSegment?: boolean;
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
  qwen2: 'qwen2',
  qwen3: 'qwen3',
};

const DECODERS = new Set<Architecture>(['qwen2', 'qwen3']);

/** Decoder-only models (Qwen2, Qwen3): causal attention, last-token pooling by default. */
export const isDecoder = (c: ModelConfig) => DECODERS.has(c.architecture);

/**
 * A config.json's parsed JSON as a ModelConfig, checked field by field; `path` names it in errors.
 * @example const config = parseConfig(await (await fetch(`${url}/config.json`)).json(), 'config.json');
 */
export function parseConfig(input: unknown, path: string): ModelConfig {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new Error(`${path}: expected a JSON object`);
  const raw = input as Record<string, unknown>;
  const modelType = String(raw.model_type ?? '');
  const architecture = ARCHITECTURES[modelType];
  if (!architecture) {
    throw new Error(
      `${path}: model_type "${modelType}" is not supported; supported: ${Object.keys(ARCHITECTURES).join(', ')}`,
    );
  }
  const num = (key: string, fallback?: number): number => {
    const v = raw[key] ?? fallback;
    if (v === undefined) throw new Error(`${path}: field "${key}" is missing (${modelType} models need it)`);
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${path}: field "${key}" must be a number`);
    return v;
  };
  /** Sizes and counts: whole numbers ≥ `min`. */
  const count = (key: string, fallback?: number, min = 1): number => {
    const v = num(key, fallback);
    if (!Number.isInteger(v) || v < min) throw new Error(`${path}: field "${key}" must be an integer ≥ ${min}, got ${v}`);
    return v;
  };
  const decoder = DECODERS.has(architecture);
  const hiddenAct = String(raw.hidden_act ?? (decoder ? 'silu' : 'gelu'));
  const act = architecture === 'use-lite' ? 'relu' : decoder ? 'silu' : 'gelu';
  if (hiddenAct !== act) throw new Error(`${path}: hidden_act "${hiddenAct}" is not supported for ${modelType} (only "${act}")`);
  if (decoder) {
    // Only plain RoPE and full attention are built; refuse what would silently differ.
    if (raw.rope_scaling != null) throw new Error(`${path}: field "rope_scaling" is not supported (only plain RoPE); got ${JSON.stringify(raw.rope_scaling)}`);
    if (raw.use_sliding_window === true) throw new Error(`${path}: field "use_sliding_window": sliding-window attention is not supported`);
  }
  const hiddenSize = count('hidden_size');
  const numHeads = count('num_attention_heads');
  const config: ModelConfig = {
    architecture,
    modelType,
    vocabSize: count('vocab_size'),
    hiddenSize,
    embeddingSize: count('embedding_size', hiddenSize),
    numLayers: count('num_hidden_layers'),
    numHeads,
    intermediateSize: count('intermediate_size'),
    maxPositions: count('max_position_embeddings'),
    typeVocabSize: decoder ? 0 : count('type_vocab_size', 2),
    layerNormEps: decoder ? num('rms_norm_eps') : num('layer_norm_eps', 1e-12),
    padTokenId: decoder ? Number(raw.pad_token_id ?? raw.eos_token_id ?? 0) : num('pad_token_id', architecture === 'bert' ? 0 : 1),
    hiddenAct,
    numKvHeads: decoder ? count('num_key_value_heads') : numHeads,
    headDim: architecture === 'qwen3' ? count('head_dim', hiddenSize / numHeads) : hiddenSize / numHeads,
    ropeTheta: decoder ? num('rope_theta') : 0,
    attentionBias: architecture === 'qwen3' ? raw.attention_bias === true : true,
    qkNorm: architecture === 'qwen3',
    raw,
  };
  const heads = `num_attention_heads ${numHeads}`;
  if (!Number.isInteger(config.headDim)) throw new Error(`${path}: hidden_size ${hiddenSize} is not divisible by ${heads}`);
  if (decoder && numHeads % config.numKvHeads !== 0) throw new Error(`${path}: ${heads} is not a multiple of num_key_value_heads ${config.numKvHeads}`);
  if (decoder && config.headDim % 2 !== 0) throw new Error(`${path}: head_dim ${config.headDim} must be even for rotary embeddings`);
  return config;
}

/** The longest input the position table allows; XLM-R positions start after the padding index. */
export function positionLimit(config: ModelConfig): number {
  return config.architecture === 'xlm-roberta' ? config.maxPositions - config.padTokenId - 1 : config.maxPositions;
}
