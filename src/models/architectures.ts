/**
 * The architectures as graphs: inputs → token states → pooled (→ head) → sentence embedding.
 * No file system and no runtime here: the Node encoder and trainer and the browser build all
 * build their graphs from this file.
 */
import { Graph, type Value } from '../graph/graph.js';
import { bert, bertEmbeddings, bertInputs, type ModelInputs } from './bert.js';
import type { ModelConfig } from './model-config.js';
import { Params, type WeightLayout } from './params.js';
import { type Pooling, type PoolingOptions, pool } from './pooling.js';
import type { NamedTensor } from './safetensors-format.js';
import { decoder, decoderContext, decoderEmbeddings, decoderInputs, decoderLayer, decoderNorm } from './decoder.js';
import { attentionBias, embeddingNorm, encoderLayer } from './transformer.js';
import { useLite, useLiteHead, useLiteInputs } from './use-lite-graph.js';
import { xlmRoberta, xlmRobertaEmbeddings, xlmRobertaInputs } from './xlm-roberta.js';

/** Architecture name → builder of its inputs and hidden states. */
export interface ArchitectureBuilder {
  /**
   * The graph inputs it reads, with a name prefix for two towers in one graph; `typed: false`
   * leaves out token type ids (single texts: all type 0), where the model has them.
   */
  inputs: (g: Graph, prefix?: string, typed?: boolean) => ModelInputs;
  /** Token states [batch, seq, hidden]. */
  build: (inputs: ModelInputs, p: Params, c: ModelConfig) => Value;
  /** A projection the model applies to its pooled vector, if it has one. */
  head?: (pooled: Value, p: Params, c: ModelConfig) => Value;
  /**
   * The model as parts, so training can run it layer by layer (`recompute`): x₀ from the inputs,
   * layer i from x and the attention mask, what follows the last layer (a final norm), and the
   * name prefix of layer tensors (`<prefix><i>.`).
   */
  layerwise?: LayerwiseParts;
}

export interface LayerwiseParts {
  embed: (inputs: ModelInputs, p: Params, c: ModelConfig) => Value;
  layer: (x: Value, mask: Value, p: Params, index: number, c: ModelConfig) => Value;
  final?: (x: Value, p: Params, c: ModelConfig) => Value;
  layerPrefix: string;
}

const postLnParts = (embeddings: ArchitectureBuilder['build']): LayerwiseParts => ({
  embed: (inputs, p, c) => embeddingNorm(embeddings(inputs, p, c), p, c),
  layer: (x, mask, p, i, c) => encoderLayer(x, attentionBias(mask), p, i, c),
  layerPrefix: 'encoder.layer.',
});

const decoderParts: LayerwiseParts = {
  embed: decoderEmbeddings,
  layer: (x, mask, p, i, c) => decoderLayer(x, decoderContext(mask, c), p, i, c),
  final: decoderNorm,
  layerPrefix: 'layers.',
};

export const ARCHITECTURES: Record<ModelConfig['architecture'], ArchitectureBuilder> = {
  bert: { inputs: bertInputs, build: bert, layerwise: postLnParts(bertEmbeddings) },
  'xlm-roberta': { inputs: xlmRobertaInputs, build: xlmRoberta, layerwise: postLnParts(xlmRobertaEmbeddings) },
  'use-lite': { inputs: useLiteInputs, build: useLite, head: useLiteHead },
  qwen2: { inputs: decoderInputs, build: decoder, layerwise: decoderParts },
  qwen3: { inputs: decoderInputs, build: decoder, layerwise: decoderParts },
};

/** inputs → token states → pooled (→ head) → truncated / normalised sentence embedding. */
export function sentenceEmbedding(graph: Graph, params: Params, config: ModelConfig, prefix: string, o: PoolingOptions): { inputs: ModelInputs; hidden: Value; embedding: Value } {
  const arch = ARCHITECTURES[config.architecture];
  const inputs = arch.inputs(graph, prefix, !config.singleSegment);
  const hidden = arch.build(inputs, params, config);
  const head = arch.head;
  const embedding = pool(hidden, inputs.attentionMask, o, head ? (x) => head(x, params, config) : undefined);
  return { inputs, hidden, embedding };
}

/** Builds the graph `inputs → hidden states → pooled embedding` for a model. */
export function buildEncoderGraph(
  config: ModelConfig,
  weights: Map<string, NamedTensor>,
  o: { pooling: Pooling; normalize: boolean; dimensions?: number },
  mode: 'initializer' | 'input' = 'initializer',
  layout: WeightLayout = 'hf',
  int8 = false,
): { graph: Graph; inputs: ModelInputs; hidden: Value; embedding: Value; params: Params } {
  const graph = new Graph();
  const params = new Params(graph, weights, mode, layout, config.loraScale, int8);
  const { inputs, hidden, embedding } = sentenceEmbedding(graph, params, config, '', o);
  graph.output(embedding, 'sentence_embedding', ['batch', o.dimensions ?? config.hiddenSize]);
  return { graph, inputs, hidden, embedding, params };
}

