/** One EncoderPool worker: loads an Encoder and encodes the blocks it is sent (see encoder-pool.ts). */
import { serve } from '../util/worker-rpc.js';
import { Encoder } from './encoder.js';
import type { EncoderProtocol } from './encoder-pool.js';

let encoder: Encoder | undefined;
const loaded = () => {
  if (!encoder) throw new Error('encoder worker: asked to work before "load"');
  return encoder;
};

serve<EncoderProtocol>({
  load: async (m) => {
    encoder = await Encoder.load(m.dir, m.options);
    return { info: { dim: encoder.dim, normalize: encoder.normalize, pooling: encoder.pooling, dir: encoder.dir } };
  },
  cacheKey: async (m) => ({ key: loaded().cacheKeyFor(m.options) }),
  encode: async (m, tick) => ({ rows: (await loaded().encode(m.texts, { ...m.options, onTick: tick })).data }),
  close: async () => {
    await encoder?.close();
    encoder = undefined;
    return {};
  },
});
