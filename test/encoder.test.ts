import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Encoder } from '../src/models/encoder.js';
import { FIXTURES, TINY_BERT, TINY_XLMR, maxAbsDiff } from './helpers.js';

const inputs = JSON.parse(readFileSync(join(FIXTURES, 'reference', 'inputs.json'), 'utf8'));

for (const [name, dir] of [
  ['tiny-bert', TINY_BERT],
  ['tiny-xlmr', TINY_XLMR],
  ['tiny-use', join(FIXTURES, 'models', 'tiny-use')],
  // Written by PyTorch in half precision (scripts/torch_dtype_models.py); the BF16 one has XLM-R's
  // 514-row position table, so positions up to 513 are compared.
  ['tiny-bert-f16', join(FIXTURES, 'models', 'tiny-bert-f16')],
  ['tiny-xlmr-bf16-long', join(FIXTURES, 'models', 'tiny-xlmr-bf16-long')],
  // Referenced by Hugging Face transformers' Qwen2Model / Qwen3Model and the Rust tokenizers
  // library (scripts/torch_qwen_reference.py): each sentence run alone, no padding.
  ['tiny-qwen2', join(FIXTURES, 'models', 'tiny-qwen2')],
  ['tiny-qwen3', join(FIXTURES, 'models', 'tiny-qwen3')],
] as const) {
  describe(`${name} matches PyTorch`, () => {
    const ref = JSON.parse(readFileSync(join(FIXTURES, 'reference', `${name}.json`), 'utf8'));
    const maxLength = inputs.models[name].maxLength as number;

    it(`tokenizes to the ids the reference embedded, truncating at ${maxLength}`, async () => {
      const enc = await Encoder.load(dir, { pooling: 'cls' });
      const ids = inputs.sentences.map((s: string) => enc.tokenize(s, { maxLength }));
      assert.deepEqual(ids, ref.ids);
      assert.ok(ids.some((x: number[]) => x.length === maxLength), 'one sentence is truncated');
      if (maxLength > 128) assert.ok(ids.some((x: number[]) => x.length > 128 && x.length < maxLength), 'one sentence is between 128 and the limit');
      await enc.close();
    });

    for (const pooling of (['cls', 'mean', 'last'] as const).filter((x) => x in ref)) {
      for (const normalize of [false, true]) {
        it(`${pooling} pooling, normalize=${normalize}, padded batches: max abs diff ≤ 1e-4`, async () => {
          const enc = await Encoder.load(dir, { pooling, normalize });
          // batchSize 7 mixes lengths inside each batch, so padding is present.
          const out = await enc.encode(inputs.sentences, { maxLength, batchSize: 7 });
          const expected = (ref[normalize ? `${pooling}_normalized` : pooling] as number[][]).flat();
          const diff = maxAbsDiff(out.data, expected);
          assert.ok(diff <= 1e-4, `max abs diff ${diff}`);
          await enc.close();
        });
      }
    }
  });
}

describe('decoders (Qwen2, Qwen3)', () => {
  for (const name of ['tiny-qwen2', 'tiny-qwen3']) {
    it(`${name}: a left-padded batch (Qwen3-Embedding pads on the left) gives the reference's last-token and mean embeddings`, async () => {
      const { buildEncoderGraph } = await import('../src/models/encoder.js');
      const { readConfig } = await import('../src/models/config.js');
      const { loadWeights } = await import('../src/models/weights.js');
      const { Session, int64Tensor } = await import('../src/runtime/session.js');
      const dir = join(FIXTURES, 'models', name);
      const ref = JSON.parse(readFileSync(join(FIXTURES, 'reference', `${name}.json`), 'utf8'));
      const rows: number[][] = ref.ids.slice(0, 9); // lengths 3 … 49
      const s = Math.max(...rows.map((r) => r.length));
      const ids = new BigInt64Array(rows.length * s).fill(7n); // a real token id under a zero mask
      const mask = new BigInt64Array(rows.length * s);
      rows.forEach((r, i) => r.forEach((t, j) => ((ids[i * s + s - r.length + j] = BigInt(t)), (mask[i * s + s - r.length + j] = 1n))));
      for (const pooling of ['last', 'mean'] as const) {
        const { graph } = buildEncoderGraph(readConfig(dir), loadWeights(dir), { pooling, normalize: false });
        const session = await Session.create(graph, { threads: 1 });
        const out = await session.run({ input_ids: int64Tensor(ids, [rows.length, s]), attention_mask: int64Tensor(mask, [rows.length, s]) });
        await session.release();
        const diff = maxAbsDiff(out.sentence_embedding!.data as Float32Array, (ref[pooling] as number[][]).slice(0, rows.length).flat());
        assert.ok(diff <= 1e-4, `${pooling}: max abs diff ${diff}`);
      }
    });
  }

  it('Qwen3-Embedding\'s end token: the tokenizer\'s post-processor appends <|endoftext|> (not the config\'s eos <|im_end|>), kept when truncating', async () => {
    const enc = await Encoder.load(join(FIXTURES, 'models', 'tiny-qwen3'));
    const tokenizer = JSON.parse(readFileSync(join(FIXTURES, 'models', 'tiny-qwen3', 'tokenizer.json'), 'utf8'));
    const id = (t: string) => tokenizer.added_tokens.find((x: { content: string }) => x.content === t).id;
    const ids = enc.tokenize('lift and drag of a swept wing', { maxLength: 6 });
    assert.equal(ids.length, 6);
    assert.equal(ids.at(-1), id('<|endoftext|>'));
    assert.ok(!ids.includes(id('<|im_end|>')));
    assert.equal(enc.pooling, 'last', 'pooling from 1_Pooling/config.json (pooling_mode_lasttoken)');
    await enc.close();
  });
});

describe('Encoder options', () => {
  it('refuses a quantization it does not have, naming it', async () => {
    await assert.rejects(Encoder.load(TINY_BERT, { quantize: 'int4' as never }), /quantize: "int4" is not supported \(int8 is\)/);
  });

  it('cuts batches of long texts so one attention-score tensor stays within the budget; the embeddings are unchanged', async () => {
    const enc = await Encoder.load(TINY_BERT, { pooling: 'mean' });
    const word = 'the boundary layer of a swept wing';
    const texts = Array.from({ length: 10 }, (_, i) => `${i} ${word.repeat(4 + i)}`);
    const heads = enc.config.numHeads;
    const longest = Math.max(...texts.map((t) => enc.tokenize(t, { maxLength: 64 }).length));
    assert.equal(longest, 64);
    const whole = await enc.encode(texts, { quiet: true, maxLength: 64, batchSize: 10 });
    let before = enc.batchCount;
    await enc.encode(texts, { quiet: true, maxLength: 64, batchSize: 10, attentionBudget: 3 * heads * 64 * 64 });
    assert.equal(enc.batchCount - before, 4, '3 + 3 + 3 + 1 texts of 64 tokens');
    const cut = await enc.encode(texts, { quiet: true, maxLength: 64, batchSize: 10, attentionBudget: 3 * heads * 64 * 64 });
    assert.ok(maxAbsDiff(cut.data, whole.data) < 1e-5);
    before = enc.batchCount;
    await enc.encode(texts, { quiet: true, maxLength: 64, batchSize: 10, attentionBudget: 1 });
    assert.equal(enc.batchCount - before, 10, 'never fewer than one text per batch');
    await enc.close();
  });

  it('encodes a repeated text once, giving its copies the identical row', async () => {
    const enc = await Encoder.load(TINY_BERT, { pooling: 'mean' });
    const texts = ['lift', inputs.sentences[12], 'lift', 'drag', inputs.sentences[12]];
    const before = enc.encodedCount;
    const e = await enc.encode(texts, { quiet: true, batchSize: 2 });
    assert.equal(enc.encodedCount - before, 3);
    const row = (i: number) => Array.from(e.data.subarray(i * e.dim, (i + 1) * e.dim));
    assert.deepEqual(row(2), row(0));
    assert.deepEqual(row(4), row(1));
    const alone = await enc.encode(['drag'], { quiet: true });
    assert.ok(maxAbsDiff(alone.data, e.data.subarray(3 * e.dim, 4 * e.dim)) < 1e-5);
    await enc.close();
  });

  it('gives the same embedding for a text alone and in a padded batch', async () => {
    const enc = await Encoder.load(TINY_BERT, { pooling: 'mean' });
    const alone = await enc.encode(['lift']);
    const batched = await enc.encode(['lift', inputs.sentences[12]]);
    assert.ok(maxAbsDiff(alone.data, batched.data.subarray(0, enc.dim)) < 1e-5);
    await enc.close();
  });

  it('truncates to a prefix of the dimensions and re-normalises', async () => {
    const full = await Encoder.load(TINY_XLMR, { pooling: 'cls', normalize: false });
    const cut = await Encoder.load(TINY_XLMR, { pooling: 'cls', dimensions: 16 });
    const a = await full.encode(['wing flutter']);
    const b = await cut.encode(['wing flutter']);
    assert.equal(b.dim, 16);
    const prefix = a.data.subarray(0, 16);
    const norm = Math.hypot(...prefix);
    assert.ok(maxAbsDiff(b.data, prefix.map((x) => x / norm)) < 1e-5);
    await full.close();
    await cut.close();
  });

  it('applies a template before tokenizing', async () => {
    const enc = await Encoder.load(TINY_BERT);
    assert.deepEqual(enc.tokenize('wing', { template: 'query: {text}' }), enc.tokenize('query: wing'));
    const a = await enc.encode(['wing'], { template: 'query: {text}' });
    const b = await enc.encode(['query: wing']);
    assert.deepEqual(a.data, b.data);
    await enc.close();
  });

  it('rejects a bad pooling and bad dimensions with a clear message', async () => {
    await assert.rejects(Encoder.load(TINY_BERT, { pooling: 'median' as never }), /pooling must be one of cls, mean, last, max, mean_sqrt_len_tokens, weightedmean/);
    await assert.rejects(Encoder.load(TINY_BERT, { dimensions: 999 }), /dimensions must be an integer in 1\.\.32/);
  });
});

describe('embedding cache', () => {
  it('refuses an encoder over in-memory weights, which the model folder does not identify', async () => {
    const { readConfig } = await import('../src/models/config.js');
    const { loadTokenizer } = await import('../src/models/tokenizer.js');
    const { loadWeights } = await import('../src/models/weights.js');
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const trained = await Encoder.fromWeights(TINY_BERT, readConfig(TINY_BERT), loadTokenizer(TINY_BERT), loadWeights(TINY_BERT), { threads: 1 });
    await assert.rejects(trained.encode(['lift'], { cacheDir: mkdtempSync(join(tmpdir(), 'cache-')), quiet: true }), /embedding cache: this encoder holds weights in memory/);
    await trained.close();
  });

  it('a torn last record is cut off before appending, so later records stay aligned; an unusable cache dir is named', async () => {
    const { mkdtempSync, readdirSync, statSync, truncateSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const cacheDir = mkdtempSync(join(tmpdir(), 'cache-'));
    const enc = await Encoder.load(TINY_BERT, { threads: 1 });
    const texts = ['lift', 'drag', 'wing flutter'];
    const plain = await enc.encode(texts, { quiet: true });
    await enc.encode(texts.slice(0, 2), { cacheDir, quiet: true });
    const file = join(cacheDir, readdirSync(cacheDir)[0]!);
    const record = statSync(file).size / 2;
    truncateSync(file, statSync(file).size - 7); // a crash mid-append
    const again = await enc.encode(texts, { cacheDir, quiet: true });
    assert.ok(maxAbsDiff(again.data, plain.data) < 1e-6);
    assert.equal(statSync(file).size, 3 * record);
    const third = await enc.encode(texts, { cacheDir, quiet: true }); // read back from the cache
    assert.ok(maxAbsDiff(third.data, plain.data) < 1e-6);
    const notDir = join(cacheDir, 'a-file');
    writeFileSync(notDir, '');
    await assert.rejects(enc.encode(texts, { cacheDir: notDir, quiet: true }), (e: Error) => e.message.includes(notDir));
    await enc.close();
  });

  it('damaged entries are not served (bytes overwritten, NaN written); a weight edited in place misses the cache', async () => {
    const { cpSync, mkdtempSync, openSync, readdirSync, statSync, utimesSync, writeSync, closeSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { EmbeddingCache } = await import('../src/models/cache.js');
    const cacheDir = mkdtempSync(join(tmpdir(), 'cache-'));
    const model = join(mkdtempSync(join(tmpdir(), 'model-')), 'm');
    cpSync(TINY_BERT, model, { recursive: true });
    const texts = ['lift', 'drag', 'wing flutter'];
    let enc = await Encoder.load(model, { threads: 1 });
    const plain = await enc.encode(texts, { quiet: true });
    await enc.encode(texts, { cacheDir, quiet: true });
    const file = join(cacheDir, readdirSync(cacheDir)[0]!);
    const record = statSync(file).size / 3;
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.from(new Float32Array([NaN, 7]).buffer), 0, 8, 30); // inside the first vector
    writeSync(fd, Buffer.from('garbage!'), 0, 8, record + 40); // inside the second
    closeSync(fd);
    const count = enc.encodedCount;
    const again = await enc.encode(texts, { cacheDir, quiet: true });
    assert.ok(again.data.every(Number.isFinite), 'no NaN served');
    assert.ok(maxAbsDiff(again.data, plain.data) < 1e-6);
    assert.equal(enc.encodedCount - count, 2, 'the two damaged entries are encoded again');
    await enc.close();

    // An in-place edit of the weights (mtime restored, as some tools do) changes the fingerprint.
    const before = EmbeddingCache.modelFingerprint(model);
    const weights = join(model, 'model.safetensors');
    const { mtime, atime, size } = statSync(weights);
    const w = openSync(weights, 'r+');
    writeSync(w, Buffer.from(new Float32Array([0.5]).buffer), 0, 4, size - 4);
    closeSync(w);
    utimesSync(weights, atime, mtime);
    assert.notEqual(EmbeddingCache.modelFingerprint(model), before);
    enc = await Encoder.load(model, { threads: 1 });
    await enc.encode(texts, { cacheDir, quiet: true });
    assert.equal(enc.encodedCount, 3, 'nothing served from the old weights\' entries');
    await enc.close();
  });
});
