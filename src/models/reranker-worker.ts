/** A RerankerThread's worker: loads a CrossEncoder and scores the pairs it is sent (see cross-encoder.ts). */
import { serve } from '../util/worker-rpc.js';
import { CrossEncoder, type RerankerProtocol } from './cross-encoder.js';

let model: CrossEncoder | undefined;

serve<RerankerProtocol>({
  load: async (m) => {
    model = await CrossEncoder.load(m.nameOrDir, m.options);
    return { dir: model.dir, maxLength: model.maxLength };
  },
  score: async (m, tick) => {
    if (!model) throw new Error('reranker worker: asked to score before "load"');
    return { scores: await model.score(m.pairs, { ...m.options, onTick: tick }) };
  },
  close: async () => {
    await model?.close();
    model = undefined;
    return {};
  },
});
