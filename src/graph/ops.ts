/**
 * The small set of primitive ops every model is composed from (ONNX opset 17 semantics).
 * Each op is a helper that appends one ONNX node (inferring the output shape) and, next to
 * it, its gradient rule: given the gradients of the node's outputs, the gradients of its
 * inputs, built from these same ops. `autodiff.ts` walks a graph backwards with these rules.
 * Ops without a rule (integer and shape plumbing) stop gradients.
 */
import type { Attr, Dim, DType, Value } from './graph.js';
import { f32, i64 } from './graph.js';

export const OPSET = 17;

/** A node as the gradient rules see it. */
export interface NodeView {
  inputs: (Value | undefined)[];
  outputs: Value[];
  attrs: Record<string, Attr>;
}
/** Gradients of the inputs from gradients of the outputs (undefined = zero / not needed). */
export type GradRule = (node: NodeView, dys: (Value | undefined)[]) => (Value | undefined)[];
export const GRADIENTS = new Map<string, GradRule>();
const rule = (op: string, fn: GradRule) => GRADIENTS.set(op, fn);

// ---------------------------------------------------------------- shapes

const norm = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

/** Numpy broadcasting of two shapes; a symbolic dim beats '?' and 1. */
export function broadcastShapes(a: Dim[], b: Dim[]): Dim[] {
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    if (x === 1) out.push(y);
    else if (y === 1) out.push(x);
    else if (typeof x === 'number' && typeof y === 'number') out.push(Math.max(x, y));
    else out.push(x === '?' ? y : x);
  }
  return out;
}

function node1(op: string, inputs: (Value | null)[], attrs: Record<string, Attr>, dtype: DType, shape: Dim[]): Value {
  const first = inputs.find((v): v is Value => !!v)!;
  return first.graph.node(op, inputs, attrs, [{ dtype, shape }])[0]!;
}

/** Sums `dy` down to the shape of `x`, undoing broadcasting. */
export function unbroadcast(dy: Value, x: Value): Value {
  let g = dy;
  const extra = g.rank - x.rank;
  if (extra > 0) g = reduceSum(g, [...Array(extra).keys()], false);
  const axes = x.shape.flatMap((d, i) => (d === 1 && g.shape[i] !== 1 ? [i] : []));
  return axes.length ? reduceSum(g, axes, true) : g;
}

// ---------------------------------------------------------------- constants

/** A float32 scalar constant, broadcastable against anything. */
export const scalar = (like: Value, x: number) => like.graph.constant(f32([x], []), 'scalar');
/** An int64 vector constant (shapes, axes, indices). */
export const ints = (like: Value, xs: number[]) => like.graph.constant(i64(xs), 'ints');

// ---------------------------------------------------------------- elementwise

const binary = (op: string, a: Value, b: Value) => node1(op, [a, b], {}, a.dtype, broadcastShapes(a.shape, b.shape));

export const add = (a: Value, b: Value) => binary('Add', a, b);
rule('Add', ({ inputs: [a, b] }, [dy]) => [unbroadcast(dy!, a!), unbroadcast(dy!, b!)]);

export const sub = (a: Value, b: Value) => binary('Sub', a, b);
rule('Sub', ({ inputs: [a, b] }, [dy]) => [unbroadcast(dy!, a!), unbroadcast(neg(dy!), b!)]);

export const mul = (a: Value, b: Value) => binary('Mul', a, b);
rule('Mul', ({ inputs: [a, b] }, [dy]) => [unbroadcast(mul(dy!, b!), a!), unbroadcast(mul(dy!, a!), b!)]);

export const div = (a: Value, b: Value) => binary('Div', a, b);
rule('Div', ({ inputs: [a, b], outputs: [y] }, [dy]) => [unbroadcast(div(dy!, b!), a!), unbroadcast(neg(div(mul(dy!, y!), b!)), b!)]);

export const max = (a: Value, b: Value) => binary('Max', a, b);
rule('Max', ({ inputs: [a, b] }, [dy]) => {
  const takeA = cast(greaterOrEqual(a!, b!), 'float32');
  return [unbroadcast(mul(dy!, takeA), a!), unbroadcast(mul(dy!, sub(scalar(takeA, 1), takeA)), b!)];
});

export const neg = (a: Value) => node1('Neg', [a], {}, a.dtype, a.shape);
rule('Neg', (_, [dy]) => [neg(dy!)]);

export const exp = (a: Value) => node1('Exp', [a], {}, a.dtype, a.shape);
rule('Exp', ({ outputs: [y] }, [dy]) => [mul(dy!, y!)]);

export const log = (a: Value) => node1('Log', [a], {}, a.dtype, a.shape);
rule('Log', ({ inputs: [x] }, [dy]) => [div(dy!, x!)]);

export const sqrt = (a: Value) => node1('Sqrt', [a], {}, a.dtype, a.shape);
rule('Sqrt', ({ outputs: [y] }, [dy]) => [div(mul(dy!, scalar(y!, 0.5)), y!)]);

export const erf = (a: Value) => node1('Erf', [a], {}, a.dtype, a.shape);
// d/dx erf(x) = 2/√π · exp(−x²)
rule('Erf', ({ inputs: [x] }, [dy]) => [mul(dy!, mul(exp(neg(mul(x!, x!))), scalar(x!, 2 / Math.sqrt(Math.PI))))]);

export const tanh = (a: Value) => node1('Tanh', [a], {}, a.dtype, a.shape);
rule('Tanh', ({ outputs: [y] }, [dy]) => [mul(dy!, sub(scalar(y!, 1), mul(y!, y!)))]);

export const sin = (a: Value) => node1('Sin', [a], {}, a.dtype, a.shape);
rule('Sin', ({ inputs: [x] }, [dy]) => [mul(dy!, cos(x!))]);

export const cos = (a: Value) => node1('Cos', [a], {}, a.dtype, a.shape);
rule('Cos', ({ inputs: [x] }, [dy]) => [neg(mul(dy!, sin(x!)))]);

export const sigmoid = (a: Value) => node1('Sigmoid', [a], {}, a.dtype, a.shape);
rule('Sigmoid', ({ outputs: [y] }, [dy]) => [mul(dy!, mul(y!, sub(scalar(y!, 1), y!)))]);

export const relu = (a: Value) => node1('Relu', [a], {}, a.dtype, a.shape);
rule('Relu', ({ inputs: [x] }, [dy]) => [mul(dy!, cast(greater(x!, scalar(x!, 0)), 'float32'))]);

export const identity = (a: Value) => node1('Identity', [a], {}, a.dtype, a.shape);
rule('Identity', (_, [dy]) => [dy]);

export const cast = (a: Value, to: DType) => node1('Cast', [a], { to: onnxType(to) }, to, a.shape);
rule('Cast', ({ inputs: [a], outputs: [y] }, [dy]) => [a!.dtype === 'float32' && y!.dtype === 'float32' ? dy : undefined]);

// Comparisons and integer plumbing: no gradients.
export const equal = (a: Value, b: Value) => node1('Equal', [a, b], {}, 'bool', broadcastShapes(a.shape, b.shape));
export const greaterOrEqual = (a: Value, b: Value) => node1('GreaterOrEqual', [a, b], {}, 'bool', broadcastShapes(a.shape, b.shape));
export const greater = (a: Value, b: Value) => node1('Greater', [a, b], {}, 'bool', broadcastShapes(a.shape, b.shape));
/** 0, 1, …, n − 1 for a runtime int64 scalar n. */
export const range = (n: Value) => node1('Range', [n.graph.constant(i64([0], [])), n, n.graph.constant(i64([1], []))], {}, 'int64', ['?']);
export const not = (a: Value) => node1('Not', [a], {}, 'bool', a.shape);
export const shape = (a: Value) => node1('Shape', [a], {}, 'int64', [a.rank]);
export const cumsum = (a: Value, axis: number) => node1('CumSum', [a, ints(a, [axis])], {}, a.dtype, a.shape);
/**
 * Zeros of `like`'s runtime shape: a 0 broadcast by Expand, which onnxruntime's WebGPU provider
 * runs on the device (ConstantOfShape, whose input is a shape, it leaves on the CPU).
 */
export const zerosLike = (like: Value) => expand(like.graph.constant(f32([0], []), 'zero'), shape(like), like.shape);

// ---------------------------------------------------------------- matrix products

/** Swaps the last two axes. */
export const transposeLast = (a: Value) => {
  const perm = [...a.shape.keys()];
  [perm[a.rank - 2], perm[a.rank - 1]] = [perm[a.rank - 1]!, perm[a.rank - 2]!];
  return transpose(a, perm);
};

export function matmul(a: Value, b: Value): Value {
  const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
  return node1('MatMul', [a, b], {}, a.dtype, [...batch, a.shape[a.rank - 2]!, b.shape[b.rank - 1]!]);
}
rule('MatMul', ({ inputs: [a, b] }, [dy]) => {
  const da = unbroadcast(matmul(dy!, transposeLast(b!)), a!);
  if (b!.rank === 2 && a!.rank > 2) {
    // Weight of a linear layer: fold every leading axis into one long matrix product.
    const k = a!.shape[a!.rank - 1] as number;
    const n = b!.shape[1] as number;
    return [da, matmul(transpose(reshape(a!, [-1, k]), [1, 0]), reshape(dy!, [-1, n]))];
  }
  return [da, unbroadcast(matmul(transposeLast(a!), dy!), b!)];
});

/** `a @ bᵀ` for 2-D inputs, as one Gemm so b is never transposed in memory. */
export const matmulTransB = (a: Value, b: Value) => node1('Gemm', [a, b], { transB: 1 }, a.dtype, [a.shape[0]!, b.shape[0]!]);
rule('Gemm', ({ inputs: [a, b], attrs }, [dy]) => {
  if (attrs.transB !== 1 || attrs.transA) throw new Error('Gemm gradient: only transB=1 is supported');
  return [matmul(dy!, b!), matmul(transpose(dy!, [1, 0]), a!)];
});

/** `x @ w + b` with `w` stored as [in, out]. */
export const linear = (x: Value, w: Value, b?: Value) => (b ? add(matmul(x, w), b) : matmul(x, w));

// ---------------------------------------------------------------- int8 inference (no gradients)

/** Per-tensor dynamic quantization to uint8 (ONNX DynamicQuantizeLinear): [q, scale, zero point]. */
export function dynamicQuantizeLinear(x: Value): [Value, Value, Value] {
  const [q, scale, zero] = x.graph.node('DynamicQuantizeLinear', [x], {}, [
    { dtype: 'uint8', shape: x.shape },
    { dtype: 'float32', shape: [] },
    { dtype: 'uint8', shape: [] },
  ]);
  return [q!, scale!, zero!];
}

/** Integer matmul (ONNX MatMulInteger): (a − aZero) · (b − bZero) in int32; bZero per column. */
export const matMulInteger = (a: Value, b: Value, aZero: Value, bZero: Value) =>
  node1('MatMulInteger', [a, b, aZero, bZero], {}, 'int32', [...a.shape.slice(0, -1), b.shape[b.rank - 1]!]);

/**
 * `x · w` with `w` stored as int8 [in, out] with a float scale per output column (zero points 0)
 * and `x` quantized to uint8 per call — the pattern onnxruntime's dynamic quantization writes and
 * its optimizer fuses into one integer GEMM (MatMulIntegerToFloat / DynamicQuantizeMatMul).
 */
export function quantizedMatmul(x: Value, w: Value, wZero: Value, wScale: Value): Value {
  const [q, scale, zero] = dynamicQuantizeLinear(x);
  return mul(cast(matMulInteger(q, w, zero, wZero), 'float32'), mul(scale, wScale));
}

// ---------------------------------------------------------------- shape ops

export const transpose = (a: Value, perm: number[]) => node1('Transpose', [a], { perm }, a.dtype, perm.map((p) => a.shape[p]!));
rule('Transpose', ({ attrs }, [dy]) => {
  const perm = attrs.perm as number[];
  const inverse = perm.map((_, i) => perm.indexOf(i));
  return [transpose(dy!, inverse)];
});

/** Reshape; 0 copies the input dimension, -1 is inferred (ONNX rules). */
export function reshape(a: Value, dims: number[]): Value {
  const out: Dim[] = dims.map((d, i) => (d === 0 ? a.shape[i]! : d === -1 ? '?' : d));
  const known = a.shape.every((d) => typeof d === 'number') && out.filter((d) => d === '?').length === 1;
  if (known) {
    const total = (a.shape as number[]).reduce((x, y) => x * y, 1);
    const rest = out.reduce<number>((x, y) => (typeof y === 'number' ? x * y : x), 1);
    out[out.indexOf('?')] = total / rest;
  }
  return node1('Reshape', [a, ints(a, dims)], {}, a.dtype, out);
}
/** Reshape to another value's runtime shape. */
export const reshapeLike = (a: Value, like: Value) => node1('Reshape', [a, shape(like)], {}, a.dtype, like.shape);
rule('Reshape', ({ inputs: [a] }, [dy]) => [reshapeLike(dy!, a!)]);

export function unsqueeze(a: Value, axes: number[]): Value {
  const rank = a.rank + axes.length;
  const at = new Set(axes.map((x) => norm(x, rank)));
  const out: Dim[] = [];
  let j = 0;
  for (let i = 0; i < rank; i++) out.push(at.has(i) ? 1 : a.shape[j++]!);
  return node1('Unsqueeze', [a, ints(a, axes)], {}, a.dtype, out);
}
rule('Unsqueeze', ({ inputs: [a] }, [dy]) => [reshapeLike(dy!, a!)]);

export function squeeze(a: Value, axes: number[]): Value {
  const at = new Set(axes.map((x) => norm(x, a.rank)));
  return node1('Squeeze', [a, ints(a, axes)], {}, a.dtype, a.shape.filter((_, i) => !at.has(i)));
}
rule('Squeeze', ({ inputs: [a] }, [dy]) => [reshapeLike(dy!, a!)]);

export const expand = (a: Value, shapeValue: Value, outShape?: Dim[]) =>
  node1('Expand', [a, shapeValue], {}, a.dtype, outShape ?? Array(shapeValue.shape[0] as number).fill('?'));
rule('Expand', ({ inputs: [a] }, [dy]) => [unbroadcast(dy!, a!)]);

export function concat(xs: Value[], axis: number): Value {
  const ax = norm(axis, xs[0]!.rank);
  const dims = xs.map((x) => x.shape[ax]);
  const out = [...xs[0]!.shape];
  out[ax] = dims.every((d) => typeof d === 'number') ? (dims as number[]).reduce((a, b) => a + b, 0) : '?';
  return node1('Concat', xs, { axis }, xs[0]!.dtype, out);
}
// Each input gets its stretch of dy along the axis (runtime offsets: sizes may be symbolic).
rule('Concat', ({ inputs, attrs }, [dy]) => {
  const ax = norm(attrs.axis as number, dy!.rank);
  const sizes = inputs.map((x) => slice(shape(x!), [ax], [ax + 1], [0]));
  let start: Value = ints(dy!, [0]);
  return inputs.map((x, i) => {
    const end = add(start, sizes[i]!);
    const part = node1('Slice', [dy!, start, end, ints(dy!, [ax])], {}, dy!.dtype, x!.shape);
    start = end;
    return part;
  });
});

/**
 * `a[starts:ends]` along `axes`; `ends` may be a runtime value. Starts are static, so the
 * gradient is a zero-padding of dy back to the input's runtime shape.
 */
export function slice(a: Value, starts: number[], ends: Value | number[], axes: number[]): Value {
  const out = [...a.shape];
  axes.forEach((axis, i) => {
    const ax = norm(axis, a.rank);
    const d = a.shape[ax];
    const e = Array.isArray(ends) ? ends[i] : undefined;
    out[ax] = e !== undefined && typeof d === 'number' ? Math.min(e, d) - starts[i]! : e !== undefined && e - starts[i]! === 1 ? 1 : '?';
  });
  const e = Array.isArray(ends) ? ints(a, ends) : ends;
  return node1('Slice', [a, ints(a, starts), e, ints(a, axes)], {}, a.dtype, out);
}
rule('Slice', ({ inputs: [a, starts, , axes] }, [dy]) => {
  const startsData = a!.graph.initializers.get(starts!.name)!.data as BigInt64Array;
  const axesData = a!.graph.initializers.get(axes!.name)!.data as BigInt64Array;
  const before = new Array<number>(a!.rank).fill(0);
  axesData.forEach((ax, i) => (before[norm(Number(ax), a!.rank)] = Number(startsData[i])));
  const beforeV = ints(a!, before);
  const after = sub(sub(shape(a!), shape(dy!)), beforeV);
  const pads = concat([beforeV, after], 0);
  return [node1('Pad', [dy!, pads], { mode: 'constant' }, dy!.dtype, a!.shape)];
});

// ---------------------------------------------------------------- gathers

/** Rows of `table` picked by integer `indices` (embedding lookup when axis = 0). */
export function gather(table: Value, indices: Value, axis = 0): Value {
  const ax = norm(axis, table.rank);
  return node1('Gather', [table, indices], { axis }, table.dtype, [...table.shape.slice(0, ax), ...indices.shape, ...table.shape.slice(ax + 1)]);
}
rule('Gather', ({ inputs: [table, indices], attrs }, [dy]) => {
  if ((attrs.axis ?? 0) !== 0) throw new Error('Gather gradient: only axis 0 (embedding lookup) is supported');
  // Rows used several times accumulate: ScatterND with reduction add.
  const at = unsqueeze(indices!, [-1]);
  return [node1('ScatterND', [zerosLike(table!), at, dy!], { reduction: 'add' }, 'float32', table!.shape)];
});

export const gatherElements = (a: Value, indices: Value, axis: number) =>
  node1('GatherElements', [a, indices], { axis }, a.dtype, indices.shape);
rule('GatherElements', ({ inputs: [a, indices], attrs }, [dy]) => [
  node1('ScatterElements', [zerosLike(a!), indices!, dy!], { axis: attrs.axis!, reduction: 'add' }, 'float32', a!.shape),
]);

/**
 * `data` with `updates` added at `indices` along `axis` (repeated indices accumulate): y = data,
 * y[idx[i]] += u[i]. dy flows to data unchanged, and to each update from where it was added:
 * du = dy[idx] (GatherElements).
 */
export const scatterAdd = (data: Value, indices: Value, updates: Value, axis = 0) =>
  node1('ScatterElements', [data, indices, updates], { axis, reduction: 'add' }, data.dtype, data.shape);
rule('ScatterElements', ({ inputs: [, indices], attrs }, [dy]) => {
  if (attrs.reduction !== 'add') throw new Error(`ScatterElements gradient: only reduction "add" (got ${attrs.reduction})`);
  return [dy, undefined, gatherElements(dy!, indices!, attrs.axis as number)];
});

/**
 * The value, with no gradient through it (torch's `.detach()`): a teacher made of the student's
 * own scores. An inference-mode Dropout, which ONNX defines as the identity; its rule gives nothing.
 */
export const stopGradient = (a: Value) => node1('Dropout', [a], {}, a.dtype, a.shape);
rule('Dropout', () => [undefined]);

// ---------------------------------------------------------------- reductions

function reducedShape(a: Value, axes: number[], keepdims: boolean): Dim[] {
  const at = new Set(axes.map((x) => norm(x, a.rank)));
  return keepdims ? a.shape.map((d, i) => (at.has(i) ? 1 : d)) : a.shape.filter((_, i) => !at.has(i));
}

export const reduceSum = (a: Value, axes: number[], keepdims = true) =>
  node1('ReduceSum', [a, ints(a, axes)], { keepdims: keepdims ? 1 : 0 }, a.dtype, reducedShape(a, axes, keepdims));
rule('ReduceSum', ({ inputs: [a, axes], attrs }, [dy]) => {
  const ax = [...(a!.graph.initializers.get(axes!.name)!.data as BigInt64Array)].map((x) => norm(Number(x), a!.rank));
  const kept = attrs.keepdims === 0 ? unsqueeze(dy!, ax.sort((x, y) => x - y)) : dy!;
  return [expand(kept, shape(a!), a!.shape)];
});

export const reduceMean = (a: Value, axes: number[], keepdims = true) =>
  node1('ReduceMean', [a], { axes, keepdims: keepdims ? 1 : 0 }, a.dtype, reducedShape(a, axes, keepdims));
rule('ReduceMean', ({ inputs: [a], outputs: [y], attrs }, [dy]) => {
  const ax = (attrs.axes as number[]).map((x) => norm(x, a!.rank)).sort((x, y) => x - y);
  const kept = attrs.keepdims === 0 ? unsqueeze(dy!, ax) : dy!;
  // divide by the number of reduced elements = size(a) / size(y), known only at runtime
  const count = div(cast(reduceProd(shape(a!)), 'float32'), cast(reduceProd(shape(y!)), 'float32'));
  return [expand(div(kept, count), shape(a!), a!.shape)];
});

const reduceProd = (a: Value) => node1('ReduceProd', [a], { keepdims: 1 }, a.dtype, [1]);

export const reduceMax = (a: Value, axes: number[], keepdims = true) =>
  node1('ReduceMax', [a], { axes, keepdims: keepdims ? 1 : 0 }, a.dtype, reducedShape(a, axes, keepdims));
// dy flows to the maximum; elements tied for it share it equally (a subgradient; ties of real
// activations are measure-zero): dx = dy · [a = y] / Σ[a = y].
rule('ReduceMax', ({ inputs: [a], outputs: [y], attrs }, [dy]) => {
  const ax = (attrs.axes as number[]).map((x) => norm(x, a!.rank)).sort((x, y) => x - y);
  const keep = (v: Value) => (attrs.keepdims === 0 ? unsqueeze(v, ax) : v);
  const hit = cast(equal(a!, keep(y!)), 'float32');
  return [mul(hit, div(keep(dy!), reduceSum(hit, ax, true)))];
});
export const argMax = (a: Value, axis: number, keepdims = true) =>
  node1('ArgMax', [a], { axis, keepdims: keepdims ? 1 : 0, select_last_index: 0 }, 'int64', reducedShape(a, [axis], keepdims));

/** Largest k along the last axis, sorted; ties keep the lower index first (ONNX TopK). */
export function topK(a: Value, k: Value): [Value, Value] {
  const shp = [...a.shape.slice(0, -1), 'k'];
  const [values, indices] = a.graph.node('TopK', [a, k], { axis: -1, largest: 1, sorted: 1 }, [
    { dtype: 'float32', shape: shp },
    { dtype: 'int64', shape: shp },
  ]);
  return [values!, indices!];
}

// ---------------------------------------------------------------- normalisations

export const softmax = (a: Value, axis = -1) => node1('Softmax', [a], { axis }, a.dtype, a.shape);
// dx = y ⊙ (dy − Σ dy ⊙ y)
rule('Softmax', ({ outputs: [y], attrs }, [dy]) => [mul(y!, sub(dy!, reduceSum(mul(dy!, y!), [attrs.axis as number], true)))]);

/**
 * log softmax as (x − m) − log Σ exp(x − m), m = max x: ops every provider has (onnxruntime's
 * WebGPU provider has no LogSoftmax kernel, which put the loss on the CPU). Its gradient comes
 * from the parts; the share through m is −Σdy + Σdy·Σsoftmax = 0 up to rounding.
 */
export function logSoftmax(a: Value, axis = -1): Value {
  const z = sub(a, reduceMax(a, [axis], true));
  return sub(z, log(reduceSum(exp(z), [axis], true)));
}

/** LayerNorm over the last axis, one fused ONNX op; it also outputs the mean and 1/σ its gradient needs. */
export function layerNorm(x: Value, scale: Value, bias: Value, epsilon: number): Value {
  const stat = [...x.shape.slice(0, -1), 1];
  return x.graph.node('LayerNormalization', [x, scale, bias], { axis: -1, epsilon: { float: epsilon } }, [
    { dtype: 'float32', shape: x.shape },
    { dtype: 'float32', shape: stat },
    { dtype: 'float32', shape: stat },
  ])[0]!;
}
// x̂ = (x − μ)/σ;  g = dy ⊙ γ;  dx = (g − mean(g) − x̂ ⊙ mean(g ⊙ x̂)) / σ
rule('LayerNormalization', ({ inputs: [x, scale, bias], outputs: [, mean, invStd] }, [dy]) => {
  const xhat = mul(sub(x!, mean!), invStd!);
  const g = mul(dy!, scale!);
  const dx = mul(invStd!, sub(sub(g, reduceMean(g, [-1])), mul(xhat, reduceMean(mul(g, xhat), [-1]))));
  return [dx, unbroadcast(mul(dy!, xhat), scale!), unbroadcast(dy!, bias!)];
});

// ---------------------------------------------------------------- composites

/** Exact (erf) GELU, written so ORT's optimizer fuses it into its Gelu kernel. */
export function gelu(x: Value): Value {
  const inner = erf(div(x, scalar(x, Math.SQRT2)));
  return mul(mul(x, add(inner, scalar(x, 1))), scalar(x, 0.5));
}

/**
 * Divides rows by their L2 norm, clamped at 1e-12 like torch.nn.functional.normalize. The clamp
 * sits under the square root (√max(Σx², 1e-24) = max(‖x‖, 1e-12)), so an all-zero row gets a
 * zero gradient instead of Sqrt's 0/0.
 */
export function l2Normalize(x: Value, axis = -1): Value {
  const n = sqrt(max(reduceSum(mul(x, x), [axis]), scalar(x, 1e-24)));
  return div(x, n);
}

/** SiLU (swish): x · σ(x), the activation of SwiGLU feed-forward layers. */
export const silu = (x: Value) => mul(x, sigmoid(x));

/**
 * RMSNorm over the last axis, as Llama/Qwen define it: x / √(mean(x²) + ε) · w.
 */
export function rmsNorm(x: Value, weight: Value, epsilon: number): Value {
  const rms = sqrt(add(reduceMean(mul(x, x), [-1]), scalar(x, epsilon)));
  return mul(div(x, rms), weight);
}

export function onnxType(dtype: DType): number {
  switch (dtype) {
    case 'float32':
      return 1;
    case 'int64':
      return 7;
    case 'bool':
      return 9;
    case 'int8':
      return 3;
    case 'uint8':
      return 2;
    case 'int32':
      return 6;
    case 'float16':
      return 10;
  }
}
