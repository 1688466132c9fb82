/** One EncoderPool worker: loads an Encoder and encodes the blocks it is sent (see encoder-pool.ts). */
import { serve } from '../util/worker-rpc.js';
import { Encoder } from './encoder.js';

let encoder: Encoder | undefined;

serve(async (m, tick) => {
  if (m.kind === 'load') {
    encoder = await Encoder.load(m.dir, m.options);
    return { info: { dim: encoder.dim, normalize: encoder.normalize, pooling: encoder.pooling, dir: encoder.dir } };
  }
  if (m.kind === 'cacheKey') return { key: encoder!.cacheKeyFor(m.options ?? {}) };
  if (m.kind === 'encode') return { rows: (await encoder!.encode(m.texts, { ...m.options, onTick: tick })).data };
  await encoder?.close();
  encoder = undefined;
});
