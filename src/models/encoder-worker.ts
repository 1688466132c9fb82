/** One EncoderPool worker: loads an Encoder and encodes the blocks it is sent (see encoder-pool.ts). */
import { parentPort } from 'node:worker_threads';
import { Encoder } from './encoder.js';

let encoder: Encoder | undefined;

parentPort!.on('message', async (m: { id: number; kind: 'load' | 'encode' | 'cacheKey' | 'close'; dir?: string; options?: Record<string, unknown>; texts?: string[] }) => {
  try {
    if (m.kind === 'load') {
      encoder = await Encoder.load(m.dir!, m.options);
      parentPort!.postMessage({ id: m.id, info: { dim: encoder.dim, normalize: encoder.normalize, pooling: encoder.pooling, dir: encoder.dir } });
    } else if (m.kind === 'cacheKey') {
      parentPort!.postMessage({ id: m.id, key: encoder!.cacheKeyFor(m.options ?? {}) });
    } else if (m.kind === 'encode') {
      const e = await encoder!.encode(m.texts!, { ...m.options, onTick: (tick: number) => parentPort!.postMessage({ id: m.id, tick }) });
      parentPort!.postMessage({ id: m.id, rows: e.data }, [e.data.buffer as ArrayBuffer]);
    } else {
      await encoder?.close();
      encoder = undefined;
      parentPort!.postMessage({ id: m.id });
    }
  } catch (e) {
    parentPort!.postMessage({ id: m.id, error: (e as Error).message });
  }
});
