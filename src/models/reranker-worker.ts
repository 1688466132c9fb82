/** A RerankerThread's worker: loads a CrossEncoder and scores the pairs it is sent (see cross-encoder.ts). */
import { serve } from '../util/worker-rpc.js';
import { CrossEncoder } from './cross-encoder.js';

let model: CrossEncoder | undefined;

serve(async (m, tick) => {
  if (m.kind === 'load') {
    model = await CrossEncoder.load(m.nameOrDir, m.options);
    return { dir: model.dir, maxLength: model.maxLength };
  }
  if (m.kind === 'score') return { scores: await model!.score(m.pairs, { ...m.options, onTick: tick }) };
  await model?.close();
  model = undefined;
});
