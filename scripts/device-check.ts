/**
 * One command for a machine with a GPU (issue 21): parity with the CPU, placement, bytes per
 * training step, step time and peak memory, printed as one JSON object.
 *   node dist/scripts/device-check.js [DEVICE=webgpu] [--shapes minilm,bge-base] [--batch 16] [--steps 4] [--quick]
 * - adapter: what can be read without a GPU API in JavaScript: the GPUs onnxruntime discovers,
 *   the Vulkan drivers installed (/usr/share/vulkan/icd.d) and `nvidia-smi -L` where there is one.
 * - parity: encode for every fixture architecture and three training steps in each mode (fused,
 *   GradCache, recompute) on DEVICE against the CPU (embeddings ≤ 1e-5, losses ≤ 1e-5 relative).
 * - placement: nodes and FLOPs per provider of every graph (scripts/placement.ts).
 * - shapes: for random models of MiniLM-L6's and bge-base's shapes (cached under
 *   ~/.cache/embedtune/device-check), a training step of `--batch` queries × group 4 at 32/128
 *   tokens on DEVICE and on the CPU, each side in its own process: median step time (after one
 *   warm-up step), host↔device bytes per step with the state on the device and with host state,
 *   peak RSS, and the device's peak memory where nvidia-smi reports it.
 * Runs from a fresh clone with no network. Exits 1 when a parity check fails or the device can't
 * run the sessions. `--quick`: parity and placement only.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadRecords } from '../src/data/records.js';
import { readConfig } from '../src/models/config.js';
import { Encoder, loadWeights } from '../src/models/encoder.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { embedtuneHome } from '../src/models/use-lite.js';
import { epochBatches } from '../src/training/sampler.js';
import { Trainer, type TrainerOptions } from '../src/training/trainer.js';
import { Rng } from '../src/util/rng.js';
import { BGE_BASE, MINILM_L6, repoRoot, type RandomModelSpec, writeRandomModel } from './make-models.js';
import { placements } from './placement.js';

const args = process.argv.slice(2);
const flag = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : fallback;
};
const device = args.find((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--')) ?? 'webgpu';
const fixture = (name: string) => join(repoRoot, 'test', 'fixtures', 'models', name);
const TEXTS = ['一架飞机要起飞了。', 'what is the flutter of a swept wing', 'lift and drag', 'boundary layer transition at high Mach numbers'];
const SHAPES: Record<string, RandomModelSpec> = { minilm: MINILM_L6, 'bge-base': BGE_BASE };
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

function adapter() {
  // onnxruntime logs the devices it discovers at verbose level, from a child (native stderr).
  const probe = `import ort from 'onnxruntime-node'; ort.env.logLevel = 'verbose';
    const { Graph } = await import(${JSON.stringify(join(repoRoot, 'dist', 'src', 'graph', 'graph.js'))});
    const { serialize } = await import(${JSON.stringify(join(repoRoot, 'dist', 'src', 'graph', 'onnx.js'))});
    const g = new Graph('probe'); const x = g.input('x', 'float32', [1]); g.output(x, 'x');
    await ort.InferenceSession.create(serialize(g).model, { executionProviders: [${JSON.stringify(device)}], logSeverityLevel: 0 }).catch(() => {});`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], { cwd: repoRoot, encoding: 'utf8' });
  const discovered = [...`${r.stdout}${r.stderr}`.matchAll(/Discovered OrtHardwareDevice \{([^}]*)\}/g)].map((m) => m[1]!.trim());
  const icd = '/usr/share/vulkan/icd.d';
  const smi = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8' });
  return { onnxruntimeDevices: discovered, vulkanDrivers: existsSync(icd) ? readdirSync(icd) : [], nvidiaSmi: smi.status === 0 ? smi.stdout.trim().split('\n') : null };
}

const BASE: TrainerOptions = {
  pooling: 'mean', normalize: true, temperature: 0.05, learningRate: 1e-4, weightDecay: 0.01, warmupSteps: 0, totalSteps: 100,
  schedule: 'constant', maxGradNorm: 1, maxQueryLength: 32, maxPassageLength: 64,
};

async function parity() {
  const encode: Record<string, number> = {};
  for (const name of ['tiny-bert', 'tiny-xlmr', 'tiny-qwen2', 'tiny-qwen3', 'tiny-use']) {
    const out: Float32Array[] = [];
    for (const d of [device, 'cpu']) {
      const e = await Encoder.load(fixture(name), { device: d });
      out.push((await e.encode(TEXTS, { quiet: true })).data);
      await e.close();
    }
    encode[name] = out[0]!.reduce((m, x, i) => Math.max(m, Math.abs(x - out[1]![i]!)), 0);
  }
  const { records } = await loadRecords(join(repoRoot, 'data', 'contrastive-zh', 'train.jsonl'), { requirePositives: true });
  const batches = epochBatches(records.slice(0, 48), { batchSize: 8, groupSize: 2 }, new Rng(1)).slice(0, 3);
  const training: Record<string, { device: number[]; cpu: number[]; maxRelDiff: number }> = {};
  for (const [mode, extra] of [['fused', {}], ['GradCache', { miniBatchSize: 3 }], ['recompute', { recompute: true }]] as const) {
    const losses: number[][] = [];
    for (const d of [device, 'cpu']) {
      const dir = fixture('tiny-xlmr');
      const t = await Trainer.fromWeights(readConfig(dir), loadTokenizer(dir), loadWeights(dir), { ...BASE, ...extra, device: d });
      const l = [];
      for (const b of batches) l.push((await t.step(b)).loss);
      await t.close();
      losses.push(l);
    }
    training[mode] = { device: losses[0]!, cpu: losses[1]!, maxRelDiff: Math.max(...losses[0]!.map((l, i) => Math.abs(l - losses[1]![i]!) / Math.max(1, Math.abs(losses[1]![i]!)))) };
  }
  const ok = Object.values(encode).every((d) => d <= 1e-5) && Object.values(training).every((t) => t.maxRelDiff <= 1e-5);
  return { encodeMaxAbsDiff: encode, training, ok };
}

/** One side of a shape's step measurement, in this process (run by `measure` in a child). */
async function measureHere(shape: string, d: string, batch: number, steps: number, stateOnDevice: boolean) {
  const dir = join(embedtuneHome(), 'device-check', shape);
  if (!existsSync(join(dir, 'model.safetensors'))) writeRandomModel(dir, SHAPES[shape]!);
  const docs = readFileSync(join(repoRoot, 'data', 'cranfield-full', 'corpus.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).text as string).filter((t) => t.split(' ').length > 200);
  const text = (i: number) => docs[i % docs.length]!;
  const examples = Array.from({ length: batch }, (_, i) => ({ query: text(i), passages: [0, 1, 2, 3].map((j) => text(batch + i * 4 + j)) }));
  const t = await Trainer.fromWeights(readConfig(dir), loadTokenizer(dir), loadWeights(dir), { ...BASE, maxPassageLength: 128, device: d, stateOnDevice });
  const seconds: number[] = [];
  const bytes = [];
  try {
    for (let s = 0; s < steps; s++) {
      const t0 = performance.now();
      const r = await t.step(examples);
      seconds.push((performance.now() - t0) / 1000);
      bytes.push(r.transfer ?? { toDevice: 0, fromDevice: 0 });
    }
  } finally {
    await t.close();
  }
  const params = [...loadWeights(dir).values()].reduce((n, x) => n + x.data.length, 0);
  return { params, stepSeconds: median(seconds.slice(1)), bytesPerStep: bytes.at(-1), peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024) };
}

/** Runs measureHere in a child process (its own peak RSS), sampling nvidia-smi's memory.used meanwhile when there is one. */
async function measure(shape: string, d: string, batch: number, steps: number, stateOnDevice = true) {
  const smi = (): number | null => {
    const r = spawnSync('nvidia-smi', ['--query-gpu=memory.used', '--format=csv,noheader,nounits'], { encoding: 'utf8' });
    return r.status === 0 ? Math.max(...r.stdout.trim().split('\n').map(Number)) : null;
  };
  const before = smi();
  let peak = before;
  const timer = before === null ? undefined : setInterval(() => (peak = Math.max(peak!, smi() ?? 0)), 250);
  const child = spawn(process.execPath, [process.argv[1]!, '--child', JSON.stringify({ shape, d, batch, steps, stateOnDevice })], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  const code = await new Promise<number | null>((r) => child.on('close', r));
  clearInterval(timer);
  if (code !== 0) return { error: `exit ${code}` };
  return { ...JSON.parse(out.trim().split('\n').at(-1)!), deviceMemoryMiB: before === null ? null : peak! - before };
}

if (args[0] === '--child') {
  const o = JSON.parse(args[1]!);
  console.log(JSON.stringify(await measureHere(o.shape, o.d, o.batch, o.steps, o.stateOnDevice)));
} else {
  const result: Record<string, unknown> = { device, adapter: adapter() };
  let ok = true;
  try {
    const p = await parity();
    ok = p.ok;
    result.parity = p;
    result.placement = (await placements(device)).map((r) => ({ ...r, deviceFlopsShare: r.deviceFlops / Math.max(1, r.deviceFlops + r.cpuFlops) }));
    if (!args.includes('--quick')) {
      const [batch, steps] = [Number(flag('batch', '16')), Number(flag('steps', '4'))];
      const shapes: Record<string, unknown> = {};
      for (const shape of flag('shapes', 'minilm,bge-base').split(',')) {
        shapes[shape] = {
          batch: `${batch} queries × group 4, 32/128 tokens`,
          device: await measure(shape, device, batch, steps),
          deviceHostState: await measure(shape, device, batch, 2, false),
          cpu: await measure(shape, 'cpu', batch, steps),
        };
      }
      result.shapes = shapes;
    }
  } catch (e) {
    ok = false;
    result.error = (e as Error).message;
  }
  result.ok = ok;
  console.log(JSON.stringify(result, null, 1));
  process.exitCode = ok ? 0 : 1;
}
