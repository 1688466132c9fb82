/**
 * No error path leaves anything behind: after each failing command, no onnxruntime session, no
 * worker thread and no temp file is still held (run.ts's liveResources counts them).
 */
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { clean } from '../src/jobs/clean.js';
import { beirToRecords } from '../src/jobs/convert.js';
import { encodeFile } from '../src/jobs/encode.js';
import { evaluate } from '../src/jobs/evaluate.js';
import { mine } from '../src/jobs/mine.js';
import { score } from '../src/jobs/score.js';
import { train } from '../src/jobs/train.js';
import { readConfig } from '../src/models/config.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { loadWeights } from '../src/models/weights.js';
import { liveResources } from '../src/run.js';
import { HnswSearch, sampledRecall } from '../src/search/hnsw.js';
import { resolveConfig } from '../src/training/config.js';
import { Trainer } from '../src/training/trainer.js';
import { CRANFIELD, FIXTURES, ROOT, TINY_BERT, TINY_XLMR, tempDir } from './helpers.js';

const ZH = join(ROOT, 'data', 'contrastive-zh', 'train.jsonl');
const NONE = { sessions: 0, workers: 0, temps: 0 };

/** Runs `fn`, which must fail with `message`, then checks that nothing is held. */
async function failsClean(what: string, fn: () => Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(fn(), message, what);
  // Workers report their exit a tick after terminate() resolves.
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(liveResources(), NONE, `${what}: left behind`);
}

describe('an error leaves no session, worker or temp file behind', () => {
  const dir = tempDir();
  const data = join(dir, 'train.jsonl');
  writeFileSync(data, readFileSync(ZH, 'utf8').trim().split('\n').slice(0, 24).join('\n') + '\n');
  const base = { model_name_or_path: TINY_BERT, train_data: data, per_device_train_batch_size: 4, max_steps: 2, group_size: 2, max_query_len: 16, max_passage_len: 16, threads: 1, save_steps: 1 };
  const config = (extra: object) => resolveConfig({ ...base, ...extra }).config;

  it('train: a missing eval set, a checkpoint of another model, in one process, recompute and with worker threads', async () => {
    const other = join(dir, 'other');
    await train(config({ model_name_or_path: TINY_XLMR, max_steps: 1, output_dir: other }), { quiet: true });
    assert.deepEqual(liveResources(), NONE, 'a run that succeeded');
    let n = 0;
    for (const mode of [{}, { recompute: true }, { gradient_accumulation_steps: 2 }, { devices: 'cpu:2x1' }]) {
      await failsClean(`${JSON.stringify(mode)} missing eval_data`, () => train(config({ ...mode, eval_data: join(dir, 'missing.jsonl'), output_dir: join(dir, `a${n++}`) }), { quiet: true }), /missing\.jsonl/);
      await failsClean(`${JSON.stringify(mode)} resume another model`, () => train(config({ ...mode, resume_from_checkpoint: join(other, 'checkpoint-1'), output_dir: join(dir, `b${n++}`) }), { quiet: true }), /does not match the model/);
    }
  });

  it('Trainer.create failing midway (a later graph refused) releases the sessions it had made', async () => {
    const weights = () => loadWeights(TINY_BERT);
    const cfg = readConfig(TINY_BERT);
    const tok = loadTokenizer(TINY_BERT);
    // Matryoshka dims past the hidden size are refused by the loss graph, built after the encoder's sessions.
    const options = { pooling: 'cls' as const, normalize: true, temperature: 0.05, learningRate: 1e-4, weightDecay: 0, warmupSteps: 0, totalSteps: 1, schedule: 'linear' as const, maxGradNorm: 1, maxQueryLength: 16, maxPassageLength: 16, threads: 1, matryoshkaDims: [10_000] };
    for (const mode of [{ recompute: true }, { miniBatchSize: 2 }] as const) {
      await failsClean(`Trainer.create ${JSON.stringify(mode)}`, () => Trainer.fromWeights(cfg, tok, weights(), { ...options, ...mode }), /matryoshka dimension 10000 is not an integer in 1\.\.32/);
    }
  });

  it('mine, eval, clean, encode, score: failing runs (a reranker that fails to load after encoding, unwritable outputs)', async () => {
    const records = join(dir, 'cranfield.jsonl');
    await beirToRecords({ beir: CRANFIELD, output: records, quiet: true });
    const brokenReranker = join(dir, 'reranker');
    cpSync(join(FIXTURES, 'models', 'tiny-bert-reranker'), brokenReranker, { recursive: true });
    writeFileSync(join(brokenReranker, 'model.safetensors'), 'not weights');
    const model = { model: TINY_BERT, threads: 1, quiet: true };
    await failsClean('mine: a broken reranker', () => mine({ ...model, input: records, output: join(dir, 'm.jsonl'), reranker: brokenReranker }), /model\.safetensors/);
    await failsClean('mine --index hnsw: a broken reranker', () => mine({ ...model, input: records, output: join(dir, 'm.jsonl'), index: 'hnsw', poolOnDisk: true, reranker: brokenReranker }), /model\.safetensors/);
    await failsClean('mine with devices: unwritable output', () => mine({ ...model, devices: 'cpu:2x1', input: records, output: join(dir, 'no', 'such', 'dir', 'm.jsonl') }), /no[/\\]such[/\\]dir/);
    await failsClean('score: a broken reranker', () => score({ reranker: brokenReranker, input: records, output: join(dir, 's.jsonl'), quiet: true }), /model\.safetensors/);
    await failsClean('clean: unwritable output', () => clean({ ...model, input: records, output: join(dir, 'no', 'such', 'c.jsonl') }), /no[/\\]such/);
    const texts = join(dir, 'texts.txt');
    writeFileSync(texts, 'one\ntwo\n');
    await failsClean('encode: unwritable output', () => encodeFile({ ...model, input: texts, output: join(dir, 'no', 'such', 'e.npy') }), /no[/\\]such/);
    const beir = join(dir, 'beir');
    cpSync(CRANFIELD, beir, { recursive: true });
    await failsClean('eval: unwritable metrics', () => evaluate({ ...model, data: beir, output: join(dir, 'no', 'such', 'metrics.json') }), /no[/\\]such/);
  });

  it('an encoder refused after its session was made (a bad maxLength)', async () => {
    const { Encoder } = await import('../src/models/encoder.js');
    await failsClean('Encoder.load maxLength 1', () => Encoder.load(TINY_BERT, { maxLength: 1, threads: 1 }), /maxLength must be an integer ≥ 2, got 1/);
  });

  it('an HNSW build that fails midway', async () => {
    const rows = { dim: 8, count: 40_000, data: new Float32Array(8 * 40_000) };
    const source = { dim: 8, count: 40_000, rows: (lo: number) => { if (lo > 0) throw new Error('disk gone'); return rows.data.subarray(0, 8 * 16384); } };
    await failsClean('hnsw build', () => HnswSearch.build(source as never, {}), /disk gone/);
    // Its recall check searches the rows exactly: a read failing there releases the search session.
    const queries = { dim: 8, count: 4, data: new Float32Array(32).fill(1) };
    const hits = { k: 2, scores: new Float32Array(8), indices: new Int32Array(8) };
    await failsClean('hnsw recall check', () => sampledRecall(queries, { dim: 8, count: 40_000, rows: () => { throw new Error('disk gone'); } } as never, hits), /disk gone/);
  });
});
