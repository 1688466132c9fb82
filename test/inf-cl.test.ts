/**
 * loss_type inf_cl: the tiled InfoNCE against a float64 PyTorch reference written from the spec's
 * definition (scripts/torch_infcl_reference.py), against the dense loss, and its memory bound.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DenseLoss, InfoNceTiled } from '../src/losses/inf-cl.js';
import { int64Tensor, Session } from '../src/runtime/session.js';
import { GRAD_PREFIX, lossGradGraph } from '../src/training/graphs.js';
import { FIXTURES } from './helpers.js';

interface Case { name: string; queries: number; group: number; dim: number; scale: number; dims: number[] | null; weights: number[] | null; q: number[]; p: number[]; loss: number; dq: number[]; dp: number[] }
const cases = JSON.parse(readFileSync(join(FIXTURES, 'reference', 'inf-cl.json'), 'utf8')) as Case[];
const labels = (n: number, group: number) => ({ labels: int64Tensor(BigInt64Array.from({ length: n }, (_, i) => BigInt(i * group)), [n, 1]) });
/** Largest difference relative to the reference's largest magnitude. */
const relErr = (a: ArrayLike<number>, b: number[]) => {
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / m;
};

describe('inf_cl: tiled InfoNCE', () => {
  for (const c of cases) {
    for (const tiles of [{}, { tileRows: 4, tileCols: 7 }]) {
      it(`${c.name}, tiles ${JSON.stringify(tiles)}: loss and gradients match PyTorch (float64) within 1e-6`, async () => {
        await using loss = await InfoNceTiled.create({ scale: c.scale, normalized: true, matryoshkaDims: c.dims ?? undefined, matryoshkaWeights: c.weights ?? undefined, ...tiles }, { threads: 1 });
        const r = await loss.lossAndGradients(Float32Array.from(c.q), Float32Array.from(c.p), c.dim, labels(c.queries, c.group));
        assert.ok(Math.abs(r.loss - c.loss) / Math.abs(c.loss) <= 1e-6, `loss ${r.loss} vs ${c.loss}`);
        assert.ok(relErr(r.dq, c.dq) <= 1e-6, `dq ${relErr(r.dq, c.dq)}`);
        assert.ok(relErr(r.dp, c.dp) <= 1e-6, `dp ${relErr(r.dp, c.dp)}`);
      });
    }
  }

  it('equals the dense contrastive loss at temperature 1 (scale 1.0), Matryoshka included', async () => {
    for (const c of cases.filter((x) => x.scale === 1)) {
      await using tiled = await InfoNceTiled.create({ scale: 1, normalized: true, matryoshkaDims: c.dims ?? undefined, matryoshkaWeights: c.weights ?? undefined, tileRows: 2, tileCols: 5 }, { threads: 1 });
      const session = await Session.create(lossGradGraph(c.dim, { temperature: 1, normalized: true, matryoshkaDims: c.dims ?? undefined, matryoshkaWeights: c.weights ?? undefined }), { threads: 1 });
      const dense = new DenseLoss(session, GRAD_PREFIX);
      const [q, p, feed] = [Float32Array.from(c.q), Float32Array.from(c.p), labels(c.queries, c.group)];
      const a = await tiled.lossAndGradients(q, p, c.dim, feed);
      const b = await dense.lossAndGradients(q, p, c.dim, feed);
      await dense.release();
      assert.ok(Math.abs(a.loss - b.loss) / b.loss <= 1e-6, `${c.name}: ${a.loss} vs ${b.loss}`);
      assert.ok(relErr(a.dq, Array.from(b.dq)) <= 1e-5 && relErr(a.dp, Array.from(b.dp)) <= 1e-5, c.name);
    }
  });

  it('holds one tile of scores at a time: the block does not grow with the batch', async () => {
    const peaks: number[] = [];
    for (const queries of [32, 128]) {
      const group = 8;
      const dim = 8;
      const rnd = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898) * 0.5);
      await using loss = await InfoNceTiled.create({ scale: 1, normalized: false, tileRows: 16, tileCols: 64 }, { threads: 1 });
      await loss.lossAndGradients(rnd(queries * dim), rnd(queries * group * dim), dim, labels(queries, group));
      peaks.push(loss.stats.peakBlockFloats);
    }
    // The dense loss holds queries × passages scores: 8,192 and then 131,072 floats here.
    assert.deepEqual(peaks, [16 * 64, 16 * 64]);
  });
});

describe('loss_type inf_cl trains', () => {
  it('the same losses as contrastive at temperature 1.0, step by step; with two workers too; recompute too', async () => {
    const { train } = await import('../src/jobs/train.js');
    const { resolveConfig } = await import('../src/training/config.js');
    const { tempDir, ROOT, TINY_BERT } = await import('./helpers.js');
    const { writeFileSync } = await import('node:fs');
    const dir = tempDir();
    const data = join(dir, 'train.jsonl');
    writeFileSync(data, readFileSync(join(ROOT, 'data', 'contrastive-zh', 'train.jsonl'), 'utf8').trim().split('\n').slice(0, 24).join('\n') + '\n');
    const base = { model_name_or_path: TINY_BERT, train_data: data, per_device_train_batch_size: 8, mini_batch_size: 4, max_steps: 3, group_size: 2, max_query_len: 16, max_passage_len: 16, threads: 1, logging_steps: 1, learning_rate: 1e-3, save_steps: 100, embedding_temperature: 1.0 };
    const losses = async (name: string, extra: object) => {
      const out = join(dir, name);
      await train(resolveConfig({ ...base, ...extra, output_dir: out }).config, { quiet: true });
      return readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).loss as number);
    };
    const dense = await losses('dense', {});
    const runs = {
      tiled: await losses('tiled', { loss_type: 'inf_cl' }),
      'tiled, temperature applied (1.0)': await losses('tiled-t', { loss_type: 'inf_cl', inf_cl_temperature: true }),
      'tiled, recompute': await losses('tiled-r', { loss_type: 'inf_cl', recompute: true }),
      'tiled, 2 workers': await losses('tiled-2', { loss_type: 'inf_cl', devices: 'cpu:2x1', per_device_train_batch_size: 4, mini_batch_size: 2 }),
    };
    assert.equal(dense.length, 3);
    for (const [name, l] of Object.entries(runs)) {
      for (let i = 0; i < 3; i++) assert.ok(Math.abs(l[i]! - dense[i]!) / dense[i]! <= (i === 0 ? 1e-6 : 1e-5), `${name} step ${i + 1}: ${l[i]} vs ${dense[i]}`);
    }
    // Scale 1.0 by default: at the spec's temperature 0.02 the contrastive loss is another number, inf_cl's is not.
    const spec = await losses('tiled-spec', { loss_type: 'inf_cl', embedding_temperature: 0.02 });
    assert.ok(Math.abs(spec[0]! - dense[0]!) / dense[0]! <= 1e-6);
  });

  it('refuses distillation, and an unknown loss_type, by name', async () => {
    const { resolveConfig } = await import('../src/training/config.js');
    const base = { model_name_or_path: 'm', output_dir: 'o', train_data: 't' };
    assert.throws(() => resolveConfig({ ...base, loss_type: 'inf_cl', knowledge_distillation: true }), /inf_cl has no distillation term/);
    assert.throws(() => resolveConfig({ ...base, loss_type: 'infcl' }), /"loss_type" must be contrastive or inf_cl, got "infcl"/);
    assert.equal(resolveConfig({ ...base, loss_type: 'inf_cl', inf_cl_head_dim: 128 }).config.inf_cl_head_dim, 128);
  });
});
