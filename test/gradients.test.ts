import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import ort from 'onnxruntime-node';
import { readConfig } from '../src/models/config.js';
import { loadWeights } from '../src/models/encoder.js';
import { padBatch } from '../src/models/batch.js';
import { transpose2d } from '../src/models/params.js';
import { readSafetensors } from '../src/models/safetensors.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { floatTensor, int64Tensor, Session } from '../src/runtime/session.js';
import { GRAD_PREFIX, stepGraph } from '../src/training/graphs.js';
import type { Pooling } from '../src/models/pooling.js';
import { FIXTURES } from './helpers.js';

const inputs = JSON.parse(readFileSync(join(FIXTURES, 'reference', 'inputs.json'), 'utf8'));
const losses = JSON.parse(readFileSync(join(FIXTURES, 'reference', 'losses.json'), 'utf8'));

describe('training-step gradients match PyTorch', () => {
  for (const c of inputs.gradientCases) {
    it(`${c.name}: loss and every weight's gradient (relative error ≤ 1e-5; measured ≤ 3e-6)`, async () => {
      const dir = join(FIXTURES, 'models', c.model);
      const config = readConfig(dir);
      const tok = loadTokenizer(dir);
      const entry = inputs.models[c.model];
      const batch = { q: entry.queryIds as number[][], p: entry.passageIds as number[][] };
      // Our tokenizer gives the ids PyTorch saw (queries truncated at 16, passages at 32).
      const { queries, passages } = await import('../scripts/reference-inputs.js').then((m) => m.trainingBatch());
      assert.deepEqual(queries.map((t: string) => tok.encode(t, 16)), batch.q);
      assert.deepEqual(passages.map((t: string) => tok.encode(t, 32)), batch.p);

      const weights = loadWeights(dir);
      const dims = c.matryoshkaDims.length ? c.matryoshkaDims : undefined;
      const { graph, names, params } = stepGraph(config, weights, { pooling: c.pooling as Pooling, normalize: true }, { temperature: c.temperature, matryoshkaDims: dims, matryoshkaWeights: dims ? c.matryoshkaWeights : undefined });
      const session = await Session.create(graph, { threads: 1 });
      const feed: Record<string, ort.Tensor> = {};
      for (const n of names) {
        const u = params.used.get(n)!;
        feed[n] = floatTensor(u.data, u.shape);
      }
      const types = session.inputNames.includes('q_token_type_ids');
      Object.assign(feed, padBatch(batch.q, config.padTokenId, 'q_', types), padBatch(batch.p, config.padTokenId, 'p_', types));
      feed.labels = int64Tensor(BigInt64Array.from(batch.q.map((_, i) => BigInt(i * 2))), [batch.q.length, 1]);
      const out = await session.run(feed);
      await session.release();

      const loss = (out.loss!.data as Float32Array)[0];
      assert.ok(Math.abs(loss! - losses[c.name]) < 1e-5, `loss ${loss} vs ${losses[c.name]}`);
      const ref = readSafetensors(join(FIXTURES, 'reference', `grad-${c.name}.safetensors`));
      assert.deepEqual([...ref.keys()].sort(), [...names].sort(), 'the same tensors get gradients');
      let worst = 0;
      for (const n of names) {
        const u = params.used.get(n)!;
        let got = { shape: u.shape, data: out[GRAD_PREFIX + n]!.data as Float32Array };
        if (u.transposed) got = transpose2d(got); // back to PyTorch's [out, in]
        const want = ref.get(n)!;
        let diff = 0;
        let norm = 0;
        for (let i = 0; i < want.data.length; i++) {
          diff += (got.data[i]! - want.data[i]!) ** 2;
          norm += want.data[i]! ** 2;
        }
        if (/attention\.self\.key\.bias$/.test(n)) {
          // A key bias adds the same q·b to every score of a row, which softmax cancels: its
          // true gradient is 0, and both sides hold only rounding noise there. (Not with RoPE: Qwen2's
          // k_proj bias is rotated differently at each position and has a real gradient.)
          assert.ok(Math.sqrt(norm) < 1e-6 && Math.sqrt(diff) < 1e-6, `${n}: expected ~0, got ${Math.sqrt(diff)}`);
          continue;
        }
        const rel = Math.sqrt(diff) / Math.sqrt(norm);
        worst = Math.max(worst, rel);
        assert.ok(rel <= 1e-5, `${n}: relative error ${rel.toExponential(2)}`);
      }
      assert.ok(worst <= 1e-5);
      if (process.env.EMBEDTUNE_VERBOSE) console.log(c.name, "worst relative error", worst);
    });
  }
});
