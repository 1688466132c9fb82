/**
 * onnxruntime-node sessions for graphs we build. Inputs are passed zero-copy; outputs come
 * back as fresh typed arrays.
 */
import './no-telemetry.js'; // before onnxruntime-node loads
import { availableParallelism } from 'node:os';
import { mkdtempSync, rmSync, writeFileSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import type { Graph } from '../graph/graph.js';
import { needsExternalData, serialize } from '../graph/onnx.js';
import { deviceError, executionProviders, parseDevice } from './device.js';

export interface RuntimeOptions {
  /** Intra-op threads; defaults to every core. */
  threads?: number;
  /** ORT's memory-pattern planning (default off: our shapes vary from run to run). */
  memPattern?: boolean;
  /** Write ORT's per-node profile (JSON) with this file prefix. */
  profilePrefix?: string;
  /** Save the model as ORT optimised it (fusions applied) to this path, for inspection. */
  optimizedModelPath?: string;
  /** `cpu` (default), `cuda[:i]`, `webgpu`, `dml[:i]`, `coreml` (see device.ts). */
  device?: string;
}

export type Feed = Record<string, ort.Tensor>;

export class Session {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly cleanup?: () => void,
  ) {}

  /** Builds an ORT session for `graph`. */
  static async create(graph: Graph, options: RuntimeOptions = {}): Promise<Session> {
    const device = options.device ? parseDevice(options.device) : undefined;
    const providers = device && executionProviders(device);
    try {
      return await Session.build(graph, options, providers);
    } catch (e) {
      throw device && providers ? deviceError(device, e) : e;
    }
  }

  private static async build(graph: Graph, options: RuntimeOptions, executionProviders?: ort.InferenceSession.ExecutionProviderConfig[]): Promise<Session> {
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      ...(executionProviders ? { executionProviders } : {}),
      intraOpNumThreads: options.threads ?? availableParallelism(),
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      // Memory patterns are planned and cached per input shape, and our inputs change shape
      // nearly every run (length-sorted encode batches, training steps): the cached plans grew
      // peak RSS (training MiniLM-L6 8.6 → 15 GB; eval at 512 tokens 0.54 → 0.66 GB) for no speed.
      enableMemPattern: options.memPattern ?? false,
      enableProfiling: options.profilePrefix !== undefined,
      profileFilePrefix: options.profilePrefix,
      ...(options.optimizedModelPath ? { optimizedModelFilePath: options.optimizedModelPath } : {}),
    };
    if (!needsExternalData(graph)) {
      const { model } = serialize(graph);
      return new Session(await ort.InferenceSession.create(model, sessionOptions));
    }
    const dir = mkdtempSync(join(tmpdir(), 'embedtune-onnx-'));
    const { model, external } = serialize(graph, { externalDataLocation: 'model.onnx_data' });
    writeFileSync(join(dir, 'model.onnx'), model);
    await writeChunks(join(dir, 'model.onnx_data'), external);
    const session = await ort.InferenceSession.create(join(dir, 'model.onnx'), sessionOptions);
    return new Session(session, () => rmSync(dir, { recursive: true, force: true }));
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  /**
   * Runs the graph. `fetches` names the outputs wanted, or maps output names to preallocated
   * tensors that ORT writes into (null: allocate).
   */
  async run(feed: Feed, fetches?: string[] | Record<string, ort.Tensor | null>): Promise<Record<string, ort.Tensor>> {
    const out = fetches ? await this.session.run(feed, fetches as ort.InferenceSession.FetchesType) : await this.session.run(feed);
    return out as Record<string, ort.Tensor>;
  }

  /** Stops ORT's profiler (which writes `<profilePrefix>_<date>.json`). */
  endProfiling(): void {
    this.session.endProfiling();
  }

  async release(): Promise<void> {
    await this.session.release();
    this.cleanup?.();
  }
}

async function writeChunks(path: string, chunks: Uint8Array[]): Promise<void> {
  const out = createWriteStream(path);
  for (const c of chunks) if (!out.write(c)) await new Promise<void>((r) => out.once('drain', () => r()));
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

export function floatTensor(data: Float32Array, dims: number[]): ort.Tensor {
  return new ort.Tensor('float32', data, dims);
}

export function int64Tensor(data: BigInt64Array, dims: number[]): ort.Tensor {
  return new ort.Tensor('int64', data, dims);
}
