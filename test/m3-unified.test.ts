/**
 * bge-m3's unified fine-tuning: the loss (dense + lexical + ColBERT + ensemble, self-distillation)
 * and every weight's gradient — the heads' and the encoder's — against a float64 PyTorch reference
 * written from the paper's definitions (scripts/torch_m3_unified_reference.py).
 */
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type ort from 'onnxruntime-node';
import { padBatch } from '../src/models/batch.js';
import { readConfig } from '../src/models/config.js';
import { addM3Heads, specialTokenIds } from '../src/models/m3-heads.js';
import { transpose2d } from '../src/models/params.js';
import { readSafetensors } from '../src/models/safetensors.js';
import { m3Feed } from '../src/losses/m3.js';
import { floatTensor, int64Tensor, Session } from '../src/runtime/session.js';
import { GRAD_PREFIX, stepGraph } from '../src/training/graphs.js';
import { loadTextTokenizer } from '../src/models/tokenizer.js';
import { toDense } from '../src/training/optimizer.js';
import { Trainer } from '../src/training/trainer.js';
import { FIXTURES, maxAbsDiff, ROOT, TINY_XLMR, tempDir } from './helpers.js';
import { train } from '../src/jobs/train.js';
import { exportCheckpoint } from '../src/jobs/export.js';
import { readM3Heads } from '../src/models/m3-heads.js';
import { M3Encoder } from '../src/models/m3.js';
import { Encoder, loadWeights } from '../src/models/encoder.js';
import { resolveConfig } from '../src/training/config.js';

const ZH = join(ROOT, 'data', 'contrastive-zh', 'train.jsonl');

const REF = join(FIXTURES, 'reference');
const ref = JSON.parse(readFileSync(join(REF, 'm3-unified.json'), 'utf8')) as { temperature: number } & Record<'plain' | 'self_distill', { loss: number; heads: Record<string, number[]> }>;
const batch = JSON.parse(readFileSync(join(REF, 'inputs.json'), 'utf8')).models['tiny-xlmr'] as { queryIds: number[][]; passageIds: number[][] };

/** tiny-xlmr's files with the heads beside them: a tiny model in bge-m3's layout. */
export function tinyM3(): string {
  const dir = join(tempDir(), 'tiny-m3');
  cpSync(TINY_XLMR, dir, { recursive: true });
  for (const f of ['sparse_linear.pt', 'colbert_linear.pt']) copyFileSync(join(REF, 'pickles', f), join(dir, f));
  return dir;
}

const relError = (got: ArrayLike<number>, want: ArrayLike<number>) => {
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < want.length; i++) (diff += (got[i]! - want[i]!) ** 2), (norm += want[i]! ** 2);
  return Math.sqrt(diff) / Math.sqrt(norm);
};

async function unifiedStep(selfDistill: boolean) {
  const dir = tinyM3();
  const config = readConfig(dir);
  const weights = loadWeights(dir);
  const { colbertDim, created } = addM3Heads(weights, dir, config.hiddenSize);
  assert.deepEqual(created, []);
  const { graph, names, params } = stepGraph(config, weights, { pooling: 'cls', normalize: true }, { temperature: ref.temperature, unified: { selfDistill, colbertDim } });
  const session = await Session.create(graph, { threads: 1 });
  const feed: Record<string, ort.Tensor> = {};
  for (const n of names) feed[n] = floatTensor(params.used.get(n)!.data, params.used.get(n)!.shape);
  const { queryIds: q, passageIds: p } = batch;
  const length = (ids: number[][]) => Math.max(...ids.map((x) => x.length));
  Object.assign(feed, padBatch(q, config.padTokenId, 'q_', false), padBatch(p, config.padTokenId, 'p_', false), m3Feed(q, p, length(q), length(p), specialTokenIds(dir)), { m3_self_distill: floatTensor(Float32Array.of(1), []) });
  feed.labels = int64Tensor(BigInt64Array.from(q.map((_, i) => BigInt(i * 2))), [q.length, 1]);
  const out = await session.run(Object.fromEntries(Object.entries(feed).filter(([k]) => session.inputNames.includes(k))));
  await session.release();
  const grad = (n: string) => {
    const u = params.used.get(n)!;
    const g = { shape: u.shape, data: out[GRAD_PREFIX + n]!.data as Float32Array };
    return (u.transposed ? transpose2d(g) : g).data as Float32Array;
  };
  return { loss: (out.loss!.data as Float32Array)[0]!, names, grad };
}

describe('bge-m3 unified fine-tuning', () => {
  for (const c of ['plain', 'self_distill'] as const) {
    it(`${c}: loss and the heads' gradients equal PyTorch's (relative ≤ 1e-5)`, async () => {
      const { loss, grad } = await unifiedStep(c === 'self_distill');
      assert.ok(Math.abs(loss - ref[c].loss) <= 1e-5 * Math.abs(ref[c].loss), `loss ${loss} vs ${ref[c].loss}`);
      for (const [name, want] of Object.entries(ref[c].heads)) {
        const rel = relError(grad(name), want);
        assert.ok(rel <= 1e-5, `${name}: relative error ${rel.toExponential(2)}`);
      }
    });
  }

  it("self_distill: every encoder weight's gradient equals PyTorch's too", async () => {
    const { names, grad } = await unifiedStep(true);
    const want = readSafetensors(join(REF, 'grad-tiny-xlmr-m3.safetensors'));
    assert.deepEqual([...want.keys()].sort(), [...names].sort(), 'the same tensors get gradients');
    for (const n of names) {
      if (/attention\.self\.key\.bias$/.test(n)) continue; // true gradient 0: rounding noise on both sides (gradients.test.ts)
      const rel = relError(grad(n), want.get(n)!.data as Float32Array);
      assert.ok(rel <= 1e-5, `${n}: relative error ${rel.toExponential(2)}`);
    }
  });
});

describe('unified fine-tuning in the trainer', () => {
  const examples = async () => {
    const { queries, passages } = await import('../scripts/reference-inputs.js').then((m) => m.trainingBatch());
    return queries.map((query: string, i: number) => ({ query, passages: passages.slice(2 * i, 2 * i + 2) }));
  };
  async function trainer(dir: string, o: { miniBatchSize?: number; selfDistill?: boolean; recompute?: boolean; selfDistillStartStep?: number } = {}) {
    const config = readConfig(dir);
    const weights = loadWeights(dir);
    const { colbertDim } = addM3Heads(weights, dir, config.hiddenSize);
    return Trainer.fromWeights(config, loadTextTokenizer(dir), weights, {
      pooling: 'cls', normalize: true, temperature: ref.temperature, learningRate: 1e-3, weightDecay: 0, warmupSteps: 0, totalSteps: 10, schedule: 'constant', maxGradNorm: 0,
      maxQueryLength: 16, maxPassageLength: 32, threads: 1, miniBatchSize: o.miniBatchSize, recompute: o.recompute,
      unified: { selfDistill: o.selfDistill ?? true, colbertDim, special: [...specialTokenIds(dir)], selfDistillStartStep: o.selfDistillStartStep },
    });
  }

  it("the fused step, GradCache (slices of 2) and recompute (whole, and in slices of 2) all give PyTorch's loss, and the same gradients", async () => {
    const dir = tinyM3();
    const batch = await examples();
    await using fused = await trainer(dir);
    const la = await fused.computeGradients(batch);
    assert.ok(Math.abs(la - ref.self_distill.loss) <= 1e-5 * ref.self_distill.loss, `fused loss ${la} vs ${ref.self_distill.loss}`);
    const heads = fused.slots.filter((s) => /^(sparse|colbert)_linear\./.test(s.name));
    assert.equal(heads.length, 4, 'the heads are trained');
    for (const o of [{ miniBatchSize: 2 }, { recompute: true }, { recompute: true, miniBatchSize: 2 }]) {
      await using other = await trainer(dir, o);
      const lb = await other.computeGradients(batch);
      assert.ok(Math.abs(lb - ref.self_distill.loss) <= 1e-5 * ref.self_distill.loss, `${JSON.stringify(o)}: loss ${lb} vs ${ref.self_distill.loss}`);
      assert.deepEqual(other.slots.map((s) => s.name).sort(), fused.slots.map((s) => s.name).sort());
      fused.slots.forEach((s, i) => {
        const a = toDense(fused.grads[i]!, s.data.length);
        const j = other.slots.findIndex((x) => x.name === s.name);
        const b = toDense(other.grads[j]!, s.data.length);
        assert.ok(relError(b, a) <= 1e-4 || Math.hypot(...a) < 1e-7, `${JSON.stringify(o)} ${s.name}: relative error ${relError(b, a)}`);
      });
    }
  });

  it("self_distill_start_step: no self-distillation until the step after it (FlagEmbedding's count), then the self-distilled loss", async () => {
    const dir = tinyM3();
    const batch = await examples();
    await using t = await trainer(dir, { selfDistillStartStep: 0 });
    const first = await t.computeGradients(batch); // FlagEmbedding's step 0: not > 0
    assert.ok(Math.abs(first - ref.plain.loss) <= 1e-5 * ref.plain.loss, `step 1: ${first} vs the plain loss ${ref.plain.loss}`);
    t.optimizer.step = 1; // as after one step (the weights unchanged)
    const second = await t.computeGradients(batch);
    assert.ok(Math.abs(second - ref.self_distill.loss) <= 1e-5 * ref.self_distill.loss, `step 2: ${second} vs the self-distilled loss ${ref.self_distill.loss}`);
    assert.throws(() => resolveConfig({ model_name_or_path: 'm', output_dir: 'o', train_data: 't', self_distill_start_step: -2 }), /"self_distill_start_step" must be an integer ≥ -1/);
  });

  it('a few steps lower the loss and change all three parts: encoder, sparse head, ColBERT head', async () => {
    const dir = tinyM3();
    const batch = await examples();
    await using t = await trainer(dir, { miniBatchSize: 2 });
    const before = new Map(t.slots.map((s) => [s.name, Float32Array.from(s.data)]));
    const losses = [];
    for (let i = 0; i < 4; i++) losses.push((await t.step(batch)).loss);
    assert.ok(losses.at(-1)! < losses[0]!, `losses ${losses}`);
    for (const name of ['sparse_linear.weight', 'sparse_linear.bias', 'colbert_linear.weight', 'colbert_linear.bias', 'encoder.layer.1.output.dense.weight']) {
      const s = t.slots.find((x) => x.name === name)!;
      assert.ok(s.data.some((x, j) => x !== before.get(name)![j]), `${name} changed`);
    }
  });
});

describe('unified fine-tuning as a train run', () => {
  it('trains all three, checkpoints, resumes, and exports the heads as torch.save files holding the trained values', async () => {
    const dir = tinyM3();
    const out = join(tempDir(), 'run');
    const exported = join(tempDir(), 'exported');
    const config = { model_name_or_path: dir, output_dir: out, train_data: ZH, per_device_train_batch_size: 4, mini_batch_size: 2, group_size: 2, max_query_len: 16, max_passage_len: 24, learning_rate: 1e-3, lr_scheduler_type: 'constant' as const, threads: 1, unified_finetuning: true, use_self_distill: true, max_steps: 3, save_steps: 2, logging_steps: 1 };
    const whole = await train({ ...config, output_dir: join(tempDir(), 'whole') }, { quiet: true });
    // stopped after the checkpoint at step 2 (a constant rate: the same schedule), then resumed: the loss of the run that never stopped
    await train({ ...config, max_steps: 2 }, { quiet: true });
    const resumed = await train({ ...config, resume_from_checkpoint: true }, { quiet: true });
    assert.ok(Math.abs(resumed.finalLoss - whole.finalLoss) <= 1e-5 * Math.abs(whole.finalLoss), `resumed ${resumed.finalLoss} vs ${whole.finalLoss}`);
    await exportCheckpoint({ checkpoint: join(out, 'checkpoint-3'), output: exported });
    const base = readM3Heads(dir, 48);
    const [atEnd, fromCheckpoint] = [readM3Heads(out, 48), readM3Heads(exported, 48)];
    for (const k of ['sparse', 'colbert'] as const) {
      assert.match(atEnd[k]!.file, /_linear\.pt$/);
      assert.ok(atEnd[k]!.weight.data.some((x, i) => x !== base[k]!.weight.data[i]), `${k} head trained`);
      assert.deepEqual(fromCheckpoint[k]!.weight.data, atEnd[k]!.weight.data, `${k}: the checkpoint's export holds the run's final head`);
      assert.deepEqual(fromCheckpoint[k]!.bias.data, atEnd[k]!.bias.data);
    }
    // the exported model gives all three outputs; its dense one is the plain encoder's
    await using m3 = await M3Encoder.load(exported);
    const [r] = await m3.encode(['what is the lift of a swept wing']);
    const enc = await Encoder.load(exported);
    const { data: dense } = await enc.encode(['what is the lift of a swept wing']);
    await enc.close();
    assert.ok(maxAbsDiff(r!.dense, dense) < 1e-6 && r!.sparse.size > 0 && r!.colbert.length > 0);
  });

  it('a dense-only fine-tune of a bge-m3 folder keeps its heads in the export', async () => {
    const dir = tinyM3();
    const out = join(tempDir(), 'dense');
    await train({ model_name_or_path: dir, output_dir: out, train_data: ZH, per_device_train_batch_size: 2, group_size: 2, max_query_len: 16, max_passage_len: 24, threads: 1, max_steps: 1 }, { quiet: true });
    for (const f of ['sparse_linear.pt', 'colbert_linear.pt']) assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(dir, f))), f);
  });

  it('refuses what it does not combine with, by key', () => {
    const c = { model_name_or_path: 'm', output_dir: 'o', train_data: 't', unified_finetuning: true };
    assert.throws(() => resolveConfig({ ...c, lora: true }), /"unified_finetuning" .* not with "lora"/);
    assert.throws(() => resolveConfig({ ...c, devices: 'cpu:2x1' }), /not with "devices"/);
    assert.throws(() => resolveConfig({ ...c, loss_type: 'inf_cl' }), /not with "loss_type"/);
    assert.throws(() => resolveConfig({ ...c, unified_finetuning: false, use_self_distill: true }), /"use_self_distill" .* set "unified_finetuning": true/);
    assert.throws(() => resolveConfig({ ...c, colbert_dim: 0 }), /"colbert_dim" must be a positive integer or -1/);
  });
});
