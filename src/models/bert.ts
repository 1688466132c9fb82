/**
 * BERT (MiniLM, bge-small/base/large): word + absolute position + token-type embeddings,
 * then the shared post-LN encoder. Position ids are 0..seq-1.
 */
import type { Graph, Value } from '../graph/graph.js';
import * as op from '../graph/ops.js';
import type { ModelConfig } from './config.js';
import type { Params } from './params.js';
import { encoder } from './transformer.js';

export interface ModelInputs {
  inputIds: Value;
  attentionMask: Value;
  tokenTypeIds?: Value;
}

/** The graph inputs a BERT model reads; `prefix` separates two towers in one graph (`q_`, `p_`). */
export function bertInputs(graph: Graph, prefix = '', typed = true): ModelInputs {
  const dims = [`${prefix}batch`, `${prefix}sequence`];
  return {
    inputIds: graph.input(`${prefix}input_ids`, 'int64', dims),
    attentionMask: graph.input(`${prefix}attention_mask`, 'int64', dims),
    ...(typed && { tokenTypeIds: graph.input(`${prefix}token_type_ids`, 'int64', dims) }),
  };
}

/** Hidden states [batch, seq, hidden] of a BERT model. */
export function bert(inputs: ModelInputs, p: Params, c: ModelConfig): Value {
  return encoder(bertEmbeddings(inputs, p, c), inputs.attentionMask, p, c);
}

/** word + position + token-type embeddings [batch, seq, hidden], before the LayerNorm. */
export function bertEmbeddings(inputs: ModelInputs, p: Params, c: ModelConfig): Value {
  const h = c.hiddenSize;
  const words = op.gather(p.tensor('embeddings.word_embeddings.weight', [c.vocabSize, h]), inputs.inputIds);
  const positionTable = p.tensor('embeddings.position_embeddings.weight', [c.maxPositions, h]);
  const seqLen = op.slice(op.shape(inputs.inputIds), [1], [2], [0]);
  const positions = op.slice(positionTable, [0], seqLen, [0]); // [seq, hidden], broadcast over batch
  const typeTable = p.tensor('embeddings.token_type_embeddings.weight', [c.typeVocabSize, h]);
  const types = inputs.tokenTypeIds
    ? op.gather(typeTable, inputs.tokenTypeIds)
    : op.slice(typeTable, [0], [1], [0]); // all-zero token types
  return op.add(op.add(words, positions), types);
}
