/**
 * Our side of the big-model cases (bge-m3, Qwen3-Embedding-0.6B shapes), in its own process so
 * its peak RSS is its own. Prints one JSON line. Driven by bench/run.ts (cases `bge-m3`, `qwen3`).
 *
 *   train:  load, build the trainer, STEPS optimizer steps on one batch, optionally a checkpoint and an export
 *     node dist/bench/big-model-step.js train MODEL_DIR BATCH_JSON STEPS THREADS '{"freezeEmbeddings":true}'
 *     (extra keys: recompute, miniBatchSize, save, pooling, lora: {rank, alpha, targets}, unified: bge-m3's three outputs with self-distillation)
 *   encode: load the encoder and embed the texts of TEXTS_JSON (batch 16, ≤ 256 tokens)
 *     node dist/bench/big-model-step.js encode MODEL_DIR TEXTS_JSON THREADS [POOLING]
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { getHeapStatistics } from 'node:v8';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { readConfig } from '../src/models/config.js';
import { Encoder } from '../src/models/encoder.js';
import { loadWeights } from '../src/models/weights.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { addM3Heads, specialTokenIds } from '../src/models/m3-heads.js';
import { Trainer } from '../src/training/trainer.js';
import { saveCheckpoint } from '../src/training/checkpoint.js';
import { exportModel } from '../src/models/export.js';
import type { Pooling } from '../src/models/pooling.js';
import { ADAPTER, addAdapters, loraLayers, mergeAdapters } from '../src/training/lora.js';

const [mode, dir, batchFile, stepsArg, threadsArg, extraArg] = process.argv.slice(2) as [string, string, string, string?, string?, string?];
if (mode === 'encode') {
  const texts = JSON.parse(readFileSync(batchFile, 'utf8')) as string[];
  const t0 = performance.now();
  const encoder = await Encoder.load(dir!, { pooling: (threadsArg as Pooling | undefined) ?? 'cls', threads: Number(stepsArg) });
  const loadSeconds = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  await encoder.encode(texts, { batchSize: 16, maxLength: 256, quiet: true });
  const seconds = (performance.now() - t1) / 1000;
  console.log(JSON.stringify({ loadSeconds, seconds, textsPerSecond: texts.length / seconds, peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024) }));
  process.exit(0);
}
const extra = JSON.parse(extraArg ?? '{}') as { freezeEmbeddings?: boolean; miniBatchSize?: number; recompute?: boolean; save?: boolean; pooling?: Pooling; lora?: { rank: number; alpha: number; targets: string[] }; unified?: boolean };
const pooling = extra.pooling ?? 'cls';
const batch = JSON.parse(readFileSync(batchFile, 'utf8')) as { examples: { query: string; passages: string[] }[]; temperature: number; queryTokens: number; passageTokens: number };
const rssMiB = () => Math.round(process.resourceUsage().maxRSS / 1024);
const t0 = performance.now();
const config = readConfig(dir!);
const tokenizer = loadTokenizer(dir!);
let loadSeconds = NaN;
const weights = () => {
  const w = loadWeights(dir!); // handed over, not kept: the trainer owns the weights (as in the train job)
  loadSeconds = (performance.now() - t0) / 1000;
  if (extra.lora) addAdapters(w, loraLayers(w, { ...extra.lora, dropout: 0 }, config), extra.lora.rank, config, 1);
  if (extra.unified) colbertDim = addM3Heads(w, dir!, config.hiddenSize).colbertDim;
  return w;
};
let colbertDim = 0;
const runConfig = extra.lora ? { ...config, loraScale: extra.lora.alpha / extra.lora.rank } : config;
async function create(w: ReturnType<typeof weights>) {
  return Trainer.fromWeights(runConfig, tokenizer, w, {
    trainOnly: extra.lora ? ADAPTER : undefined,
    pooling, normalize: true, temperature: batch.temperature, learningRate: 1e-5, weightDecay: 0.01, warmupSteps: 0, totalSteps: 1000,
    schedule: 'constant', maxGradNorm: 1, maxQueryLength: batch.queryTokens, maxPassageLength: batch.passageTokens, threads: Number(threadsArg),
    freezeEmbeddings: extra.freezeEmbeddings, miniBatchSize: extra.miniBatchSize, recompute: extra.recompute,
    unified: extra.unified ? { selfDistill: true, colbertDim, special: [...specialTokenIds(dir!)] } : undefined,
  });
}
const trainer = await create(weights());
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
  await saveCheckpoint(work, trainer, { step: 1, epoch: 0, batchInEpoch: 1, epochRng: 1, bestMetric: null }, null);
  out.checkpointSeconds = (performance.now() - s) / 1000;
  out.rssAfterCheckpointMiB = rssMiB();
  s = performance.now();
  const trained = await trainer.hfWeights();
  exportModel(join(work, 'export'), { baseDir: dir, config, weights: extra.lora ? mergeAdapters(trained, extra.lora.alpha / extra.lora.rank, config) : trained, pooling, normalize: true });
  out.exportSeconds = (performance.now() - s) / 1000;
  out.rssAfterExportMiB = rssMiB();
  out.exportFiles = readdirSync(join(work, 'export', 'onnx')).sort();
  out.heapLimitMiB = Math.round(getHeapStatistics().heap_size_limit / 2 ** 20);
  rmSync(work, { recursive: true, force: true });
}
await trainer.close();
console.log(JSON.stringify(out));
