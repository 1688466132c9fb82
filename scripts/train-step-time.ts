/**
 * Time of one training step (forward + backward + AdamW) for a random MiniLM-L6-shaped BERT:
 * batch 32, group size 4 (128 passages), queries 32 and passages 128 tokens; and peak RSS.
 *   node dist/scripts/train-step-time.js [steps=5] [threads=all] [fused|gradcache|cpu:NxT]
 * The third argument: the fused step (default), GradCache in one slice of the whole batch, or
 * data-parallel workers (cross-device negatives).
 */
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readConfig } from '../src/models/config.js';
import { loadWeights } from '../src/models/encoder.js';
import { loadTextTokenizer } from '../src/models/tokenizer.js';
import { parseDevices } from '../src/models/encoder-pool.js';
import { Trainer } from '../src/training/trainer.js';
import { MINILM_L6, repoRoot, writeRandomModel } from './make-models.js';

const steps = Number(process.argv[2] ?? 5);
const threads = process.argv[3] && process.argv[3] !== 'all' ? Number(process.argv[3]) : undefined;
const mode = process.argv[4] ?? 'fused';
const dir = join(tmpdir(), 'embedtune-minilm-l6');
if (!existsSync(join(dir, 'model.safetensors'))) writeRandomModel(dir, MINILM_L6);
const docs = readFileSync(join(repoRoot, 'data', 'cranfield', 'corpus.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).text as string);
const long = docs.filter((d) => d.split(' ').length > 200);
const batch = Array.from({ length: 32 }, (_, i) => ({
  query: long[i % long.length]!,
  passages: [0, 1, 2, 3].map((j) => long[(i * 4 + j + 7) % long.length]!.split(' ').reverse().join(' ')),
}));
const trainer = await Trainer.fromWeights(readConfig(dir), loadTextTokenizer(dir), loadWeights(dir), {
  pooling: 'mean', normalize: true, temperature: 0.05, learningRate: 1e-5, weightDecay: 0.01, warmupSteps: 0, totalSteps: 100,
  schedule: 'constant', maxGradNorm: 1, maxQueryLength: 32, maxPassageLength: 128, threads,
  miniBatchSize: mode === 'gradcache' ? 128 : undefined,
  devices: mode.startsWith('cpu:') || mode.startsWith('cuda') ? parseDevices(mode) : undefined,
});
await trainer.step(batch); // warm-up
const times: number[] = [];
for (let i = 0; i < steps; i++) {
  const t0 = performance.now();
  await trainer.step(batch);
  times.push((performance.now() - t0) / 1000);
}
times.sort((a, b) => a - b);
console.log(JSON.stringify({ model: 'MiniLM-L6 shape (random)', batch: 32, groupSize: 4, queryTokens: 32, passageTokens: 128, threads: threads ?? 'all', mode, medianStepSeconds: +times[times.length >> 1]!.toFixed(3), peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024) }));
await trainer.close();
