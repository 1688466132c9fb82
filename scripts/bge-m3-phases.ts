/**
 * Where a bge-m3-shape training step spends its time and memory: seconds of the gradient run,
 * the clipping and the AdamW update, and the process RSS after loading, building and each phase.
 *   node dist/scripts/bge-m3-phases.js MODEL_DIR [steps=3] [threads=2]
 * (MODEL_DIR: `node dist/scripts/make-models.js bge-m3 DIR`; the batch is 2 × group 2, 32/64 tokens.)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readConfig } from '../src/models/config.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { loadWeights } from '../src/models/weights.js';
import { clipGradNorm } from '../src/training/optimizer.js';
import { Trainer } from '../src/training/trainer.js';
import { repoRoot } from './make-models.js';

const [dir, stepsArg, threadsArg] = process.argv.slice(2);
if (!dir) throw new Error('usage: bge-m3-phases.js MODEL_DIR [steps] [threads]');
const rss = () => Math.round(process.memoryUsage().rss / 2 ** 20);
const seconds = async (f: () => unknown) => {
  const t = performance.now();
  await f();
  return +((performance.now() - t) / 1000).toFixed(2);
};
const records = readFileSync(join(repoRoot, 'data', 'contrastive-zh', 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const tokenizer = loadTokenizer(dir);
console.log(JSON.stringify({ phase: 'tokenizer', rssMiB: rss() }));
const trainer = await Trainer.fromWeights(readConfig(dir), tokenizer, loadWeights(dir), {
  pooling: 'cls', normalize: true, temperature: 0.02, learningRate: 1e-5, weightDecay: 0.01, warmupSteps: 0, totalSteps: 100,
  schedule: 'constant', maxGradNorm: 1, maxQueryLength: 32, maxPassageLength: 64, threads: Number(threadsArg ?? 2),
});
console.log(JSON.stringify({ phase: 'weights loaded, trainer built', rssMiB: rss() }));
for (let i = 0; i < Number(stepsArg ?? 3); i++) {
  const batch = records.slice(2 * i, 2 * i + 2).map((r) => ({ query: r.query as string, passages: [r.pos[0], r.neg[0]] as string[] }));
  const grad = await seconds(() => trainer.computeGradients(batch));
  const gradRss = rss();
  const clip = await seconds(() => clipGradNorm(trainer.grads, 1));
  const update = await seconds(() => trainer.optimizer.update(trainer.grads, 1e-5));
  console.log(JSON.stringify({ step: i + 1, gradSeconds: grad, clipSeconds: clip, updateSeconds: update, rssAfterGradMiB: gradRss, rssAfterUpdateMiB: rss() }));
}
await trainer.close();
