/**
 * Model weights by their Hugging Face names, and how they enter a graph. Linear weights are
 * stored by PyTorch as [out, in]; graphs use them as [in, out], so they are transposed once
 * on the way in (and back on export).
 */
import type { Graph, Value } from '../graph/graph.js';
import * as op from '../graph/ops.js';
import { type NamedTensor, toHalfBits } from './safetensors-format.js';

/** Prefixes that task heads add in front of the encoder's own tensor names. */
/** The largest |q| of an int8 weight: 7 bits, onnxruntime's `reduce_range` (see ParamSet.quantized). */
export const INT8_WEIGHT_MAX = 64;

const PREFIXES = ['bert.', 'roberta.', 'xlm_roberta.', 'model.', '0.auto_model.'];

/** Strips a task-head prefix and renames old `gamma`/`beta` LayerNorm keys. */
export function canonicalName(name: string): string {
  let n = name;
  for (const p of PREFIXES) if (n.startsWith(p)) n = n.slice(p.length);
  return n.replace(/LayerNorm\.gamma$/, 'LayerNorm.weight').replace(/LayerNorm\.beta$/, 'LayerNorm.bias');
}

export function canonicalNames(tensors: Map<string, NamedTensor>): Map<string, NamedTensor> {
  return new Map([...tensors].map(([name, t]) => [canonicalName(name), t]));
}

/**
 * How the tensors handed to Params lie: 'hf' as PyTorch stores them (linear weights are copied
 * transposed), 'graph' already as [in, out], 'adopt' as PyTorch stores them but handed over:
 * linear weights are transposed in place and their map entries updated (no second copy; big
 * models), so afterwards the map is in graph layout.
 */
export type WeightLayout = 'hf' | 'graph' | 'adopt';

/**
 * Transposes a row-major [rows, cols] matrix in place, following each permutation cycle: the
 * element at i = r·cols + c moves to c·rows + r = i·rows mod (n − 1).
 */
export function transposeInPlace(data: Float32Array, rows: number, cols: number): void {
  if (rows === cols) {
    for (let i = 0; i < rows; i++) {
      for (let j = i + 1; j < cols; j++) {
        const t = data[i * cols + j];
        data[i * cols + j] = data[j * cols + i]!;
        data[j * cols + i] = t!;
      }
    }
    return;
  }
  const last = rows * cols - 1;
  const moved = new Uint8Array(last + 1);
  for (let start = 1; start < last; start++) {
    if (moved[start]) continue;
    let [at, carried] = [start, data[start]];
    do {
      const next = (at * rows) % last;
      const t = data[next];
      data[next] = carried!;
      carried = t;
      moved[next] = 1;
      at = next;
    } while (at !== start);
  }
}

export function transpose2d(t: NamedTensor): NamedTensor {
  const [rows, cols] = t.shape as [number, number];
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = t.data[r * cols + c]!;
  return { shape: [cols, rows], data: out };
}

/**
 * A linear layer as a graph reads it: weight [in, out], optional bias, and optional LoRA adapter
 * (`a` [in, r], `b` [r, out]: PEFT's lora_A / lora_B transposed) scaled by alpha / r.
 */
export interface Linear {
  /** [in, out]: float32, or int8 when `int8` is set. */
  w: Value;
  b?: Value;
  lora?: { a: Value; b: Value; scale: number };
  /** An int8 weight's zero points (0) and float scale per output column. */
  int8?: { zero: Value; scale: Value };
}

/**
 * `x @ w + b`, plus the LoRA path `(x @ a) @ b · scale` when the layer has an adapter: the base
 * weight stays as it is (frozen, fed once) and only the rank-r factors train.
 */
export function dense(x: Value, l: Linear): Value {
  if (l.int8) {
    const y = op.quantizedMatmul(x, l.w, l.int8.zero, l.int8.scale);
    return l.b ? op.add(y, l.b) : y;
  }
  const y = op.linear(x, l.w, l.b);
  if (!l.lora) return y;
  return op.add(y, op.mul(op.matmul(op.matmul(x, l.lora.a), l.lora.b), op.scalar(x, l.lora.scale)));
}

/**
 * Hands weights to a model builder. `mode: 'initializer'` bakes them into the model file
 * (inference, export); `mode: 'input'` makes each one a graph input (training, where weights
 * change every step and are passed zero-copy).
 */
export class Params {
  /** HF name → the tensor as the graph holds it (transposed or not), for feeding or exporting. */
  readonly used = new Map<string, { transposed: boolean; shape: number[]; data: Float32Array }>();

  constructor(
    readonly graph: Graph,
    readonly tensors: Map<string, NamedTensor>,
    readonly mode: 'initializer' | 'input' = 'initializer',
    readonly layout: WeightLayout = 'hf',
    /** LoRA's alpha / r, for layers whose adapter tensors (`<layer>.lora_A.weight`, `.lora_B.weight`) are in `tensors`. */
    readonly loraScale = 1,
    /** Linear weights as int8 per output column (inference; initializers only). */
    readonly int8 = false,
    /** Float weights stored as float16 initializers, cast to float32 in the graph (a half-size file). */
    readonly f16Storage = false,
  ) {}

  /** A float32 initializer, or a float16 one cast up (`f16Storage`). */
  private initializer(name: string, dims: number[], data: Float32Array): Value {
    if (!this.f16Storage) return this.graph.initializer(name, { dtype: 'float32', dims, data });
    const half = toHalfBits(data);
    return op.cast(this.graph.initializer(`${name}_fp16`, { dtype: 'float16', dims, data: half }), 'float32');
  }

  private fetch(hfName: string, expectShape: number[]): NamedTensor {
    const t = this.tensors.get(hfName);
    if (!t) throw new Error(`weights: missing tensor "${hfName}"`);
    if (t.shape.join(',') !== expectShape.join(',')) {
      throw new Error(`weights: tensor "${hfName}" has shape [${t.shape}], expected [${expectShape}]`);
    }
    return t;
  }

  /** Graph values by HF name: a model built twice in one graph (queries, passages) shares them. */
  readonly values = new Map<string, Value>();
  /** Fixed tensors (not trained, never graph inputs). */
  readonly constants = new Map<string, Value>();

  private add(hfName: string, t: () => NamedTensor, transposed: boolean): Value {
    const seen = this.values.get(hfName);
    if (seen) return seen;
    const tensor = t();
    this.used.set(hfName, { transposed, shape: tensor.shape, data: tensor.data });
    const v =
      this.mode === 'input'
        ? this.graph.input(hfName, 'float32', tensor.shape)
        : this.initializer(hfName, tensor.shape, tensor.data);
    this.values.set(hfName, v);
    return v;
  }

  /** A tensor used as stored (embeddings, LayerNorm, biases). */
  tensor(hfName: string, shape: number[]): Value {
    return this.add(hfName, () => this.fetch(hfName, shape), false);
  }

  /** A `nn.Linear` as [in, out] weight and bias (`bias: false`: a layer without one), with its LoRA adapter if any. */
  linear(prefix: string, inFeatures: number, outFeatures: number, bias = true): Linear {
    if (this.int8 && !this.tensors.has(`${prefix}.lora_A.weight`)) {
      const q = this.quantized(`${prefix}.weight`, inFeatures, outFeatures);
      return { ...q, b: bias ? this.tensor(`${prefix}.bias`, [outFeatures]) : undefined };
    }
    return { w: this.weight(`${prefix}.weight`, inFeatures, outFeatures), b: bias ? this.tensor(`${prefix}.bias`, [outFeatures]) : undefined, lora: this.adapter(prefix, inFeatures, outFeatures) };
  }

  /** A linear layer stored as [in, out] already (USE-Lite's TensorFlow layout), with its LoRA adapter if any. */
  linearInOut(prefix: string, inFeatures: number, outFeatures: number): Linear {
    if (this.int8 && !this.tensors.has(`${prefix}.lora_A.weight`)) return { ...this.quantized(`${prefix}.weight`, inFeatures, outFeatures, true), b: this.tensor(`${prefix}.bias`, [outFeatures]) };
    return { w: this.tensor(`${prefix}.weight`, [inFeatures, outFeatures]), b: this.tensor(`${prefix}.bias`, [outFeatures]), lora: this.adapter(prefix, inFeatures, outFeatures) };
  }

  /** A PyTorch-layout [out, in] matrix as the graph's [in, out] (transposed on the way in, per `layout`). */
  private weight(name: string, inFeatures: number, outFeatures: number): Value {
    const w = () => {
      if (this.layout === 'graph') return this.fetch(name, [inFeatures, outFeatures]);
      const t = this.fetch(name, [outFeatures, inFeatures]);
      if (this.layout === 'hf') return transpose2d(t);
      transposeInPlace(t.data, outFeatures, inFeatures);
      const adopted = { shape: [inFeatures, outFeatures], data: t.data };
      this.tensors.set(name, adopted);
      return adopted;
    };
    return this.add(name, w, true);
  }

  /**
   * A PyTorch [out, in] weight (or one stored [in, out]: `inOut`) as int8 [in, out] with a symmetric scale per output column,
   * as onnxruntime's dynamic quantization stores weights (per_channel, QInt8) with `reduce_range`: 7 bits, |q| ≤ 64
   * (max |w| / 64). On CPUs without VNNI (AVX2, AVX-512F) onnxruntime's u8 × s8 kernels add pairs of products in int16,
   * which saturates past 32,767: 2 × 255 × 127 does, 2 × 255 × 64 = 32,640 does not (measured on an AVX2 EPYC:
   * full-range weights gave −9.06 for −0.14; test/autodiff.test.ts).
   */
  private quantized(name: string, inFeatures: number, outFeatures: number, inOut = this.layout === 'graph'): Pick<Linear, 'w' | 'int8'> {
    const graph = inOut;
    const t = this.fetch(name, graph ? [inFeatures, outFeatures] : [outFeatures, inFeatures]);
    const at = (i: number, o: number) => (graph ? t.data[i * outFeatures + o] : t.data[o * inFeatures + i]);
    const q = new Int8Array(inFeatures * outFeatures);
    const scale = new Float32Array(outFeatures);
    for (let o = 0; o < outFeatures; o++) {
      let m = 0;
      for (let i = 0; i < inFeatures; i++) m = Math.max(m, Math.abs(at(i, o)!));
      scale[o] = m > 0 ? m / INT8_WEIGHT_MAX : 1;
      for (let i = 0; i < inFeatures; i++) q[i * outFeatures + o] = Math.round(at(i, o)! / scale[o]!);
    }
    const g = this.graph;
    return {
      w: g.initializer(`${name}_quantized`, { dtype: 'int8', dims: [inFeatures, outFeatures], data: q }),
      int8: {
        zero: g.initializer(`${name}_zero_point`, { dtype: 'int8', dims: [outFeatures], data: new Int8Array(outFeatures) }),
        scale: this.initializer(`${name}_scale`, [outFeatures], scale),
      },
    };
  }

  private adapter(prefix: string, inFeatures: number, outFeatures: number): Linear['lora'] {
    const aName = `${prefix}.lora_A.weight`;
    const a = this.tensors.get(aName);
    if (!a) return undefined;
    // [r, in] as PyTorch stores it; [in, r] in graph layout, or once this Params has taken it in.
    const seen = this.used.get(aName);
    const rank = seen ? seen.shape[1]! : this.layout === 'graph' ? a.shape[1]! : a.shape[0]!;
    return { a: this.weight(aName, inFeatures, rank), b: this.weight(`${prefix}.lora_B.weight`, rank, outFeatures), scale: this.loraScale };
  }

  /** A fixed tensor (not trained): always baked into the model, even in training graphs. */
  constant(hfName: string, shape: number[]): Value {
    const seen = this.constants.get(hfName);
    if (seen) return seen;
    const t = this.fetch(hfName, shape);
    const v = this.initializer(hfName, t.shape, t.data);
    this.constants.set(hfName, v);
    return v;
  }

  layerNorm(prefix: string, size: number): { scale: Value; bias: Value } {
    return { scale: this.tensor(`${prefix}.weight`, [size]), bias: this.tensor(`${prefix}.bias`, [size]) };
  }
}
