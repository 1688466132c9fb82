/**
 * A tiny graph IR that maps one-to-one onto ONNX: values are named edges, nodes are ONNX
 * operators, weights are initializers (or graph inputs when they must stay outside the model,
 * as in training). Models are written against the op helpers in `ops.ts`, never against ONNX
 * protobuf directly; `onnx.ts` serialises a finished graph.
 */

export type DType = 'float32' | 'int64' | 'bool';

/** A dimension is a fixed size or a symbolic name such as `"batch"`. */
export type Dim = number | string;

export type TensorData = Float32Array | BigInt64Array | Uint8Array;

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

/** A symbolic tensor: a named edge of the graph it belongs to. */
export class Value {
  constructor(
    readonly graph: Graph,
    readonly name: string,
    readonly dtype: DType,
  ) {}
}

export class Graph {
  readonly inputs: ValueInfo[] = [];
  readonly outputs: ValueInfo[] = [];
  readonly nodes: Node[] = [];
  readonly initializers = new Map<string, Tensor>();
  private counter = 0;

  constructor(readonly name = 'embedtune') {}

  /** A fresh, unique edge name with a readable prefix. */
  fresh(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }

  input(name: string, dtype: DType, shape: Dim[]): Value {
    this.inputs.push({ name, dtype, shape });
    return new Value(this, name, dtype);
  }

  /** A named weight stored in the model file. */
  initializer(name: string, tensor: Tensor): Value {
    if (this.initializers.has(name)) throw new Error(`duplicate initializer ${name}`);
    this.initializers.set(name, tensor);
    return new Value(this, name, tensor.dtype);
  }

  /** An anonymous constant (shapes, axes, scalars). */
  constant(tensor: Tensor, prefix = 'const'): Value {
    return this.initializer(this.fresh(prefix), tensor);
  }

  output(value: Value, name: string, shape: Dim[]): void {
    if (value.name !== name) this.node('Identity', [value], {}, 1, [name]);
    this.outputs.push({ name, dtype: value.dtype, shape });
  }

  /** Appends one ONNX node and returns its outputs. */
  node(
    op: string,
    inputs: (Value | null)[],
    attrs: Record<string, Attr> = {},
    outputCount = 1,
    outputNames?: string[],
    dtypes?: DType[],
    domain?: string,
  ): Value[] {
    const outNames = outputNames ?? Array.from({ length: outputCount }, () => this.fresh(op));
    this.nodes.push({
      op,
      inputs: inputs.map((v) => (v ? v.name : '')),
      outputs: outNames,
      attrs,
      domain,
    });
    const first = inputs.find((v): v is Value => v !== null);
    return outNames.map((n, i) => new Value(this, n, dtypes?.[i] ?? first?.dtype ?? 'float32'));
  }
}

export function f32(data: ArrayLike<number> | Float32Array, dims: number[]): Tensor {
  return { dtype: 'float32', dims, data: data instanceof Float32Array ? data : Float32Array.from(data) };
}

export function i64(data: ArrayLike<number>, dims: number[] = [data.length]): Tensor {
  return { dtype: 'int64', dims, data: BigInt64Array.from(Array.from(data, (x) => BigInt(x))) };
}
