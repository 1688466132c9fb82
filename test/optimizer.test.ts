import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AdamW, clipGradNorm, decays, globalNorm, learningRate, RowGradients, toDense } from '../src/training/optimizer.js';
import { FIXTURES, maxAbsDiff } from './helpers.js';

describe('AdamW', () => {
  it('matches torch.optim.AdamW over three steps, with and without weight decay', () => {
    const ref = JSON.parse(readFileSync(join(FIXTURES, 'reference', 'adamw.json'), 'utf8'));
    const n = ref.n as number;
    const init = (k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i + k));
    const grad = (step: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.cos((i + 1) * (step + 1) + k) * (i % 3 ? 0.1 : 10));
    const decayed = { name: 'w', data: init(0), decay: true };
    const plain = { name: 'b', data: init(1), decay: false };
    const opt = new AdamW([decayed, plain], { weightDecay: ref.weight_decay });
    ref.lrs.forEach((lr: number, step: number) => opt.update([grad(step, 0), grad(step, 1)], lr));
    assert.ok(maxAbsDiff(decayed.data, ref.decayed) < 1e-6, `decayed ${maxAbsDiff(decayed.data, ref.decayed)}`);
    assert.ok(maxAbsDiff(plain.data, ref.plain) < 1e-6, `plain ${maxAbsDiff(plain.data, ref.plain)}`);
  });

  for (const device of ['cpu', 'webgpu']) {
    it(`as a graph on ${device} (device-state.ts: state kept on a device): the same steps, clipping and weight decay included`, async (t) => {
      if (device === 'webgpu') {
        const missing = await (await import('./webgpu.js')).webgpuMissing();
        if (missing) return t.skip(missing);
      }
      const { DeviceState } = await import('../src/training/device-state.js');
      const { floatTensor } = await import('../src/runtime/session.js');
      const ref = JSON.parse(readFileSync(join(FIXTURES, 'reference', 'adamw.json'), 'utf8'));
      const n = ref.n as number;
      const init = (k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i + k));
      const grad = (step: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.cos((i + 1) * (step + 1) + k) * (i % 3 ? 0.1 : 10));
      for (const maxNorm of [0, 5]) {
        const slots = [{ name: 'w', shape: [n], data: init(0), decay: true }, { name: 'b', shape: [n], data: init(1), decay: false }];
        // groupBytes 1: each tensor in its own AdamW run (as bge-m3's word table is)
        const state = await DeviceState.create(slots, [], { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: ref.weight_decay }, { device, threads: 1 }, maxNorm ? 1 : undefined);
        const host = [{ name: 'w', data: init(0), decay: true }, { name: 'b', data: init(1), decay: false }];
        const opt = new AdamW(host, { weightDecay: ref.weight_decay });
        for (const [step, lr] of (ref.lrs as number[]).entries()) {
          const g = [grad(step, 0), grad(step, 1)];
          const onDevice = g.map((x) => floatTensor(x.slice(), [n]));
          const norm = await state.gradNorm(onDevice);
          await state.step(onDevice, lr, step + 1, maxNorm > 0 ? Math.min(1, maxNorm / (norm + 1e-6)) : 1);
          const hostNorm = clipGradNorm(g, maxNorm > 0 ? maxNorm : Infinity);
          assert.ok(Math.abs(norm - hostNorm) <= 1e-6 * hostNorm, `norm ${norm} vs ${hostNorm}`);
          opt.update(g, lr);
        }
        const { m, v } = await state.pull();
        await state.release();
        slots.forEach((s, i) => {
          assert.ok(maxAbsDiff(s.data, host[i]!.data) < 1e-6, `${device} max_norm ${maxNorm} ${s.name}: ${maxAbsDiff(s.data, host[i]!.data)}`);
          assert.ok(maxAbsDiff(m[i]!, opt.m[i]!) < 1e-6 && maxAbsDiff(v[i]!, opt.v[i]!) < 1e-5, `${device} moments of ${s.name}`);
        });
        if (maxNorm === 0) assert.ok(maxAbsDiff(slots[0]!.data, ref.decayed) < 1e-6 && maxAbsDiff(slots[1]!.data, ref.plain) < 1e-6, 'torch.optim.AdamW');
      }
    });
  }

  it('a row gradient updates exactly as its dense form: untouched rows decay and move by their moments', () => {
    const [rows, width] = [50, 8];
    const init = () => Float32Array.from({ length: rows * width }, (_, i) => Math.sin(i));
    const dense = { name: 'embeddings.word_embeddings.weight', data: init(), decay: true };
    const sparse = { ...dense, data: init() };
    const a = new AdamW([dense], { weightDecay: 0.1 });
    const b = new AdamW([sparse], { weightDecay: 0.1 });
    for (let step = 0; step < 5; step++) {
      const ids = step === 4 ? [] : [3 + step, 17, 3 + step, 40 - step]; // repeats add up; step 4 has no rows at all
      const acc = new RowGradients(width);
      acc.add(ids, Float32Array.from({ length: ids.length * width }, (_, i) => Math.cos(i * (step + 1))));
      const g = acc.finish();
      const full = Float32Array.from(toDense(g, rows * width));
      assert.equal(globalNorm([g]), globalNorm([full]));
      assert.equal(clipGradNorm([g], 0.5), clipGradNorm([full], 0.5));
      a.update([full], 0.01);
      b.update([g], 0.01);
    }
    assert.deepEqual(sparse.data, dense.data, 'weights bit-identical');
    assert.deepEqual(b.m[0], a.m[0]);
    assert.deepEqual(b.v[0], a.v[0]);
    assert.notEqual(dense.data[1], init()[1], 'row 0 never had a gradient and still moved');
  });

  it('decays weights but not biases or LayerNorm', () => {
    assert.equal(decays('encoder.layer.0.attention.self.query.weight'), true);
    assert.equal(decays('embeddings.word_embeddings.weight'), true);
    assert.equal(decays('encoder.layer.0.attention.self.query.bias'), false);
    assert.equal(decays('encoder.layer.0.output.LayerNorm.weight'), false);
  });
});

describe('clipping and schedules', () => {
  it('clips by global norm like clip_grad_norm_', () => {
    const g = [Float32Array.of(3, 0), Float32Array.of(4)];
    assert.equal(clipGradNorm(g, 1), 5);
    assert.ok(Math.abs(globalNorm(g) - 1) < 1e-6);
    const small = [Float32Array.of(0.3)];
    clipGradNorm(small, 1);
    assert.equal(small[0]![0], Float32Array.of(0.3)[0]);
  });

  it('warms up linearly from 0, then decays', () => {
    const o = { lr: 1, warmupSteps: 4, totalSteps: 14 };
    assert.deepEqual([0, 1, 2, 3].map((s) => learningRate(s, { ...o, schedule: 'linear' })), [0, 0.25, 0.5, 0.75]);
    assert.equal(learningRate(4, { ...o, schedule: 'linear' }), 1);
    assert.ok(Math.abs(learningRate(9, { ...o, schedule: 'linear' }) - 0.5) < 1e-12);
    assert.ok(Math.abs(learningRate(9, { ...o, schedule: 'cosine' }) - 0.5) < 1e-12);
    assert.ok(Math.abs(learningRate(6, { ...o, schedule: 'cosine' }) - 0.5 * (1 + Math.cos(Math.PI * 0.2))) < 1e-12);
    assert.equal(learningRate(13, { ...o, schedule: 'constant' }), 1);
    assert.equal(learningRate(14, { ...o, schedule: 'linear' }), 0);
  });
});
