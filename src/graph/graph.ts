/**
 * A tiny graph IR that maps one-to-one onto ONNX: values are named edges, nodes are ONNX
 * operators, weights are initializers (or graph inputs when they must stay outside the model,
 * as in training). Models are written against the op helpers in `ops.ts`, never against ONNX
 * protobuf directly; `onnx.ts` serialises a finished graph.
 */

export type DType = 'float32' | 'int64' | 'bool' | 'int8' | 'uint8' | 'int32' | 'float16';

/** A dimension is a fixed size or a symbolic name such as `"batch"`. */
export type Dim = number | string;

export type TensorData = Float32Array | BigInt64Array | Uint8Array | Int8Array | Uint16Array;

export interface Tensor {
  dtype: DType;
  dims: number[];
  data: TensorData;
}

export type Attr = number | number[] | string | Tensor | { float: number } | { floats: number[] };

export interface Node {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, Attr>;
  domain?: string;
}

export interface ValueInfo {
  name: string;
  dtype: DType;
  shape: Dim[];
}

/** A symbolic tensor: a named edge of the graph it belongs to, with its (possibly symbolic) shape. */
export class Value {
  constructor(
    readonly graph: Graph,
    readonly name: string,
    readonly dtype: DType,
    /** Known rank and dims; a string dim is symbolic ('?' = unknown, never 1). */
    readonly shape: Dim[],
  ) {}

  get rank(): number {
    return this.shape.length;
  }
}

export class Graph {
  readonly inputs: ValueInfo[] = [];
  readonly outputs: ValueInfo[] = [];
  readonly nodes: Node[] = [];
  readonly initializers = new Map<string, Tensor>();
  /** Every value by name, so passes over nodes (autodiff) can get back to Values. */
  readonly values = new Map<string, Value>();
  private counter = 0;

  constructor(readonly name = 'embedtune') {}

  /** A fresh, unique edge name with a readable prefix. */
  fresh(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }

  private track(v: Value): Value {
    this.values.set(v.name, v);
    return v;
  }

  input(name: string, dtype: DType, shape: Dim[]): Value {
    if (this.values.has(name)) throw new Error(`duplicate value ${name}`);
    this.inputs.push({ name, dtype, shape });
    return this.track(new Value(this, name, dtype, shape));
  }

  /** A named weight stored in the model file. */
  initializer(name: string, tensor: Tensor): Value {
    if (this.initializers.has(name)) throw new Error(`duplicate initializer ${name}`);
    this.initializers.set(name, tensor);
    return this.track(new Value(this, name, tensor.dtype, tensor.dims));
  }

  /** An anonymous constant (shapes, axes, scalars). */
  constant(tensor: Tensor, prefix = 'const'): Value {
    return this.initializer(this.fresh(prefix), tensor);
  }

  /** Marks `value` as a graph output called `name` (an Identity node renames it if needed). */
  output(value: Value, name: string, shape: Dim[] = value.shape): Value {
    const v = value.name === name ? value : this.node('Identity', [value], {}, [{ dtype: value.dtype, shape: value.shape }], [name])[0]!;
    this.outputs.push({ name, dtype: value.dtype, shape });
    return v;
  }

  /** Appends one ONNX node; `outs` gives each output's dtype and shape. */
  node(op: string, inputs: (Value | null)[], attrs: Record<string, Attr>, outs: { dtype: DType; shape: Dim[] }[], names?: string[]): Value[] {
    const outNames = names ?? outs.map(() => this.fresh(op));
    this.nodes.push({ op, inputs: inputs.map((v) => (v ? v.name : '')), outputs: outNames, attrs });
    return outNames.map((n, i) => this.track(new Value(this, n, outs[i]!.dtype, outs[i]!.shape)));
  }
}

export function f32(data: ArrayLike<number> | Float32Array, dims: number[]): Tensor {
  return { dtype: 'float32', dims, data: data instanceof Float32Array ? data : Float32Array.from(data) };
}

export function i64(data: ArrayLike<number>, dims: number[] = [data.length]): Tensor {
  return { dtype: 'int64', dims, data: BigInt64Array.from(Array.from(data, (x) => BigInt(x))) };
}
