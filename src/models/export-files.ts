/**
 * The parts of an export that need no file system (the browser build writes its exports from
 * them too): the forward graph, the ONNX file names transformers.js looks for, the tokenizer
 * files copied, and the sentence-transformers module list.
 */
import { Graph } from '../graph/graph.js';
import { sentenceEmbedding } from './architectures.js';
import type { ModelConfig } from './model-config.js';
import { Params } from './params.js';
import type { PoolingOptions } from './pooling.js';
import type { NamedTensor } from './safetensors-format.js';

/**
 * The ONNX files written, under the names transformers.js looks for (`dtype` fp32 / q8 / fp16):
 * `model.onnx`; `model_quantized.onnx` with int8 linear layers (weights per output channel,
 * activations quantized per call, as onnxruntime's dynamic quantization writes them); and
 * `model_fp16.onnx` with float16 weights cast up to float32 (half the file, float32 arithmetic).
 */
export type OnnxVariant = 'fp32' | 'int8' | 'fp16';
export const ONNX_FILES: Record<OnnxVariant, string> = { fp32: 'model', int8: 'model_quantized', fp16: 'model_fp16' };

export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.txt', 'vocab.json', 'sentencepiece.bpe.model', 'added_tokens.json'];

/**
 * The forward graph: input ids and mask (and token types for BERT) → `last_hidden_state`, which
 * transformers.js pools itself, and `sentence_embedding` — pooled, through the model's own head
 * (USE-Lite's tanh projection) and normalised as `encode` does — for plain onnxruntime users.
 */
export function exportGraph(config: ModelConfig, weights: Map<string, NamedTensor>, pooling: PoolingOptions = { pooling: 'cls', normalize: true }, variant: OnnxVariant = 'fp32'): Graph {
  const graph = new Graph('embedtune-export');
  const params = new Params(graph, weights, 'initializer', 'hf', config.loraScale, variant === 'int8', variant === 'fp16');
  const { hidden, embedding } = sentenceEmbedding(graph, params, config, '', pooling);
  graph.output(hidden, 'last_hidden_state', ['batch', 'sequence', config.hiddenSize]);
  graph.output(embedding, 'sentence_embedding', ['batch', config.hiddenSize]);
  return graph;
}

/** modules.json of an export: Transformer → Pooling (→ Normalize), as sentence-transformers writes it. */
export function modulesJson(normalize: boolean): string {
  const modules = [
    { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
    { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
  ];
  if (normalize) modules.push({ idx: 2, name: '2', path: '2_Normalize', type: 'sentence_transformers.models.Normalize' });
  return JSON.stringify(modules, null, 2) + '\n';
}
