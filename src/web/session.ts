/**
 * A graph as an onnxruntime-web session (WebAssembly, or WebGPU where the browser has it): the
 * same ONNX the Node build runs, serialised in memory.
 */
import * as ort from 'onnxruntime-web';
import type { Graph } from '../graph/graph.js';
import { needsExternalData, serialize } from '../graph/onnx.js';

export type WebDevice = 'wasm' | 'webgpu';
export type WebFeed = Record<string, ort.Tensor>;

export class WebSession {
  private constructor(private readonly session: ort.InferenceSession) {}

  /** @example const s = await WebSession.create(graph, 'wasm'); const out = await s.run(feed); */
  static async create(graph: Graph, device: WebDevice = 'wasm'): Promise<WebSession> {
    if (needsExternalData(graph)) throw new Error(`${graph.name}: over 1.5 GiB of weights, past what a browser tab can hold as one ONNX model`);
    const bytes = serialize(graph).model;
    return new WebSession(await ort.InferenceSession.create(bytes, { executionProviders: [device], graphOptimizationLevel: 'all' }));
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  /** Runs with the inputs of `feed` this graph reads (others ignored); every output, copied to the host. */
  async run(feed: WebFeed): Promise<Record<string, ort.Tensor>> {
    const used = Object.fromEntries(this.session.inputNames.map((n) => {
      const t = feed[n];
      if (!t) throw new Error(`${n}: no value fed for this graph input`);
      return [n, t];
    }));
    const out = await this.session.run(used);
    return out as Record<string, ort.Tensor>;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
