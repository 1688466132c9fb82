/**
 * The small set of primitive ops every model is composed from (ONNX opset 17 semantics).
 * Each helper appends one ONNX node; composite layers (attention, FFN, pooling) live in
 * `src/models` and use only these.
 */
import { type DType, type Value, f32, i64 } from './graph.js';

export const OPSET = 17;

const g = (v: Value) => v.graph;
const one = (v: Value[]) => v[0];

export const add = (a: Value, b: Value) => one(g(a).node('Add', [a, b]));
export const sub = (a: Value, b: Value) => one(g(a).node('Sub', [a, b]));
export const mul = (a: Value, b: Value) => one(g(a).node('Mul', [a, b]));
export const div = (a: Value, b: Value) => one(g(a).node('Div', [a, b]));
export const max = (a: Value, b: Value) => one(g(a).node('Max', [a, b]));
export const sqrt = (a: Value) => one(g(a).node('Sqrt', [a]));
export const erf = (a: Value) => one(g(a).node('Erf', [a]));
export const tanh = (a: Value) => one(g(a).node('Tanh', [a]));
export const matmul = (a: Value, b: Value) => one(g(a).node('MatMul', [a, b]));

/** A float32 scalar constant, broadcastable against anything. */
export const scalar = (like: Value, x: number) => like.graph.constant(f32([x], []), 'scalar');
/** An int64 vector constant (shapes, axes, indices). */
export const ints = (like: Value, xs: number[]) => like.graph.constant(i64(xs), 'ints');

export const cast = (a: Value, to: DType) =>
  one(g(a).node('Cast', [a], { to: onnxType(to) }, 1, undefined, [to]));

export const equal = (a: Value, b: Value) => one(g(a).node('Equal', [a, b], {}, 1, undefined, ['bool']));
export const not = (a: Value) => one(g(a).node('Not', [a], {}, 1, undefined, ['bool']));

export const transpose = (a: Value, perm: number[]) => one(g(a).node('Transpose', [a], { perm }));
/** Reshape; 0 copies the input dimension, -1 is inferred (ONNX rules). */
export const reshape = (a: Value, shape: number[]) => one(g(a).node('Reshape', [a, ints(a, shape)]));
export const unsqueeze = (a: Value, axes: number[]) => one(g(a).node('Unsqueeze', [a, ints(a, axes)]));
export const squeeze = (a: Value, axes: number[]) => one(g(a).node('Squeeze', [a, ints(a, axes)]));
export const shape = (a: Value) => one(g(a).node('Shape', [a], {}, 1, undefined, ['int64']));
export const expand = (a: Value, shapeValue: Value) => one(g(a).node('Expand', [a, shapeValue]));
export const concat = (xs: Value[], axis: number) => one(g(xs[0]).node('Concat', xs, { axis }));

/** Rows of `table` picked by integer `indices` (embedding lookup when axis = 0). */
export const gather = (table: Value, indices: Value, axis = 0) =>
  one(g(table).node('Gather', [table, indices], { axis }, 1, undefined, [table.dtype]));
export const gatherElements = (a: Value, indices: Value, axis: number) =>
  one(g(a).node('GatherElements', [a, indices], { axis }, 1, undefined, [a.dtype]));

/** `a[starts:ends]` along `axes`; `ends` may be a runtime value. */
export function slice(a: Value, starts: Value | number[], ends: Value | number[], axes: number[]): Value {
  const s = Array.isArray(starts) ? ints(a, starts) : starts;
  const e = Array.isArray(ends) ? ints(a, ends) : ends;
  return one(g(a).node('Slice', [a, s, e, ints(a, axes)]));
}

export const reduceSum = (a: Value, axes: number[], keepdims = true) =>
  one(g(a).node('ReduceSum', [a, ints(a, axes)], { keepdims: keepdims ? 1 : 0 }));
export const reduceMax = (a: Value, axes: number[], keepdims = true) =>
  one(g(a).node('ReduceMax', [a], { axes, keepdims: keepdims ? 1 : 0 }));
export const argMax = (a: Value, axis: number, keepdims = true) =>
  one(g(a).node('ArgMax', [a], { axis, keepdims: keepdims ? 1 : 0, select_last_index: 0 }, 1, undefined, ['int64']));
export const cumsum = (a: Value, axis: number) => one(g(a).node('CumSum', [a, ints(a, [axis])]));

export const softmax = (a: Value, axis = -1) => one(g(a).node('Softmax', [a], { axis }));

/** LayerNorm over the last axis, one fused ONNX op (ORT has a fast kernel for it). */
export const layerNorm = (x: Value, scale: Value, bias: Value, epsilon: number) =>
  one(g(x).node('LayerNormalization', [x, scale, bias], { axis: -1, epsilon: { float: epsilon } }));

/** Exact (erf) GELU, written so ORT's optimizer fuses it into its Gelu kernel. */
export function gelu(x: Value): Value {
  const inner = erf(div(x, scalar(x, Math.SQRT2)));
  return mul(mul(x, add(inner, scalar(x, 1))), scalar(x, 0.5));
}

/** `x @ w + b` with `w` stored as [in, out]. */
export const linear = (x: Value, w: Value, b?: Value) => (b ? add(matmul(x, w), b) : matmul(x, w));

/** `a @ bᵀ` for 2-D inputs, as one Gemm so b is never transposed in memory. */
export const matmulTransB = (a: Value, b: Value) => one(g(a).node('Gemm', [a, b], { transB: 1 }));

/** Largest k along the last axis, sorted; ties keep the lower index first (ONNX TopK). */
export function topK(a: Value, k: Value): [Value, Value] {
  const [values, indices] = g(a).node('TopK', [a, k], { axis: -1, largest: 1, sorted: 1 }, 2, undefined, [
    'float32',
    'int64',
  ]);
  return [values, indices];
}

/** Divides rows by their L2 norm, clamped at 1e-12 like torch.nn.functional.normalize. */
export function l2Normalize(x: Value, axis = -1): Value {
  const norm = sqrt(reduceSum(mul(x, x), [axis]));
  return div(x, max(norm, scalar(x, 1e-12)));
}

export function onnxType(dtype: DType): number {
  switch (dtype) {
    case 'float32':
      return 1;
    case 'int64':
      return 7;
    case 'bool':
      return 9;
  }
}
