/** Token id lists → right-padded int64 tensors for a model's graph inputs. */
import type ort from 'onnxruntime-node';
import { int64Tensor } from '../runtime/session.js';

/** Feeds `input_ids`, `attention_mask` and (when the graph reads it) `token_type_ids`, with a name prefix. */
export function padBatch(batch: readonly number[][], padId: number, prefix = '', withTokenTypes = true): Record<string, ort.Tensor> {
  const b = batch.length;
  const s = Math.max(...batch.map((x) => x.length));
  const inputIds = new BigInt64Array(b * s).fill(BigInt(padId));
  const mask = new BigInt64Array(b * s);
  batch.forEach((ids, r) => {
    for (let t = 0; t < ids.length; t++) {
      inputIds[r * s + t] = BigInt(ids[t]);
      mask[r * s + t] = 1n;
    }
  });
  const feed: Record<string, ort.Tensor> = {
    [`${prefix}input_ids`]: int64Tensor(inputIds, [b, s]),
    [`${prefix}attention_mask`]: int64Tensor(mask, [b, s]),
  };
  if (withTokenTypes) feed[`${prefix}token_type_ids`] = int64Tensor(new BigInt64Array(b * s), [b, s]);
  return feed;
}
