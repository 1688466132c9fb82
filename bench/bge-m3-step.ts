/**
 * Our side of the bge-m3-shape training step, in its own process so its peak RSS is its own:
 * load, build the trainer, run STEPS optimizer steps on one batch, and optionally save a
 * checkpoint and export. Prints one JSON line. Driven by bench/run.ts (case `bge-m3`).
 *
 *   node dist/bench/bge-m3-step.js MODEL_DIR BATCH_JSON STEPS THREADS '{"freezeEmbeddings":true}'
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { readConfig } from '../src/models/config.js';
import { loadWeights } from '../src/models/weights.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { Trainer } from '../src/training/trainer.js';
import { saveCheckpoint } from '../src/training/checkpoint.js';
import { exportModel } from '../src/models/export.js';
import { rmSync } from 'node:fs';

const [dir, batchFile, stepsArg, threadsArg, extraArg] = process.argv.slice(2);
const extra = JSON.parse(extraArg ?? '{}') as { freezeEmbeddings?: boolean; miniBatchSize?: number; save?: boolean };
const batch = JSON.parse(readFileSync(batchFile, 'utf8')) as { examples: { query: string; passages: string[] }[]; temperature: number; queryTokens: number; passageTokens: number };
const rssMiB = () => Math.round(process.resourceUsage().maxRSS / 1024);
const t0 = performance.now();
const config = readConfig(dir);
const weights = loadWeights(dir);
const loadSeconds = (performance.now() - t0) / 1000;
const trainer = await Trainer.create(config, loadTokenizer(dir), weights, {
  pooling: 'cls', normalize: true, temperature: batch.temperature, learningRate: 1e-5, weightDecay: 0.01, warmupSteps: 0, totalSteps: 1000,
  schedule: 'constant', maxGradNorm: 1, maxQueryLength: batch.queryTokens, maxPassageLength: batch.passageTokens, threads: Number(threadsArg),
  freezeEmbeddings: extra.freezeEmbeddings, miniBatchSize: extra.miniBatchSize,
});
const createSeconds = (performance.now() - t0) / 1000 - loadSeconds;
const rssAfterCreate = rssMiB();
const stepSeconds: number[] = [];
let loss = NaN;
for (let i = 0; i < Number(stepsArg); i++) {
  const s = performance.now();
  loss = (await trainer.step(batch.examples)).loss;
  stepSeconds.push((performance.now() - s) / 1000);
}
const rssAfterSteps = rssMiB();
const out: Record<string, unknown> = { loadSeconds, createSeconds, stepSeconds, loss, rssAfterCreateMiB: rssAfterCreate, peakRssMiB: rssAfterSteps };
if (extra.save) {
  const work = join(tmpdir(), `embedtune-bge-m3-save-${process.pid}`);
  let s = performance.now();
  saveCheckpoint(work, trainer, { step: 1, epoch: 0, batchInEpoch: 1, epochRng: 1, bestMetric: null }, null);
  out.checkpointSeconds = (performance.now() - s) / 1000;
  out.rssAfterCheckpointMiB = rssMiB();
  s = performance.now();
  exportModel(join(work, 'export'), { baseDir: dir, config, weights: trainer.hfWeights(), pooling: 'cls', normalize: true });
  out.exportSeconds = (performance.now() - s) / 1000;
  out.rssAfterExportMiB = rssMiB();
  rmSync(work, { recursive: true, force: true });
}
await trainer.close();
console.log(JSON.stringify(out));
