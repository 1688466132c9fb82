/**
 * Tensors for session inputs, of onnxruntime-node's own Tensor class (it tells fed and
 * pre-allocated output tensors by `instanceof`, so the class must be its copy, not
 * onnxruntime-common's ESM one). The browser build maps `onnxruntime-node` onto
 * onnxruntime-web here (scripts/build-web.mjs), so the code that builds a batch's feed runs
 * under either runtime.
 */
import ort from 'onnxruntime-node';

export function floatTensor(data: Float32Array, dims: number[]): ort.Tensor {
  return new ort.Tensor('float32', data, dims);
}

export function int64Tensor(data: BigInt64Array, dims: number[]): ort.Tensor {
  return new ort.Tensor('int64', data, dims);
}
