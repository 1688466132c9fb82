/**
 * Tensors for session inputs, from onnxruntime-common's Tensor — the class onnxruntime-node and
 * onnxruntime-web share (the browser build maps this import onto onnxruntime-web's own copy), so
 * the code that builds a batch's feed runs under either runtime.
 */
import { Tensor } from 'onnxruntime-common';

export function floatTensor(data: Float32Array, dims: number[]): Tensor {
  return new Tensor('float32', data, dims);
}

export function int64Tensor(data: BigInt64Array, dims: number[]): Tensor {
  return new Tensor('int64', data, dims);
}
