/**
 * Model weights by their Hugging Face names, and how they enter a graph. Linear weights are
 * stored by PyTorch as [out, in]; graphs use them as [in, out], so they are transposed once
 * on the way in (and back on export).
 */
import type { Graph, Value } from '../graph/graph.js';
import type { NamedTensor } from './safetensors.js';

/** Prefixes that task heads add in front of the encoder's own tensor names. */
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

export function transpose2d(t: NamedTensor): NamedTensor {
  const [rows, cols] = t.shape;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = t.data[r * cols + c];
  return { shape: [cols, rows], data: out };
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
    /** The tensors are already in graph layout (linear weights [in, out]), e.g. a trainer's own. */
    readonly graphLayout = false,
  ) {}

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
        : this.graph.initializer(hfName, { dtype: 'float32', dims: tensor.shape, data: tensor.data });
    this.values.set(hfName, v);
    return v;
  }

  /** A tensor used as stored (embeddings, LayerNorm, biases). */
  tensor(hfName: string, shape: number[]): Value {
    return this.add(hfName, () => this.fetch(hfName, shape), false);
  }

  /** A `nn.Linear` as [in, out] weight and bias. */
  linear(prefix: string, inFeatures: number, outFeatures: number): { w: Value; b: Value } {
    const name = `${prefix}.weight`;
    const w = () => (this.graphLayout ? this.fetch(name, [inFeatures, outFeatures]) : transpose2d(this.fetch(name, [outFeatures, inFeatures])));
    return { w: this.add(name, w, true), b: this.tensor(`${prefix}.bias`, [outFeatures]) };
  }

  /** A fixed tensor (not trained): always baked into the model, even in training graphs. */
  constant(hfName: string, shape: number[]): Value {
    const seen = this.constants.get(hfName);
    if (seen) return seen;
    const t = this.fetch(hfName, shape);
    const v = this.graph.initializer(hfName, { dtype: 'float32', dims: t.shape, data: t.data });
    this.constants.set(hfName, v);
    return v;
  }

  layerNorm(prefix: string, size: number): { scale: Value; bias: Value } {
    return { scale: this.tensor(`${prefix}.weight`, [size]), bias: this.tensor(`${prefix}.bias`, [size]) };
  }
}
