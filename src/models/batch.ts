/** Token id lists → right-padded int64 tensors for a model's graph inputs. */
import type ort from 'onnxruntime-node';
import { int64Tensor } from '../runtime/tensor.js';

/**
 * Feeds `input_ids`, `attention_mask` and (when the graph reads it) `token_type_ids` — zeros, or
 * `typeIds` row by row (query–passage pairs) — with a name prefix.
 */
export function padBatch(batch: readonly number[][], padId: number, prefix = '', withTokenTypes = true, typeIds?: readonly number[][]): Record<string, ort.Tensor> {
  const b = batch.length;
  const s = Math.max(...batch.map((x) => x.length));
  const inputIds = new BigInt64Array(b * s).fill(BigInt(padId));
  const mask = new BigInt64Array(b * s);
  const types = new BigInt64Array(b * s);
  batch.forEach((ids, r) => {
    for (let t = 0; t < ids.length; t++) {
      inputIds[r * s + t] = BigInt(ids[t]!);
      mask[r * s + t] = 1n;
      if (typeIds) types[r * s + t] = BigInt(typeIds[r]![t]!);
    }
  });
  const feed: Record<string, ort.Tensor> = {
    [`${prefix}input_ids`]: int64Tensor(inputIds, [b, s]),
    [`${prefix}attention_mask`]: int64Tensor(mask, [b, s]),
  };
  if (withTokenTypes) feed[`${prefix}token_type_ids`] = int64Tensor(types, [b, s]);
  return feed;
}
