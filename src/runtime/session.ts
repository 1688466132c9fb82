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
import { settled, tracked } from '../util/atomic.js';
import { checkThreads, deviceError, executionProviders, parseDevice } from './device.js';

export interface RuntimeOptions {
  /** Intra-op threads; defaults to every core. */
  threads?: number;
  /** ORT's memory-pattern planning (default off: our shapes vary from run to run). */
  memPattern?: boolean;
  /** Write ORT's per-node profile (JSON) with this file prefix (the graph's name is appended). */
  profilePrefix?: string;
  /** Save the model as ORT optimised it (fusions applied) to this path, for inspection. */
  optimizedModelPath?: string;
  /** `cpu` (default), `cuda[:i]`, `webgpu`, `dml[:i]`, `coreml` (see device.ts). */
  device?: string;
  /**
   * Outputs left in device memory (WebGPU: `gpu-buffer` tensors that another session on the same
   * device takes as inputs without a copy); every other output comes back to the host.
   */
  deviceOutputs?: (name: string) => boolean;
  /** Counts the bytes this session's runs move between host and a device (not for `cpu`). */
  transfer?: Transfer;
}

/**
 * Host↔device traffic as the runs ask for it: every host tensor fed to a session on a device is
 * uploaded, every output that comes back to the host downloaded. (Copies onnxruntime makes inside
 * a run, for nodes it places on the CPU, are the placement table's concern: scripts/placement.ts.)
 */
export class Transfer {
  toDevice = 0;
  fromDevice = 0;

  /** The counts since `before` (a copy taken with `snapshot`). */
  since(before: { toDevice: number; fromDevice: number }): { toDevice: number; fromDevice: number } {
    return { toDevice: this.toDevice - before.toDevice, fromDevice: this.fromDevice - before.fromDevice };
  }

  snapshot(): { toDevice: number; fromDevice: number } {
    return { toDevice: this.toDevice, fromDevice: this.fromDevice };
  }
}

const hostBytes = (ts: Iterable<ort.Tensor | null>) => {
  let n = 0;
  for (const t of ts) if (t && t.location === 'cpu') n += (t.data as ArrayBufferView).byteLength;
  return n;
};

export type Feed = Record<string, ort.Tensor>;

/** Sessions created and not yet released (run.ts's liveResources). */
let live = 0;

/** How many onnxruntime sessions are open now. */
export function liveSessions(): number {
  return live;
}

export class Session {
  private released = false;

  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly cleanup?: () => void,
    /** Set when the session runs on a device: its host↔device bytes are counted here. */
    private readonly transfer?: Transfer,
  ) {
    live++;
  }

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
    const onDevice = options.deviceOutputs && executionProviders;
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      ...(executionProviders ? { executionProviders } : {}),
      // onnxruntime warns on every WebGPU session that it keeps shape ops on the CPU; where each
      // node runs is checked instead (scripts/placement.ts).
      ...(executionProviders?.includes('webgpu') ? { logSeverityLevel: 3 as const } : {}),
      ...(onDevice ? { preferredOutputLocation: Object.fromEntries(graph.outputs.map((o) => [o.name, options.deviceOutputs!(o.name) ? 'gpu-buffer' : 'cpu'])) } : {}),
      intraOpNumThreads: checkThreads(options.threads ?? availableParallelism(), 'threads'),
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      // Memory patterns are planned and cached per input shape, and our inputs change shape
      // nearly every run (length-sorted encode batches, training steps): the cached plans grew
      // peak RSS (training MiniLM-L6 8.6 → 15 GB; eval at 512 tokens 0.54 → 0.66 GB) for no speed.
      enableMemPattern: options.memPattern ?? false,
      enableProfiling: options.profilePrefix !== undefined,
      // One file per graph: `<prefix>-<graph name>_<date>.json`.
      profileFilePrefix: options.profilePrefix && `${options.profilePrefix}-${graph.name}`,
      ...(options.optimizedModelPath ? { optimizedModelFilePath: options.optimizedModelPath } : {}),
    };
    const transfer = executionProviders ? options.transfer : undefined;
    if (!needsExternalData(graph)) {
      const { model } = serialize(graph);
      return new Session(await ort.InferenceSession.create(model, sessionOptions), undefined, transfer);
    }
    // A graph past protobuf's 2 GiB goes through a temp folder, kept while the session lives
    // (onnxruntime may map the weights) and removed with it, or on Ctrl-C (it is tracked).
    const dir = tracked(mkdtempSync(join(tmpdir(), 'embedtune-onnx-')));
    const remove = () => {
      rmSync(dir, { recursive: true, force: true });
      settled(dir);
    };
    try {
      const { model, external } = serialize(graph, { externalDataLocation: 'model.onnx_data' });
      writeFileSync(join(dir, 'model.onnx'), model);
      await writeChunks(join(dir, 'model.onnx_data'), external);
      const session = await ort.InferenceSession.create(join(dir, 'model.onnx'), sessionOptions);
      return new Session(session, remove, transfer);
    } catch (e) {
      remove();
      throw e;
    }
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  /**
   * Runs the graph. `fetches` names the outputs wanted, or maps output names to preallocated
   * tensors that ORT writes into (null: allocate).
   */
  async run(feed: Feed, fetches?: string[] | Record<string, ort.Tensor | null>): Promise<Record<string, ort.Tensor>> {
    const out = (fetches ? await this.session.run(feed, fetches as ort.InferenceSession.FetchesType) : await this.session.run(feed)) as Record<string, ort.Tensor>;
    if (this.transfer) {
      this.transfer.toDevice += hostBytes(Object.values(feed));
      this.transfer.fromDevice += hostBytes(Object.values(out));
    }
    return out;
  }

  /** Stops ORT's profiler (which writes `<profilePrefix>_<date>.json`). */
  endProfiling(): void {
    this.session.endProfiling();
  }

  /** Frees the session (and its temp folder); a second call does nothing. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    live--;
    await this.session.release();
    this.cleanup?.();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}

async function writeChunks(path: string, chunks: Uint8Array[]): Promise<void> {
  const out = createWriteStream(path);
  for (const c of chunks) if (!out.write(c)) await new Promise<void>((r) => out.once('drain', () => r()));
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

export { floatTensor, int64Tensor } from './tensor.js';
