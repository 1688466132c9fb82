import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CrossEncoder } from '../src/models/cross-encoder.js';
import { FIXTURES, TINY_BERT, tempDir } from './helpers.js';

// Reference: scripts/torch_reranker_reference.py (transformers' *ForSequenceClassification in
// float64, pairs encoded by the Rust tokenizers library with truncation='only_second').
const ref = JSON.parse(readFileSync(join(FIXTURES, 'reference', 'rerankers.json'), 'utf8')) as {
  pairs: [string, string][];
  models: Record<string, Record<string, ({ ids: number[]; type_ids: number[]; logit: number } | null)[]>>;
};

describe('cross-encoders match PyTorch', () => {
  for (const name of Object.keys(ref.models)) {
    it(`${name}: pair ids, token types and logits (batched, padded) at every max length`, async () => {
      const model = await CrossEncoder.load(join(FIXTURES, 'models', name), { threads: 1 });
      for (const [maxLength, rows] of Object.entries(ref.models[name]!)) {
        const scores = await model.score(ref.pairs, { maxLength: Number(maxLength), batchSize: 5, quiet: true });
        let compared = 0;
        rows.forEach((r, i) => {
          const [a, b] = ref.pairs[i]!;
          const mine = model.tokenizer.encodePair(a, b, Number(maxLength));
          assert.ok(mine.ids.length <= Number(maxLength));
          if (!r) return; // the Rust library refuses this pair at this length; we cut both halves
          assert.deepEqual(mine.ids, r.ids, `${name} ${maxLength} pair ${i} ids`);
          assert.deepEqual(mine.typeIds, r.type_ids, `${name} ${maxLength} pair ${i} type ids`);
          assert.ok(Math.abs(scores[i]! - r.logit) <= 1e-4, `${name} ${maxLength} pair ${i}: ${scores[i]} vs ${r.logit}`);
          compared++;
        });
        assert.ok(compared >= 8, `${name} ${maxLength}: ${compared} pairs compared`);
      }
      const sig = await model.score(ref.pairs.slice(0, 3), { sigmoid: true, quiet: true });
      const raw = await model.score(ref.pairs.slice(0, 3), { quiet: true });
      raw.forEach((x, i) => assert.ok(Math.abs(sig[i]! - 1 / (1 + Math.exp(-x))) < 1e-7));
      await model.close();
    });
  }
});

describe('cross-encoder bad input', () => {
  it('refuses an embedding model, and a multi-label model without a label', async () => {
    await assert.rejects(CrossEncoder.load(TINY_BERT), /tiny-bert\/config\.json: not a sequence-classification model/);
    const dir = join(tempDir(), 'two-labels');
    cpSync(join(FIXTURES, 'models', 'tiny-bert-reranker'), dir, { recursive: true });
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    config.id2label = { 0: 'irrelevant', 1: 'relevant' };
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    await assert.rejects(CrossEncoder.load(dir), /has 2 labels; say which logit is the score/);
    await assert.rejects(CrossEncoder.load(dir, { label: 2 }), /label 2: the model has labels 0\.\.1/);
  });
});

describe('score job', () => {
  it('adds pos_scores / neg_scores per record (the reranker on each pair), cached across runs', async () => {
    const { score } = await import('../src/jobs/score.js');
    const dir = tempDir();
    const input = join(dir, 'in.jsonl');
    const rows = [
      { query: 'what is lift', pos: ['lift is a force'], neg: ['drag of a wing', 'flutter'], id: 7 },
      { query: '机翼', pos: ['一架飞机要起飞了。'], neg: ['drag of a wing'] },
      { query: 'what is lift', pos: ['lift is a force'], neg: ['flutter'] },
    ];
    writeFileSync(input, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const reranker = await CrossEncoder.load(join(FIXTURES, 'models', 'tiny-xlmr-reranker'), { threads: 1 });
    const out = join(dir, 'out.jsonl');
    const r = await score({ reranker, input, output: out, cacheDir: join(dir, 'cache'), quiet: true });
    assert.deepEqual([r.records, r.pairs], [3, 5], 'repeated pairs are scored once');
    assert.equal(reranker.scoredCount, 5);
    const written = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    for (const [i, w] of written.entries()) {
      const want = await reranker.score([...w.pos, ...w.neg].map((p: string) => [rows[i]!.query, p] as [string, string]), { quiet: true });
      assert.deepEqual(Object.keys(w), [...Object.keys(rows[i]!), 'pos_scores', 'neg_scores'], 'fields kept, scores added');
      [...w.pos_scores, ...w.neg_scores].forEach((s: number, j: number) => assert.ok(Math.abs(s - want[j]!) < 1e-6));
    }
    await score({ reranker, input, output: join(dir, 'again.jsonl'), cacheDir: join(dir, 'cache'), quiet: true });
    assert.equal(reranker.scoredCount, 5 + 7, 'the second run scored nothing (the checks above ran 3 + 2 + 2 pairs)');
    assert.deepEqual(readFileSync(join(dir, 'again.jsonl')), readFileSync(out));
    await reranker.close();
  });
});
