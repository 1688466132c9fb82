import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import ort from 'onnxruntime-node';
import { train } from '../src/jobs/train.js';
import { exportCheckpoint } from '../src/jobs/export.js';
import { readConfig } from '../src/models/config.js';
import { Encoder, loadWeights } from '../src/models/encoder.js';
import { padBatch } from '../src/models/batch.js';
import { transpose2d } from '../src/models/params.js';
import { readSafetensors } from '../src/models/safetensors.js';
import { floatTensor, int64Tensor, Session } from '../src/runtime/session.js';
import { resolveConfig } from '../src/training/config.js';
import { GRAD_PREFIX, stepGraph } from '../src/training/graphs.js';
import { ADAPTER, addAdapters, loraLayers, mergeAdapters, readAdapter } from '../src/training/lora.js';
import { FIXTURES, ROOT, TINY_BERT, TINY_QWEN2, TINY_QWEN3, TINY_XLMR, tempDir } from './helpers.js';

const ZH = join(ROOT, 'data', 'contrastive-zh', 'train.jsonl');
const REF = join(FIXTURES, 'reference');
const inputs = JSON.parse(readFileSync(join(REF, 'inputs.json'), 'utf8'));
const losses = JSON.parse(readFileSync(join(REF, 'losses.json'), 'utf8'));
const cases = JSON.parse(readFileSync(join(REF, 'lora-cases.json'), 'utf8'));

describe('LoRA gradients match PEFT', () => {
  for (const c of cases) {
    it(`${c.name}: r=${c.r}, alpha=${c.alpha} on ${c.targets.join(', ')}: loss and every adapter gradient (relative error ≤ 1e-5)`, async () => {
      const dir = join(FIXTURES, 'models', c.model);
      const weights = loadWeights(dir);
      const adapter = readAdapter(join(REF, c.name), weights);
      assert.equal(adapter.options.rank, c.r);
      for (const [n, t] of adapter.tensors) weights.set(n, t);
      const config = { ...readConfig(dir), loraScale: c.alpha / c.r };
      const frozen = new Set([...weights.keys()].filter((n) => !ADAPTER.test(n)));
      const { graph, names, params } = stepGraph(config, weights, { pooling: c.pooling, normalize: true }, { temperature: c.temperature }, { frozen });
      assert.deepEqual(names.sort(), [...adapter.tensors.keys()].sort(), 'only the adapters get gradients');
      const session = await Session.create(graph, { threads: 1 });
      const feed: Record<string, ort.Tensor> = {};
      for (const [n, u] of params.used) feed[n] = floatTensor(u.data, u.shape);
      const entry = inputs.models[c.model];
      const types = session.inputNames.includes('q_token_type_ids');
      Object.assign(feed, padBatch(entry.queryIds, config.padTokenId, 'q_', types), padBatch(entry.passageIds, config.padTokenId, 'p_', types));
      feed.labels = int64Tensor(BigInt64Array.from(entry.queryIds.map((_: unknown, i: number) => BigInt(i * 2))), [entry.queryIds.length, 1]);
      const out = await session.run(feed);
      await session.release();
      assert.ok(Math.abs((out.loss!.data as Float32Array)[0]! - losses[c.name]) < 1e-5, `loss ${(out.loss!.data as Float32Array)[0]} vs ${losses[c.name]}`);
      const ref = new Map([...readSafetensors(join(REF, `grad-${c.name}.safetensors`))].map(([n, t]) => [n.replace('base_model.model.', '').replace('.default.', '.'), t]));
      for (const n of names) {
        const u = params.used.get(n)!;
        const got = transpose2d({ shape: u.shape, data: out[GRAD_PREFIX + n]!.data as Float32Array }); // back to PEFT's layout
        const want = ref.get(n)!;
        let [diff, norm] = [0, 0];
        for (let i = 0; i < want.data.length; i++) [diff, norm] = [diff + (got.data[i]! - want.data[i]!) ** 2, norm + want.data[i]! ** 2];
        assert.ok(Math.sqrt(diff) <= 1e-5 * Math.sqrt(norm), `${n}: relative error ${Math.sqrt(diff / norm)}`);
      }
    });
  }
});

describe('LoRA training', () => {
  const cfg = (model: string, out: string, extra: Record<string, unknown> = {}) =>
    resolveConfig({ model_name_or_path: model, train_data: ZH, output_dir: out, per_device_train_batch_size: 8, max_steps: 6, learning_rate: 5e-3, group_size: 2, max_query_len: 24, max_passage_len: 32, save_steps: 3, threads: 1, lora: true, lora_rank: 4, lora_alpha: 8, ...extra }).config;

  it('trains only the adapters (checkpoints hold only them), merges them on export, and writes the PEFT adapter', async () => {
    const dir = tempDir();
    const out = join(dir, 'run');
    await train(cfg(TINY_QWEN3, out), { quiet: true });
    const ckpt = readSafetensors(join(out, 'checkpoint-6', 'weights.safetensors'));
    assert.ok([...ckpt.keys()].length > 0 && [...ckpt.keys()].every((n) => ADAPTER.test(n)), 'the checkpoint holds the adapters only');
    const moments = readSafetensors(join(out, 'checkpoint-6', 'optimizer.safetensors'));
    assert.equal(moments.size, 2 * ckpt.size);
    // The merged export differs from the base only in the targeted layers, by alpha/r · B·A.
    const base = loadWeights(TINY_QWEN3);
    const merged = loadWeights(out);
    for (const [n, t] of base) {
      const changed = t.data.some((x, i) => x !== merged.get(n)!.data[i]);
      assert.equal(changed, /self_attn\.[qkvo]_proj\.weight$/.test(n), `${n} ${changed ? 'changed' : 'unchanged'}`);
    }
    const adapter = readAdapter(join(out, 'adapter'), base);
    assert.deepEqual(adapter.options, { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] });
    const expected = mergeAdapters(new Map([...base, ...adapter.tensors]), 2, readConfig(TINY_QWEN3));
    for (const [n, t] of expected) assert.ok(t.data.every((x, i) => Math.abs(x - merged.get(n)!.data[i]!) < 1e-6), n);
    // base + adapter through the graph's LoRA path = the merged model.
    const withAdapter = new Map([...base, ...adapter.tensors]);
    const viaAdapter = await Encoder.fromWeights(TINY_QWEN3, { ...readConfig(TINY_QWEN3), loraScale: 2 }, (await Encoder.load(TINY_QWEN3)).tokenizer, withAdapter, { threads: 1 });
    const plain = await Encoder.load(out);
    const texts = ['一架飞机要起飞了。', 'lift'];
    const a = await viaAdapter.encode(texts, { quiet: true });
    const b = await plain.encode(texts, { quiet: true });
    assert.ok(a.data.every((x, i) => Math.abs(x - b.data[i]!) < 1e-5));
    await viaAdapter.close();
    await plain.close();
    // export --adapter-only from a checkpoint.
    await exportCheckpoint({ checkpoint: join(out, 'checkpoint-6'), output: join(dir, 'peft'), adapterOnly: true });
    assert.ok(existsSync(join(dir, 'peft', 'adapter_model.safetensors')));
    assert.equal(JSON.parse(readFileSync(join(dir, 'peft', 'adapter_config.json'), 'utf8')).peft_type, 'LORA');
  });

  it('resumes bit-identically; works for BERT, XLM-R (recompute), USE-Lite', async () => {
    const dir = tempDir();
    const straight = join(dir, 'straight');
    await train(cfg(TINY_BERT, straight, { lora_target_modules: ['query', 'value', 'dense'] }), { quiet: true });
    const { cpSync, mkdirSync } = await import('node:fs');
    const resumed = join(dir, 'resumed');
    mkdirSync(resumed);
    cpSync(join(straight, 'checkpoint-3'), join(resumed, 'checkpoint-3'), { recursive: true });
    await train(cfg(TINY_BERT, resumed, { lora_target_modules: ['query', 'value', 'dense'], resume_from_checkpoint: true }), { quiet: true });
    assert.ok(readFileSync(join(straight, 'model.safetensors')).equals(readFileSync(join(resumed, 'model.safetensors'))));
    assert.equal((await train(cfg(TINY_XLMR, join(dir, 'xlmr'), { recompute: true }), { quiet: true })).steps, 6);
    assert.equal((await train(cfg(join(FIXTURES, 'models', 'tiny-use'), join(dir, 'use'), { lora_target_modules: ['qkv', 'ffn_in'] }), { quiet: true })).steps, 6);
    assert.equal((await train(cfg(TINY_QWEN2, join(dir, 'qwen2'), { lora_target_modules: 'all-linear', mini_batch_size: 4 }), { quiet: true })).steps, 6);
  });

  it('bad settings are refused by name', async () => {
    const weights = loadWeights(TINY_QWEN3);
    const config = readConfig(TINY_QWEN3);
    assert.throws(() => loraLayers(weights, { rank: 4, alpha: 8, dropout: 0, targets: ['query'] }, config), /"query" match no layer of this qwen3 model; its linear layers are: down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj/);
    assert.throws(() => loraLayers(weights, { rank: 40, alpha: 8, dropout: 0, targets: ['q_proj'] }, config), /lora_rank 40 is larger than layer layers.0.self_attn.q_proj \(64 × 32\)/);
    assert.throws(() => resolveConfig({ model_name_or_path: 'm', train_data: 'd', output_dir: 'o', lora_rank: 0 }), /"lora_rank" must be a positive integer/);
    assert.throws(() => resolveConfig({ model_name_or_path: 'm', train_data: 'd', output_dir: 'o', lora_target_modules: [] }), /"lora_target_modules" must be a non-empty list/);
    const w2 = loadWeights(TINY_BERT);
    addAdapters(w2, loraLayers(w2, { rank: 2, alpha: 4, dropout: 0, targets: ['query'] }, readConfig(TINY_BERT)), 2, readConfig(TINY_BERT), 1);
    assert.equal([...w2.keys()].filter((n) => ADAPTER.test(n)).length, 4, 'two layers × A and B');
    await assert.rejects(exportCheckpoint({ checkpoint: join(tempDir(), 'nope'), output: join(tempDir(), 'x'), adapterOnly: true }));
  });
});
