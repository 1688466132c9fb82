/**
 * Every gradient rule against central finite differences. Each case builds y = op(inputs),
 * reduces it to a scalar with random weights (so the upstream gradient is not all ones), and
 * compares autodiff's gradient of every float input with (L(x+h) − L(x−h)) / 2h.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gradients } from '../src/graph/autodiff.js';
import { Graph, i64, type Value } from '../src/graph/graph.js';
import * as op from '../src/graph/ops.js';
import { floatTensor, int64Tensor, Session } from '../src/runtime/session.js';
import { INT8_WEIGHT_MAX } from '../src/models/params.js';
import { Rng } from '../src/util/rng.js';

type Build = (inputs: Value[], g: Graph) => Value;

async function checkGradient(build: Build, shapes: number[][], o: { positive?: boolean; seed?: number; tol?: number } = {}) {
  const rng = new Rng(o.seed ?? 1);
  const g = new Graph('grad-check');
  const xs = shapes.map((s, i) => g.input(`x${i}`, 'float32', s));
  const y = build(xs, g);
  const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
  const yShape = y.shape as number[];
  assert.ok(yShape.every((d) => typeof d === 'number'), `static output shape, got [${y.shape}]`);
  const weights = g.constant({ dtype: 'float32', dims: yShape, data: Float32Array.from({ length: size(yShape) }, () => rng.normal()) });
  const loss = op.reduceSum(op.mul(y, weights), [...yShape.keys()], false);
  const grads = gradients(g, loss, xs);
  g.output(loss, 'loss', []);
  grads.forEach((d, i) => g.output(d, `grad${i}`, shapes[i]));
  const session = await Session.create(g, { threads: 1 });
  const data = shapes.map((s) => Float64Array.from({ length: size(s) }, () => (o.positive ? 0.5 + rng.next() : rng.normal())));
  const run = async (vals: Float64Array[]) =>
    session.run(Object.fromEntries(vals.map((v, i) => [`x${i}`, floatTensor(Float32Array.from(v), shapes[i]!)])));
  const base = await run(data);
  const h = 1e-2;
  for (let i = 0; i < shapes.length; i++) {
    const analytic = base[`grad${i}`]!.data as Float32Array;
    for (let j = 0; j < data[i]!.length; j++) {
      const plus = data.map((d) => Float64Array.from(d));
      const minus = data.map((d) => Float64Array.from(d));
      plus[i]![j]! += h;
      minus[i]![j]! -= h;
      const lp = ((await run(plus)).loss!.data as Float32Array)[0];
      const lm = ((await run(minus)).loss!.data as Float32Array)[0];
      const numeric = (lp! - lm!) / (2 * h);
      const err = Math.abs(numeric - analytic[j]!);
      assert.ok(err <= (o.tol ?? 2e-2) * Math.max(1, Math.abs(numeric)), `input ${i}[${j}]: autodiff ${analytic[j]} vs finite difference ${numeric}`);
    }
  }
  await session.release();
}

const intConst = (g: Graph, xs: number[], dims: number[]) => g.constant(i64(xs, dims));

describe('gradient rules match finite differences', () => {
  it('Add with broadcasting', () => checkGradient(([a, b]) => op.add(a!, b!), [[2, 3, 4], [4]]));
  it('Add broadcasting a middle axis', () => checkGradient(([a, b]) => op.add(a!, b!), [[2, 3, 4], [2, 1, 4]]));
  it('Sub with broadcasting', () => checkGradient(([a, b]) => op.sub(a!, b!), [[3, 1], [1, 4]]));
  it('Mul with broadcasting', () => checkGradient(([a, b]) => op.mul(a!, b!), [[2, 3], [3]]));
  it('Div', () => checkGradient(([a, b]) => op.div(a!, b!), [[2, 3], [2, 3]], { positive: true }));
  it('Max', () => checkGradient(([a, b]) => op.max(a!, b!), [[2, 5], [2, 5]]));
  it('ReduceMax over the middle axis, kept and dropped', async () => {
    await checkGradient(([a]) => op.reduceMax(a!, [1], false), [[2, 4, 3]]);
    await checkGradient(([a]) => op.reduceMax(a!, [1], true), [[2, 4, 3]]);
  });
  it('Neg', () => checkGradient(([a]) => op.neg(a!), [[4]]));
  it('Exp', () => checkGradient(([a]) => op.exp(a!), [[5]]));
  it('Sqrt', () => checkGradient(([a]) => op.sqrt(a!), [[5]], { positive: true }));
  it('Erf', () => checkGradient(([a]) => op.erf(a!), [[6]]));
  it('Sin', () => checkGradient(([a]) => op.sin(a!), [[6]]));
  it('Cos', () => checkGradient(([a]) => op.cos(a!), [[6]]));
  it('Relu', () => checkGradient(([a]) => op.relu(a!), [[8]]));
  it('Sigmoid', () => checkGradient(([a]) => op.sigmoid(a!), [[6]]));
  it('SiLU (composite)', () => checkGradient(([a]) => op.silu(a!), [[6]]));
  it('RMSNorm (composite: input, weight)', () => checkGradient(([x, w]) => op.rmsNorm(x!, w!, 1e-6), [[2, 3, 6], [6]]));
  it('Concat (three inputs, middle axis)', () => checkGradient(([a, b, c]) => op.concat([a!, b!, c!], 1), [[2, 1, 3], [2, 4, 3], [2, 2, 3]]));
  it('Tanh', () => checkGradient(([a]) => op.tanh(a!), [[6]]));
  it('Identity and Cast float→float', () => checkGradient(([a]) => op.cast(op.identity(a!), 'float32'), [[3]]));
  it('MatMul 3-D × 2-D (linear layer)', () => checkGradient(([a, b]) => op.matmul(a!, b!), [[2, 3, 4], [4, 5]]));
  it('MatMul 4-D × 4-D (attention)', () => checkGradient(([a, b]) => op.matmul(a!, b!), [[1, 2, 3, 4], [1, 2, 4, 3]]));
  it('MatMul 2-D', () => checkGradient(([a, b]) => op.matmul(a!, b!), [[3, 4], [4, 2]]));
  it('Gemm with transB', () => checkGradient(([a, b]) => op.matmulTransB(a!, b!), [[3, 4], [5, 4]]));
  it('Transpose', () => checkGradient(([a]) => op.transpose(a!, [2, 0, 1]), [[2, 3, 4]]));
  it('Reshape with 0 and -1', () => checkGradient(([a]) => op.reshape(a!, [0, -1]), [[2, 3, 4]]));
  it('Unsqueeze and Squeeze', () => checkGradient(([a]) => op.squeeze(op.unsqueeze(a!, [1]), [1]), [[3, 4]]));
  it('Expand', () => checkGradient(([a], g) => op.expand(a!, intConst(g, [2, 3, 4], [3]), [2, 3, 4]), [[3, 1]]));
  it('Slice with static bounds', () => checkGradient(([a]) => op.slice(a!, [1, 0], [3, 2], [0, 1]), [[4, 3]]));
  it('Slice with a runtime end', () =>
    checkGradient(([a, b]) => op.add(op.slice(a!, [0], op.slice(op.shape(b!), [0], [1], [0]), [0]), b!), [[6, 2], [4, 2]]));
  it('Gather (embedding rows, repeated)', () =>
    checkGradient(([t], g) => op.gather(t!, intConst(g, [2, 0, 2, 3, 2, 1], [2, 3])), [[5, 3]]));
  it('GatherElements (repeated)', () =>
    checkGradient(([a], g) => op.gatherElements(a!, intConst(g, [1, 1, 0, 2], [2, 2]), 1), [[2, 3]]));
  it('ScatterElements with reduction add (repeated indices; data and updates)', () =>
    checkGradient(([d, u], g) => op.scatterAdd(d!, intConst(g, [4, 0, 4, 2, 0], [5]), u!), [[6], [5]]));
  it('stopGradient: the value passes (finite differences through it), no gradient flows back', async () => {
    await checkGradient(([a], g) => op.mul(a!, op.stopGradient(g.constant({ dtype: 'float32', dims: [4], data: Float32Array.of(1, -2, 3, 0.5) }))), [[4]]);
    const g = new Graph('stop');
    const b = g.input('b', 'float32', [4]);
    const [db] = gradients(g, op.reduceSum(op.add(op.mul(b, op.stopGradient(b)), b), [0], false), [b]);
    g.output(db!, 'db', [4]);
    const s = await Session.create(g, { threads: 1 });
    const out = await s.run({ b: floatTensor(Float32Array.of(1, 2, 3, 4), [4]) });
    assert.deepEqual([...(out.db!.data as Float32Array)], [2, 3, 4, 5]); // stop(b) + 1, not 2b + 1
    await s.release();
  });
  it('ReduceSum keepdims=0', () => checkGradient(([a]) => op.reduceSum(a!, [0, 2], false), [[2, 3, 4]]));
  it('ReduceSum keepdims=1', () => checkGradient(([a]) => op.reduceSum(a!, [-1], true), [[2, 3]]));
  it('ReduceMean', () => checkGradient(([a]) => op.reduceMean(a!, [1], false), [[2, 4, 3]]));
  it('Softmax', () => checkGradient(([a]) => op.softmax(a!, -1), [[2, 5]]));
  it('Log', () => checkGradient(([a]) => op.log(a!), [[5]], { positive: true }));
  it('log softmax (composite: max-shifted, no LogSoftmax op)', () => checkGradient(([a]) => op.logSoftmax(a!, 1), [[3, 4]]));
  it('LayerNormalization (input, scale, bias)', () => checkGradient(([x, s, b]) => op.layerNorm(x!, s!, b!, 1e-5), [[2, 3, 6], [6], [6]]));
  it('GELU (composite)', () => checkGradient(([a]) => op.gelu(a!), [[7]]));
  it('L2 normalise (composite)', () => checkGradient(([a]) => op.l2Normalize(a!), [[3, 4]]));
});

describe('autodiff', () => {
  it('sums gradients from several consumers', () => checkGradient(([a]) => op.add(op.mul(a!, a!), op.exp(a!)), [[4]]));

  it('computes a vector-Jacobian product from a seed input', async () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [3]);
    const seed = g.input('seed', 'float32', [3]);
    const y = op.mul(x, x);
    const [dx] = gradients(g, y, [x], seed);
    g.output(dx!, 'dx');
    const s = await Session.create(g, { threads: 1 });
    const out = await s.run({ x: floatTensor(Float32Array.of(1, 2, 3), [3]), seed: floatTensor(Float32Array.of(1, 10, 100), [3]) });
    assert.deepEqual(Array.from(out.dx!.data as Float32Array), [2, 40, 600]);
    await s.release();
  });

  it('names an op without a rule', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [3]);
    const y = op.reduceSum(op.cumsum(x, 0), [0], false);
    assert.throws(() => gradients(g, y, [x]), /no gradient rule for CumSum/);
  });

  it('rejects a non-scalar output without a seed', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [3]);
    assert.throws(() => gradients(g, op.exp(x), [x]), /give a seed/);
  });

  it('leaves integer inputs out of the gradient', async () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [4, 2]);
    const ids = g.input('ids', 'int64', [3]);
    const loss = op.reduceSum(op.gather(x, ids), [0, 1], false);
    const [dx] = gradients(g, loss, [x]);
    g.output(dx!, 'dx');
    const s = await Session.create(g, { threads: 1 });
    const out = await s.run({ x: floatTensor(new Float32Array(8), [4, 2]), ids: int64Tensor(BigInt64Array.of(3n, 3n, 0n), [3]) });
    assert.deepEqual(Array.from(out.dx!.data as Float32Array), [1, 1, 0, 0, 0, 0, 2, 2]);
    await s.release();
  });
});

describe('l2Normalize', () => {
  it('has a finite gradient for an all-zero row (torch: zero row, finite gradient)', async () => {
    const g = new Graph('zero-row');
    const x = g.input('x', 'float32', [2, 3]);
    const loss = op.reduceSum(op.mul(op.l2Normalize(x), g.constant({ dtype: 'float32', dims: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) })), [0, 1], false);
    const [dx] = gradients(g, loss, [x]);
    g.output(loss, 'loss', []);
    g.output(dx!, 'dx', [2, 3]);
    const s = await Session.create(g, { threads: 1 });
    const out = await s.run({ x: floatTensor(Float32Array.from([0, 0, 0, 3, 0, 4]), [2, 3]) });
    const d = out.dx!.data as Float32Array;
    assert.ok([...d].every(Number.isFinite), `gradient ${[...d]}`);
    assert.ok(Math.abs((out.loss!.data as Float32Array)[0]! - (4 * 3 + 6 * 4) / 5) < 1e-6, 'the zero row contributes 0, the other its unit vector');
    // d/dx of x/‖x‖ for x = (3, 0, 4) against weights (4, 5, 6): (w − (w·u)u)/‖x‖
    const u = [0.6, 0, 0.8];
    const wu = 4 * 0.6 + 6 * 0.8;
    [4, 5, 6].forEach((w, j) => assert.ok(Math.abs(d[3 + j]! - (w - wu * u[j]!) / 5) < 1e-6));
    await s.release();
  });
});

describe('int8 linear (no gradient: inference only)', () => {
  it('quantizedMatmul computes what the ONNX definitions of DynamicQuantizeLinear and MatMulInteger say', async () => {
    const rng = new Rng(11);
    const [m, k, n] = [5, 7, 3];
    const x = Float32Array.from({ length: m * k }, () => rng.normal() * 2 + 0.3);
    // Weights as the quantizer stores them: 7 bits (|q| ≤ 64; see INT8_WEIGHT_MAX).
    const wq = Int8Array.from({ length: k * n }, () => rng.int(2 * INT8_WEIGHT_MAX + 1) - INT8_WEIGHT_MAX);
    const ws = Float32Array.from({ length: n }, () => 0.01 + rng.next() * 0.05);
    const g = new Graph('q');
    const xv = g.input('x', 'float32', [m, k]);
    const w = g.initializer('w', { dtype: 'int8', dims: [k, n], data: wq });
    const zero = g.initializer('z', { dtype: 'int8', dims: [n], data: new Int8Array(n) });
    const scale = g.initializer('s', { dtype: 'float32', dims: [n], data: ws });
    g.output(op.quantizedMatmul(xv, w, zero, scale), 'y', [m, n]);
    const s = await Session.create(g, { threads: 1 });
    const y = (await s.run({ x: floatTensor(x, [m, k]) })).y!.data as Float32Array;
    await s.release();
    // ONNX: scale = (max(0, max x) − min(0, min x)) / 255; zero = clamp(round(−min/scale)); q = clamp(round(x/scale) + zero),
    // round half to even; MatMulInteger = Σ (q − zero)(w − 0).
    const even = (v: number) => (Math.abs(v % 1) === 0.5 ? 2 * Math.round(v / 2) : Math.round(v));
    const clamp = (v: number) => Math.min(255, Math.max(0, v));
    const lo = Math.min(0, ...x);
    const xs = Math.fround((Math.max(0, ...x) - lo) / 255);
    const xz = clamp(even(-lo / xs));
    const q = Array.from(x, (v) => clamp(even(v / xs) + xz));
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let t = 0; t < k; t++) acc += (q[i * k + t]! - xz) * wq[t * n + j]!;
        const want = acc * xs * ws[j]!;
        assert.ok(Math.abs(y[i * n + j]! - want) <= 1e-5 * Math.max(1, Math.abs(want)), `[${i},${j}] ${y[i * n + j]} vs ${want}`);
      }
    }
  });
  it("is exact at the quantizer's extremes: every activation 255, every weight ±64 (no int16 saturation on AVX2)", async () => {
    const [m, k, n] = [2, 64, 2];
    const x = Float32Array.from({ length: m * k }, (_, i) => (i % 2 ? 1 : 0.999)); // quantizes to 255 (and 254)
    const wq = Int8Array.from({ length: k * n }, (_, i) => (i % n ? -INT8_WEIGHT_MAX : INT8_WEIGHT_MAX));
    const g = new Graph('q-extremes');
    const xv = g.input('x', 'float32', [m, k]);
    const w = g.initializer('w', { dtype: 'int8', dims: [k, n], data: wq });
    const zero = g.initializer('z', { dtype: 'int8', dims: [n], data: new Int8Array(n) });
    const scale = g.initializer('s', { dtype: 'float32', dims: [n], data: Float32Array.of(1, 1) });
    g.output(op.quantizedMatmul(xv, w, zero, scale), 'y', [m, n]);
    const s = await Session.create(g, { threads: 1 });
    const y = (await s.run({ x: floatTensor(x, [m, k]) })).y!.data as Float32Array;
    await s.release();
    const xs = Math.fround(1 / 255);
    const q = Array.from(x, (v) => Math.min(255, Math.round(v / xs)));
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let t = 0; t < k; t++) acc += q[i * k + t]! * wq[t * n + j]!;
        assert.ok(Math.abs(y[i * n + j]! - acc * xs) <= 1e-5 * Math.abs(acc * xs), `[${i},${j}] ${y[i * n + j]} vs ${acc * xs}`);
      }
    }
  });
});
