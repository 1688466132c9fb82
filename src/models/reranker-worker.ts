/** A RerankerThread's worker: loads a CrossEncoder and scores the pairs it is sent (see cross-encoder.ts). */
import { parentPort } from 'node:worker_threads';
import { CrossEncoder } from './cross-encoder.js';

let model: CrossEncoder | undefined;

type Message = { id: number; kind: 'load' | 'score' | 'close'; nameOrDir?: string; options?: Record<string, unknown>; pairs?: [string, string][] };

parentPort!.on('message', async (m: Message) => {
  try {
    if (m.kind === 'load') {
      model = await CrossEncoder.load(m.nameOrDir!, m.options);
      parentPort!.postMessage({ id: m.id, dir: model.dir, maxLength: model.maxLength });
    } else if (m.kind === 'score') {
      const scores = await model!.score(m.pairs!, { ...m.options, onTick: (tick) => parentPort!.postMessage({ id: m.id, tick }) });
      parentPort!.postMessage({ id: m.id, scores }, [scores.buffer as ArrayBuffer]);
    } else {
      await model?.close();
      model = undefined;
      parentPort!.postMessage({ id: m.id });
    }
  } catch (e) {
    parentPort!.postMessage({ id: m.id, error: (e as Error).message });
  }
});
