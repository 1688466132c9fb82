/**
 * XLM-RoBERTa (bge-m3, multilingual-e5) and RoBERTa: BERT's encoder with padding-offset
 * position ids: a token at i gets padding_idx + (number of non-pad tokens up to i), pads get
 * padding_idx. Token types are a single learned row.
 */
import type { Graph, Value } from '../graph/graph.js';
import * as op from '../graph/ops.js';
import type { ModelInputs } from './bert.js';
import type { ModelConfig } from './config.js';
import type { Params } from './params.js';
import { encoder } from './transformer.js';

/** XLM-R reads no token type ids (a single type row). */
export function xlmRobertaInputs(graph: Graph, prefix = ''): ModelInputs {
  const dims = [`${prefix}batch`, `${prefix}sequence`];
  return {
    inputIds: graph.input(`${prefix}input_ids`, 'int64', dims),
    attentionMask: graph.input(`${prefix}attention_mask`, 'int64', dims),
  };
}

/** position_ids = cumsum(ids != pad) * (ids != pad) + pad, as in HF create_position_ids_from_input_ids. */
export function paddingOffsetPositions(inputIds: Value, padId: number): Value {
  const notPad = op.cast(op.not(op.equal(inputIds, op.ints(inputIds, [padId]))), 'int64');
  return op.add(op.mul(op.cumsum(notPad, 1), notPad), op.ints(inputIds, [padId]));
}

/** Hidden states [batch, seq, hidden] of an XLM-RoBERTa model. */
export function xlmRoberta(inputs: ModelInputs, p: Params, c: ModelConfig): Value {
  return encoder(xlmRobertaEmbeddings(inputs, p, c), inputs.attentionMask, p, c);
}

/** word + padding-offset position + token-type embeddings [batch, seq, hidden], before the LayerNorm. */
export function xlmRobertaEmbeddings(inputs: ModelInputs, p: Params, c: ModelConfig): Value {
  const h = c.hiddenSize;
  const words = op.gather(p.tensor('embeddings.word_embeddings.weight', [c.vocabSize, h]), inputs.inputIds);
  const positionTable = p.tensor('embeddings.position_embeddings.weight', [c.maxPositions, h]);
  const positions = op.gather(positionTable, paddingOffsetPositions(inputs.inputIds, c.padTokenId));
  const typeTable = p.tensor('embeddings.token_type_embeddings.weight', [c.typeVocabSize, h]);
  const types = inputs.tokenTypeIds ? op.gather(typeTable, inputs.tokenTypeIds) : op.slice(typeTable, [0], [1], [0]);
  return op.add(op.add(words, positions), types);
}
