import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadRecords } from '../src/data/records.js';
import { train } from '../src/jobs/train.js';
import { readConfig } from '../src/models/config.js';
import { resolveConfig } from '../src/training/config.js';
import { loadWeights } from '../src/models/encoder.js';
import { parseDevices } from '../src/models/encoder-pool.js';
import { loadTextTokenizer } from '../src/models/tokenizer.js';
import { toDense } from '../src/training/optimizer.js';
import { epochBatches } from '../src/training/sampler.js';
import { Trainer, type TrainerOptions } from '../src/training/trainer.js';
import { Rng } from '../src/util/rng.js';
import { ROOT, tempDir, TINY_BERT, TINY_QWEN3, TINY_XLMR } from './helpers.js';

const ZH = join(ROOT, 'data', 'contrastive-zh', 'train.jsonl');
const BASE = { normalize: true, temperature: 0.05, learningRate: 1e-4, weightDecay: 0.1, warmupSteps: 0, totalSteps: 10, schedule: 'constant' as const, maxGradNorm: 1, maxQueryLength: 24, maxPassageLength: 40, threads: 1 };

async function batches(n: number, size: number) {
  const { records } = await loadRecords(ZH, { requirePositives: true });
  return epochBatches(records, { batchSize: size, groupSize: 3 }, new Rng(5)).slice(0, n);
}

const weightsOf = (t: Trainer) => new Map(t.slots.map((s) => [s.name, Float32Array.from(s.data)]));

function largestDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let worst = 0;
  for (const [name, x] of a) {
    const y = b.get(name)!;
    for (let j = 0; j < x.length; j++) worst = Math.max(worst, Math.abs(x[j]! - y[j]!));
  }
  return worst;
}

describe('data-parallel training', () => {
  for (const [model, extra] of [
    [TINY_BERT, { pooling: 'cls' }],
    [TINY_XLMR, { pooling: 'mean', recompute: true, miniBatchSize: 2 }],
    [TINY_QWEN3, { pooling: 'last' }],
  ] as [string, Partial<TrainerOptions>][]) {
    it(`2 workers × 1 thread with cross-device negatives give one worker's weights after 3 steps (${model.split('/').at(-1)}${extra.recompute ? ', recompute' : ''})`, async () => {
      const config = readConfig(model);
      const tok = loadTextTokenizer(model);
      const o = { ...BASE, ...extra } as TrainerOptions;
      const one = await Trainer.fromWeights(config, tok, loadWeights(model), o);
      const two = await Trainer.fromWeights(config, tok, loadWeights(model), { ...o, devices: parseDevices('cpu:2x1') });
      try {
        assert.deepEqual(two.slots.map((s) => s.name), one.slots.map((s) => s.name));
        for (const batch of await batches(3, 7)) {
          const [a, b] = [await one.step(batch), await two.step(batch)];
          assert.ok(Math.abs(a.loss - b.loss) <= 1e-5 * a.loss, `loss ${a.loss} vs ${b.loss}`);
          assert.ok(Math.abs(a.gradNorm - b.gradNorm) <= 1e-5 * a.gradNorm, `gradient norm ${a.gradNorm} vs ${b.gradNorm}`);
        }
        const [wa, wb] = [weightsOf(one), weightsOf(two)];
        for (const [name, x] of wa) {
          const diff = largestDiff(new Map([[name, x]]), new Map([[name, wb.get(name)!]]));
          // A key bias's true gradient is 0 (softmax cancels it): its gradient is float32 noise,
          // which Adam turns into steps of up to lr whichever way the noise falls.
          const bound = /key\.bias$/.test(name) ? 3 * o.learningRate : 1e-5;
          assert.ok(diff <= bound, `${name}: weights differ by ${diff}`);
        }
        // Not vacuous: the one-dimensional tensors (held as they load) moved from where they started.
        const initial = loadWeights(model);
        const moved = [...wa].filter(([n]) => initial.get(n)!.shape.length === 1).some(([n, x]) => largestDiff(new Map([[n, x]]), new Map([[n, initial.get(n)!.data]])) > 1e-5);
        assert.ok(moved, 'the weights did not move');
      } finally {
        await one.close();
        await two.close();
      }
    });
  }

  it('LoRA (base weights fixed, held transposed) and distillation run data-parallel with the one-worker losses and weights', async () => {
    const { ADAPTER, addAdapters, loraLayers } = await import('../src/training/lora.js');
    const config = { ...readConfig(TINY_BERT), loraScale: 2 };
    const tok = loadTextTokenizer(TINY_BERT);
    const withAdapters = () => {
      const w = loadWeights(TINY_BERT);
      addAdapters(w, loraLayers(w, { rank: 2, alpha: 4, dropout: 0, targets: ['query', 'value'] }, config), 2, config, 1);
      return w;
    };
    const { records } = await loadRecords(ZH, { requirePositives: true });
    const scored = records.slice(0, 40).map((r) => ({ ...r, posScores: r.pos.map((t) => t.length / 10), negScores: r.neg.map((t) => t.length / 10) }));
    const list = epochBatches(scored, { batchSize: 6, groupSize: 3 }, new Rng(4)).slice(0, 2);
    const o = { ...BASE, pooling: 'cls', learningRate: 1e-3, trainOnly: ADAPTER, distill: { type: 'kl_div', weight: 0.5 } } as TrainerOptions;
    const one = await Trainer.fromWeights(config, tok, withAdapters(), o);
    const two = await Trainer.fromWeights(config, tok, withAdapters(), { ...o, devices: parseDevices('cpu:2x1') });
    try {
      assert.ok(two.slots.length > 0 && two.slots.every((s) => ADAPTER.test(s.name)), 'only the adapters train');
      for (const batch of list) {
        const [a, b] = [await one.step(batch), await two.step(batch)];
        assert.ok(Math.abs(a.loss - b.loss) <= 1e-5 * a.loss, `loss ${a.loss} vs ${b.loss}`);
      }
      assert.ok(largestDiff(weightsOf(one), weightsOf(two)) <= 1e-5);
      // The export merges the adapters into base weights given back in Hugging Face layout.
      const [ha, hb] = [await one.hfWeights(), await two.hfWeights()];
      for (const [name, t] of ha) {
        assert.deepEqual(hb.get(name)!.shape, t.shape, name);
        assert.ok(largestDiff(new Map([[name, t.data]]), new Map([[name, hb.get(name)!.data]])) <= 1e-5, name);
      }
    } finally {
      await Promise.all([one.close(), two.close()]);
    }
  });

  it('3 workers: uneven slices, and a batch smaller than the workers (the idle one sits the step out)', async () => {
    const config = readConfig(TINY_BERT);
    const tok = loadTextTokenizer(TINY_BERT);
    const o = { ...BASE, pooling: 'cls' } as TrainerOptions;
    const one = await Trainer.fromWeights(config, tok, loadWeights(TINY_BERT), o);
    const three = await Trainer.fromWeights(config, tok, loadWeights(TINY_BERT), { ...o, devices: parseDevices('cpu:3x1') });
    try {
      const [seven] = await batches(1, 7);
      const [two] = await batches(1, 2);
      for (const batch of [seven!, two!, seven!]) {
        const [a, b] = [await one.step(batch), await three.step(batch)];
        assert.ok(Math.abs(a.loss - b.loss) <= 1e-5 * a.loss, `${batch.length} examples: loss ${a.loss} vs ${b.loss}`);
      }
      const [wa, wb] = [weightsOf(one), weightsOf(three)];
      for (const [name, x] of wa) assert.ok(largestDiff(new Map([[name, x]]), new Map([[name, wb.get(name)!]])) <= (/key\.bias$/.test(name) ? 3 * o.learningRate : 1e-5), name);
    } finally {
      await Promise.all([one.close(), three.close()]);
    }
  });

  it('one worker (training off the main thread) gives the one-process weights bit for bit', async () => {
    const config = readConfig(TINY_BERT);
    const tok = loadTextTokenizer(TINY_BERT);
    const o = { ...BASE, pooling: 'cls' } as TrainerOptions;
    const here = await Trainer.fromWeights(config, tok, loadWeights(TINY_BERT), o);
    const worker = await Trainer.fromWeights(config, tok, loadWeights(TINY_BERT), { ...o, devices: parseDevices('cpu:1x1') });
    try {
      for (const batch of await batches(2, 6)) assert.equal((await worker.step(batch)).loss, (await here.step(batch)).loss);
      assert.equal(largestDiff(weightsOf(here), weightsOf(worker)), 0);
    } finally {
      await Promise.all([here.close(), worker.close()]);
    }
  });

  it('without cross-device negatives: the loss and gradients are the average of each worker\'s own batch', async () => {
    const config = readConfig(TINY_BERT);
    const tok = loadTextTokenizer(TINY_BERT);
    const o = { ...BASE, pooling: 'cls', maxGradNorm: 0 } as TrainerOptions;
    const one = await Trainer.fromWeights(config, tok, loadWeights(TINY_BERT), o);
    const two = await Trainer.fromWeights(config, tok, loadWeights(TINY_BERT), { ...o, devices: parseDevices('cpu:2x1'), crossDevice: false });
    const cross = await Trainer.fromWeights(config, tok, loadWeights(TINY_BERT), { ...o, devices: parseDevices('cpu:2x1') });
    try {
      const [batch] = await batches(1, 8);
      const halves = [batch!.slice(0, 4), batch!.slice(4)];
      const parts: { loss: number; grads: Float32Array[] }[] = [];
      for (const h of halves) {
        const loss = await one.computeGradients(h);
        parts.push({ loss, grads: one.slots.map((s, i) => Float32Array.from(toDense(one.grads[i]!, s.data.length))) });
      }
      const loss = await two.computeGradients(batch!);
      const mean = (parts[0]!.loss + parts[1]!.loss) / 2;
      assert.ok(Math.abs(loss - mean) <= 1e-6 * mean, `loss ${loss}, per-worker average ${mean}`);
      two.slots.forEach((s, i) => {
        const g = toDense(two.grads[i]!, s.data.length);
        for (let j = 0; j < g.length; j++) {
          const want = (parts[0]!.grads[i]![j]! + parts[1]!.grads[i]![j]!) / 2;
          assert.ok(Math.abs(g[j]! - want) <= 1e-6 + 1e-4 * Math.abs(want), `${s.name}[${j}]: ${g[j]} vs ${want}`);
        }
      });
      // Cross-device negatives see all 8 queries' passages: a different (larger-batch) loss.
      const whole = await cross.computeGradients(batch!);
      assert.ok(Math.abs(whole - (await one.computeGradients(batch!))) <= 1e-5 * whole);
      assert.ok(Math.abs(whole - mean) > 1e-3, `cross-device ${whole} vs per-worker ${mean}`);
    } finally {
      await Promise.all([one.close(), two.close(), cross.close()]);
    }
  });
});

describe('train with devices', () => {
  it('runs the job on 2 workers (eval during training, checkpoints), resumes bit-identically, and takes per_device_train_batch_size per worker', async () => {
    const dir = tempDir();
    const lines = readFileSync(ZH, 'utf8').trim().split('\n');
    const data = join(dir, 'train.jsonl');
    writeFileSync(data, lines.slice(0, 40).join('\n') + '\n');
    const dev = join(dir, 'dev.jsonl');
    writeFileSync(dev, lines.slice(280).map((l) => JSON.parse(l)).map((r) => JSON.stringify({ query: r.query, pos_passage: r.pos, neg_passage: r.neg })).join('\n') + '\n');
    const cfg = {
      model_name_or_path: TINY_BERT, train_data: data, per_device_train_batch_size: 4, max_steps: 4, learning_rate: 1e-3, max_query_len: 24, max_passage_len: 40,
      group_size: 2, save_steps: 2, logging_steps: 1, eval_data: dev, eval_steps: 2, threads: 1, seed: 3, devices: 'cpu:2x1',
    };
    const out = join(dir, 'run');
    const r = await train(resolveConfig({ ...cfg, output_dir: out }).config, { quiet: true });
    assert.equal(r.steps, 4);
    assert.ok(existsSync(join(out, 'checkpoint-2')) && r.best);
    const resumed = join(dir, 'resumed');
    mkdirSync(resumed);
    cpSync(join(out, 'checkpoint-2'), join(resumed, 'checkpoint-2'), { recursive: true });
    await train(resolveConfig({ ...cfg, output_dir: resumed, resume_from_checkpoint: true }).config, { quiet: true });
    assert.ok(readFileSync(join(out, 'model.safetensors')).equals(readFileSync(join(resumed, 'model.safetensors'))), 'bit-identical after resume');
    // 2 workers × 4 queries: the same batches (and, up to float32 summation order, weights) as one worker with 8.
    const single = join(dir, 'single');
    const s1 = await train(resolveConfig({ ...cfg, devices: null, per_device_train_batch_size: 8, eval_data: null, output_dir: single }).config, { quiet: true });
    const logOf = (d: string) => readFileSync(join(d, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.loss !== undefined);
    assert.equal(s1.steps, 4);
    assert.equal(logOf(single).length, 4);
    logOf(single).forEach((l, i) => assert.ok(Math.abs(l.loss - logOf(out)[i].loss) <= 1e-4 * l.loss, `step ${l.step}: ${l.loss} vs ${logOf(out)[i].loss}`));
  });

  it('refuses devices with device, and a bad devices value, by name', () => {
    const base = { model_name_or_path: 'm', output_dir: 'o', train_data: 'd' };
    assert.throws(() => resolveConfig({ ...base, devices: 'cpu:2x1', device: 'cuda:0' }), /give "device" \(one process\) or "devices"/);
    assert.throws(() => resolveConfig({ ...base, devices: 'cpu:0x1' }), /cpu:0x1/);
    assert.throws(() => resolveConfig({ ...base, devices: 'tpu:0' }), /tpu/);
    assert.equal(resolveConfig({ ...base, embedding_negatives_cross_device: false }).ignored.length, 0);
  });
});

describe('train with devices: errors end the process', () => {
  it('an error after the workers started (missing eval_data, a checkpoint of another model) exits 1 naming it, with no thread left running', async () => {
    const { spawn } = await import('node:child_process');
    const dir = tempDir();
    const data = join(dir, 'train.jsonl');
    writeFileSync(data, readFileSync(ZH, 'utf8').trim().split('\n').slice(0, 24).join('\n') + '\n');
    const base = { model_name_or_path: TINY_BERT, train_data: data, per_device_train_batch_size: 4, max_steps: 2, group_size: 2, max_query_len: 16, max_passage_len: 16, threads: 1, devices: 'cpu:2x1', save_steps: 1 };
    // A checkpoint of another model (tiny-xlmr) to resume from.
    const other = join(dir, 'other');
    await train(resolveConfig({ ...base, model_name_or_path: TINY_XLMR, devices: null, max_steps: 1, output_dir: other }).config, { quiet: true });
    const cases: [object, RegExp][] = [
      [{ eval_data: join(dir, 'missing-dev.jsonl'), output_dir: join(dir, 'a') }, /missing-dev\.jsonl/],
      [{ resume_from_checkpoint: join(other, 'checkpoint-1'), output_dir: join(dir, 'b') }, /checkpoint-1: checkpoint does not match the model/],
    ];
    for (const [extra, message] of cases) {
      const config = join(dir, `config-${cases.findIndex((c) => c[0] === extra)}.json`);
      writeFileSync(config, JSON.stringify({ ...base, ...extra }));
      const child = spawn(process.execPath, [join(ROOT, 'dist', 'src', 'cli.js'), 'train', '-c', config, '-q'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (c) => (stderr += c));
      // A watchdog only to fail instead of hanging the suite (a run takes seconds).
      const watchdog = setTimeout(() => child.kill('SIGKILL'), 120_000);
      const [code, signal] = await new Promise<[number | null, string | null]>((r) => child.on('close', (c, s) => r([c, s])));
      clearTimeout(watchdog);
      assert.equal(signal, null, `${JSON.stringify(extra)}: the process hung (killed after 120 s); stderr: ${stderr}`);
      assert.equal(code, 1, stderr);
      assert.match(stderr, message);
    }
  });
});
