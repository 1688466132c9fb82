/**
 * Where a training step's time goes: ORT's per-node profile of the MiniLM-L6 step
 * (batch 32, group 4, 32/128 tokens), summed by op type.
 *   node dist/scripts/profile-train-step.js [threads=2]
 */
import { existsSync, readdirSync, readFileSync, readFileSync as rf } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readConfig } from '../src/models/config.js';
import { loadWeights } from '../src/models/encoder.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { Trainer } from '../src/training/trainer.js';
import { MINILM_L6, repoRoot, writeRandomModel } from './make-models.js';

const threads = Number(process.argv[2] ?? 2);
const dir = join(tmpdir(), 'embedtune-minilm-l6');
if (!existsSync(join(dir, 'model.safetensors'))) writeRandomModel(dir, MINILM_L6);
const docs = rf(join(repoRoot, 'data', 'cranfield', 'corpus.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).text as string).filter((d) => d.split(' ').length > 200);
const batch = Array.from({ length: 32 }, (_, i) => ({ query: docs[i % docs.length]!, passages: [0, 1, 2, 3].map((j) => docs[(i * 4 + j + 7) % docs.length]!) }));
const prefix = join(tmpdir(), `embedtune-profile-${process.pid}`);
const trainer = await Trainer.fromWeights(readConfig(dir), loadTokenizer(dir), loadWeights(dir), {
  pooling: 'mean', normalize: true, temperature: 0.05, learningRate: 1e-5, weightDecay: 0.01, warmupSteps: 0, totalSteps: 10,
  schedule: 'constant', maxGradNorm: 1, maxQueryLength: 32, maxPassageLength: 128, threads, profilePrefix: prefix,
});
await trainer.step(batch);
await trainer.step(batch);
trainer.endProfiling();
await trainer.close();
const file = readdirSync(tmpdir()).filter((f) => f.startsWith(`embedtune-profile-${process.pid}`)).map((f) => join(tmpdir(), f))[0]!;
const events = JSON.parse(readFileSync(file, 'utf8')) as { cat: string; name: string; dur: number; args?: { op_name?: string } }[];
const byOp = new Map<string, number>();
let total = 0;
for (const e of events) {
  if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
  const opName = e.args?.op_name ?? '?';
  byOp.set(opName, (byOp.get(opName) ?? 0) + e.dur);
  total += e.dur;
}
console.log(`kernel time over 2 steps: ${(total / 1e6).toFixed(2)} s (profile: ${file})`);
for (const [name, us] of [...byOp].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`${name.padEnd(24)} ${(us / 1e6).toFixed(2)} s  ${((100 * us) / total).toFixed(1)}%`);
