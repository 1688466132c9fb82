/**
 * Several encoders side by side on one machine (`--devices cpu:2x1`, `--devices cuda:0,cuda:1`):
 * one worker thread per slot, each with its own Encoder and onnxruntime session, texts dealt out
 * a planning block at a time. A block is planned on its own texts (see BLOCK_TEXTS), so the rows
 * are those one encoder gives, bit for bit; and the sessions run off the main thread, so the
 * event loop (progress, Ctrl-C) stays free while they work.
 */
import { Worker } from 'node:worker_threads';
import { noProgress } from '../progress.js';
import { Member } from '../util/worker-rpc.js';
import { checkThreads, parseDevice } from '../runtime/device.js';
import { EmbeddingCache } from './cache.js';
import { BLOCK_TEXTS, type EncodeOptions, type EncoderOptions, type Embeddings, encodeToSink, shareRows } from './encoder.js';
import type { Pooling } from './pooling.js';

/** One worker's device and threads. */
export interface Slot {
  device: string;
  threads?: number;
}

/**
 * `cpu:NxT` (N workers of T threads) or a comma-separated list of devices (`cuda:0,cuda:1`).
 * @example parseDevices('cpu:2x1'); // [{ device: 'cpu', threads: 1 }, { device: 'cpu', threads: 1 }]
 */
export function parseDevices(spec: string): Slot[] {
  const grid = /^cpu:(\d+)x(\d+)$/.exec(spec.trim());
  if (grid) {
    const [n, t] = [Number(grid[1]), Number(grid[2])];
    if (n < 1 || t < 1) throw new Error(`--devices ${spec}: workers and threads must be at least 1`);
    checkThreads(n * t, `--devices ${spec}`);
    return Array.from({ length: n }, () => ({ device: 'cpu', threads: t }));
  }
  const slots = spec.split(',').map((s) => {
    if (!s.trim()) throw new Error(`--devices "${spec}": an empty entry`);
    try {
      parseDevice(s);
    } catch {
      throw new Error(`--devices "${spec}": "${s.trim()}" is not a device; expected cpu:NxT (N workers × T threads) or a list of cpu, cuda[:i], webgpu, dml[:i], coreml`);
    }
    return { device: s.trim() };
  });
  if (slots.filter((s) => parseDevice(s.device).name === 'webgpu').length > 1) {
    // Seen with onnxruntime-node 1.30: a segmentation fault as soon as two threads run.
    throw new Error(`--devices ${spec}: onnxruntime-node's WebGPU provider keeps one device context per process, and two threads running sessions on it at once crash it; use --device webgpu (one device, with the training state kept there)`);
  }
  return slots;
}

/** What an encoder worker is asked (encoder-worker.ts answers). */
export type EncoderProtocol = {
  load: { request: { dir: string; options: EncoderOptions }; reply: { info: { dim: number; normalize: boolean; pooling: Pooling; dir: string } } };
  cacheKey: { request: { options: EncodeOptions }; reply: { key: string } };
  encode: { request: { texts: string[]; options: EncodeOptions }; reply: { rows: Float32Array } };
  close: { request: object; reply: object };
};

/**
 * @example
 *   const pool = await EncoderPool.load('models/bge-small-en', { devices: parseDevices('cpu:2x1') });
 *   const e = await pool.encode(texts);
 *   await pool.close();
 */
export class EncoderPool {
  private constructor(
    private readonly members: Member<EncoderProtocol>[],
    readonly dir: string,
    readonly dim: number,
    readonly normalize: boolean,
    readonly pooling: Pooling,
    readonly blockTexts: number,
  ) {}

  static async load(dir: string, o: EncoderOptions & { devices: Slot[] }): Promise<EncoderPool> {
    const { devices, ...options } = o;
    const members = devices.map(() => new Member<EncoderProtocol>(new Worker(new URL('./encoder-worker.js', import.meta.url), { workerData: null }), 'an encoder worker'));
    try {
      const infos = await Promise.all(members.map((m, i) => m.ask('load', { dir, options: { ...options, device: devices[i]!.device, threads: devices[i]!.threads ?? options.threads } })));
      const info = infos[0]!.info!;
      return new EncoderPool(members, info.dir, info.dim, info.normalize, info.pooling, o.blockTexts ?? BLOCK_TEXTS);
    } catch (e) {
      await Promise.all(members.map((m) => m.worker.terminate()));
      throw e;
    }
  }

  /** As Encoder.encode (rows, templates, duplicates); each block goes to the next free worker. */
  async encode(texts: readonly string[], options: EncodeOptions = {}): Promise<Embeddings> {
    if (options.sink) return encodeToSink(this, texts, options);
    const [lo, hi] = options.rows ?? [0, texts.length];
    const block = this.blockTexts;
    const e: Embeddings = { data: new Float32Array((hi - lo) * this.dim), dim: this.dim, count: hi - lo };
    const starts: number[] = [];
    for (let b = lo; b < hi; b += block) starts.push(b);
    const bar = (options.progress ?? noProgress)(options.label ?? 'encode', hi - lo);
    // What a worker is told: no functions (they cannot be posted) and no cache (it lives here).
    const { rows: _rows, cacheDir: _cache, sink: _sink, onTick: _tick, progress: _progress, ...rest } = options;
    // The cache lives here, in one thread: hits go to the workers as known rows (planned as the
    // Encoder plans its own hits), fresh rows come back into it.
    const cache = options.cacheDir ? EmbeddingCache.open(options.cacheDir, (await this.members[0]!.ask('cacheKey', { options: rest })).key, this.dim) : undefined;
    const work = async (m: Member<EncoderProtocol>) => {
      for (let b = starts.shift(); b !== undefined; b = starts.shift()) {
        const end = Math.min(hi, b + block);
        const known: Record<number, Float32Array> = {};
        if (cache) for (let i = b; i < end; i++) {
          const hit = cache.get(texts[i]!);
          if (hit) known[i - b] = hit;
        }
        const r = await m.ask('encode', { texts: texts.slice(b, end), options: { ...rest, known } }, [], (n) => bar.tick(n));
        e.data.set(r.rows!, (b - lo) * this.dim);
        if (cache) {
          const seen = new Set<string>();
          for (let i = b; i < end; i++) {
            if (!(i - b in known) && !seen.has(texts[i]!)) cache.put(texts[i]!, r.rows!.subarray((i - b) * this.dim, (i - b + 1) * this.dim));
            seen.add(texts[i]!);
          }
        }
      }
    };
    await Promise.all(this.members.map(work));
    cache?.flush();
    bar.done();
    shareRows(lo === 0 && hi === texts.length ? texts : texts.slice(lo, hi), e);
    return e;
  }

  async close(): Promise<void> {
    await Promise.all(this.members.map(async (m) => {
      await m.ask('close', {}).catch(() => undefined);
      await m.worker.terminate();
    }));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
