/**
 * Runs encode and three training steps on a device and on the CPU, and compares them (issue 12):
 * embeddings within 1e-3, the three losses within 1e-3 relative. Run it on a machine with a GPU
 * (the `device` tool lends one to some sessions) after installing onnxruntime-node's CUDA
 * provider (README "Devices"):
 *   node dist/scripts/device-check.js cuda [MODEL_DIR]
 * Prints one JSON line; exits 1 when a check fails or the device can't run the sessions.
 */
import { join } from 'node:path';
import { loadRecords } from '../src/data/records.js';
import { readConfig } from '../src/models/config.js';
import { Encoder, loadWeights } from '../src/models/encoder.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { epochBatches } from '../src/training/sampler.js';
import { Trainer } from '../src/training/trainer.js';
import { Rng } from '../src/util/rng.js';
import { repoRoot } from './make-models.js';

const device = process.argv[2] ?? 'cuda';
const model = process.argv[3] ?? join(repoRoot, 'test', 'fixtures', 'models', 'tiny-xlmr');
const texts = ['一架飞机要起飞了。', 'what is the flutter of a swept wing', 'lift and drag', 'boundary layer transition at high Mach numbers'];

async function embed(d: string) {
  const e = await Encoder.load(model, { device: d, pooling: 'mean' });
  try {
    const t0 = performance.now();
    const out = await e.encode(texts, { quiet: true });
    return { data: out.data, seconds: (performance.now() - t0) / 1000 };
  } finally {
    await e.close();
  }
}

async function steps(d: string) {
  const config = readConfig(model);
  const trainer = await Trainer.create(config, loadTokenizer(model), loadWeights(model), {
    device: d, pooling: 'mean', normalize: true, temperature: 0.05, learningRate: 1e-4, weightDecay: 0.01, warmupSteps: 0, totalSteps: 3,
    schedule: 'constant', maxGradNorm: 1, maxQueryLength: 32, maxPassageLength: 64,
  });
  try {
    const { records } = await loadRecords(join(repoRoot, 'data', 'contrastive-zh', 'train.jsonl'), { requirePositives: true });
    const batches = epochBatches(records.slice(0, 48), { batchSize: 16, groupSize: 2 }, new Rng(1));
    const losses: number[] = [];
    for (const b of batches.slice(0, 3)) losses.push((await trainer.step(b)).loss);
    return losses;
  } finally {
    await trainer.close();
  }
}

const result: Record<string, unknown> = { device, model };
let ok = true;
try {
  const [gpu, cpu] = [await embed(device), await embed('cpu')];
  let diff = 0;
  for (let i = 0; i < cpu.data.length; i++) diff = Math.max(diff, Math.abs(gpu.data[i]! - cpu.data[i]!));
  const [lg, lc] = [await steps(device), await steps('cpu')];
  const lossDiff = Math.max(...lg.map((l, i) => Math.abs(l - lc[i]!) / Math.max(1, Math.abs(lc[i]!))));
  ok = diff <= 1e-3 && lossDiff <= 1e-3;
  Object.assign(result, { encodeMaxAbsDiff: diff, lossesDevice: lg, lossesCpu: lc, lossMaxRelDiff: lossDiff, encodeSeconds: { device: gpu.seconds, cpu: cpu.seconds }, ok });
} catch (e) {
  ok = false;
  Object.assign(result, { ok, error: (e as Error).message });
}
console.log(JSON.stringify(result));
process.exitCode = ok ? 0 : 1;
