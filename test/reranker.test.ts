import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CrossEncoder, RerankerThread } from '../src/models/cross-encoder.js';
import { CRANFIELD, FIXTURES, TINY_BERT, tempDir } from './helpers.js';

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
        const scores = await model.score(ref.pairs, { maxLength: Number(maxLength), batchSize: 5, truncation: 'only_second' });
        let compared = 0;
        rows.forEach((r, i) => {
          const [a, b] = ref.pairs[i]!;
          const mine = model.tokenizer.encodePair(a, b, Number(maxLength), 'only_second');
          assert.ok(mine.ids.length <= Number(maxLength));
          if (!r) return; // the Rust library refuses this pair at this length; we cut both halves
          assert.deepEqual(mine.ids, r.ids, `${name} ${maxLength} pair ${i} ids`);
          assert.deepEqual(mine.typeIds, r.type_ids, `${name} ${maxLength} pair ${i} type ids`);
          assert.ok(Math.abs(scores[i]! - r.logit) <= 1e-4, `${name} ${maxLength} pair ${i}: ${scores[i]} vs ${r.logit}`);
          compared++;
        });
        assert.ok(compared >= 8, `${name} ${maxLength}: ${compared} pairs compared`);
      }
      // In a worker thread (as the jobs run it): the same scores bit for bit, progress reported back.
      const thread = await RerankerThread.load(join(FIXTURES, 'models', name), { threads: 1 });
      let ticked = 0;
      assert.deepEqual(await thread.score(ref.pairs, { batchSize: 5, onTick: (n) => (ticked += n) }), await model.score(ref.pairs, { batchSize: 5 }));
      assert.equal(ticked, ref.pairs.length);
      await thread.close();
      const sig = await model.score(ref.pairs.slice(0, 3), { sigmoid: true });
      const raw = await model.score(ref.pairs.slice(0, 3), {});
      raw.forEach((x, i) => assert.ok(Math.abs(sig[i]! - 1 / (1 + Math.exp(-x))) < 1e-7));
      await model.close();
    });
  }
});

// Reference: scripts/torch_pair_truncation.py (transformers 5's tokenizer as CrossEncoder calls it,
// and FlagEmbedding's query-¾ rule), float64 logits.
const cuts = JSON.parse(readFileSync(join(FIXTURES, 'reference', 'pair-truncation.json'), 'utf8')) as {
  pairs: [string, string][];
  models: Record<string, Record<'longest_first' | 'flag', Record<string, { ids: number[]; type_ids: number[]; logit: number }[]>>>;
};

describe('pairs too long for the reranker are cut as its library cuts them', () => {
  for (const name of Object.keys(cuts.models)) {
    it(`${name}: longest_first (CrossEncoder, the default) and flag (FlagEmbedding), odd and even lengths`, async () => {
      const model = await CrossEncoder.load(join(FIXTURES, 'models', name), { threads: 1 });
      for (const rule of ['longest_first', 'flag'] as const) {
        for (const [maxLength, rows] of Object.entries(cuts.models[name]![rule])) {
          const truncation = rule === 'longest_first' ? undefined : rule;
          const scores = await model.score(cuts.pairs, { maxLength: Number(maxLength), batchSize: 3, truncation });
          rows.forEach((r, i) => {
            const [a, b] = cuts.pairs[i]!;
            const mine = model.tokenizer.encodePair(a, b, Number(maxLength), truncation);
            assert.deepEqual(mine.ids, r.ids, `${rule} ${maxLength} pair ${i} ids`);
            assert.deepEqual(mine.typeIds, r.type_ids, `${rule} ${maxLength} pair ${i} type ids`);
            assert.ok(Math.abs(scores[i]! - r.logit) <= 1e-4, `${rule} ${maxLength} pair ${i}: ${scores[i]} vs ${r.logit}`);
          });
        }
      }
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
    await assert.rejects(RerankerThread.load(dir), /has 2 labels; say which logit is the score/, 'the worker\'s error, as is');
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
      const want = await reranker.score([...w.pos, ...w.neg].map((p: string) => [rows[i]!.query, p] as [string, string]), {});
      assert.deepEqual(Object.keys(w), [...Object.keys(rows[i]!), 'pos_scores', 'neg_scores'], 'fields kept, scores added');
      [...w.pos_scores, ...w.neg_scores].forEach((s: number, j: number) => assert.ok(Math.abs(s - want[j]!) < 1e-6));
    }
    await score({ reranker, input, output: join(dir, 'again.jsonl'), cacheDir: join(dir, 'cache'), quiet: true });
    assert.equal(reranker.scoredCount, 5 + 7, 'the second run scored nothing (the checks above ran 3 + 2 + 2 pairs)');
    assert.deepEqual(readFileSync(join(dir, 'again.jsonl')), readFileSync(out));
    await reranker.close();
  });
});

describe('mine --reranker', () => {
  // One positive per query (the best-graded judgement), as users' pairs usually come: the other
  // judged-relevant documents are unlabelled, the false negatives mining picks up.
  const setup = async () => {
    const { loadBeir } = await import('../src/data/beir.js');
    const set = await loadBeir(CRANFIELD);
    const text = new Map(set.corpus.map((d) => [d.id, d.text]));
    const dir = tempDir();
    const input = join(dir, 'pairs.jsonl');
    const relevant = new Map<string, Set<string>>();
    const lines: string[] = [];
    for (const [q, rel] of set.qrels) {
      const judged = [...rel].filter(([, g]) => g > 0).sort((a, b) => b[1] - a[1]);
      if (judged.length < 2) continue;
      relevant.set(set.queries.get(q)!, new Set(judged.map(([d]) => text.get(d)!)));
      lines.push(JSON.stringify({ query: set.queries.get(q), pos_passage: [text.get(judged[0]![0])] }));
    }
    writeFileSync(input, lines.join('\n') + '\n');
    const falseNegatives = (path: string) =>
      readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).reduce((n, r) => n + r.neg_passage.filter((t: string) => relevant.get(r.query)!.has(t)).length, 0);
    return { dir, input, falseNegatives };
  };
  const base = { model: TINY_BERT, pooling: 'mean' as const, candidatePool: CRANFIELD, rangeMin: 0, rangeMax: 40, numNegatives: 10, sampling: 'top' as const, threads: 1, quiet: true };

  it('with the qrels as an oracle, drops every judged-relevant candidate (and only those)', async () => {
    const { mine } = await import('../src/jobs/mine.js');
    const { dir, input, falseNegatives } = await setup();
    await mine({ ...base, input, output: join(dir, 'plain.jsonl') });
    const before = falseNegatives(join(dir, 'plain.jsonl'));
    assert.ok(before > 0, 'plain mining picks judged-relevant documents as negatives');
    const r = await mine({ ...base, input, output: join(dir, 'oracle.jsonl'), reranker: `qrels:${CRANFIELD}`, outputScores: true });
    assert.equal(falseNegatives(join(dir, 'oracle.jsonl')), 0);
    const stats = JSON.parse(readFileSync(join(dir, 'oracle.stats.json'), 'utf8'));
    assert.ok(stats.reranker.dropped_count >= before, `dropped ${stats.reranker.dropped_count}, ${before} were picked before`);
    assert.deepEqual([stats.reranker.dropped.min, stats.reranker.dropped.max], [1, 1], 'only judged-relevant candidates dropped');
    assert.equal(stats.reranker.kept.max, 0);
    const rows = readFileSync(join(dir, 'oracle.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(rows.every((w) => w.pos_scores.every((s: number) => s === 1) && w.neg_scores.every((s: number) => s === 0) && w.neg_scores.length === w.neg_passage.length));
    assert.equal(r.records, rows.length);
  });

  it('with a cross-encoder: deterministic, margins tighten the guard, bad settings are named', async () => {
    const { mine } = await import('../src/jobs/mine.js');
    const { dir, input } = await setup();
    const reranker = join(FIXTURES, 'models', 'tiny-xlmr-reranker');
    const run = async (name: string, extra: Record<string, unknown> = {}) => {
      await mine({ ...base, input, output: join(dir, `${name}.jsonl`), reranker, outputScores: true, ...extra });
      return JSON.parse(readFileSync(join(dir, `${name}.stats.json`), 'utf8')).reranker;
    };
    const a = await run('a');
    await run('b');
    assert.deepEqual(readFileSync(join(dir, 'a.jsonl')), readFileSync(join(dir, 'b.jsonl')), 'same output twice');
    const tight = await run('tight', { rerankMargin: 0.3 });
    assert.ok(tight.dropped_count > a.dropped_count, `margin 0.3 drops more: ${tight.dropped_count} vs ${a.dropped_count}`);
    assert.ok(tight.kept.max < tight.positives.max);
    // The same pairs get the same numbers from mine --output-scores and from score, written
    // losslessly: each reads back as the float32 the reranker gave.
    const { score } = await import('../src/jobs/score.js');
    await score({ reranker, input: join(dir, 'a.jsonl'), output: join(dir, 'a-scored.jsonl'), threads: 1, quiet: true });
    const mined = readFileSync(join(dir, 'a.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const scored = readFileSync(join(dir, 'a-scored.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const model = await CrossEncoder.load(reranker, { threads: 1 });
    for (const [i, m] of mined.entries()) {
      assert.deepEqual(scored[i].pos_scores, m.pos_scores, `record ${i}: positives`);
      assert.deepEqual(scored[i].neg_scores, m.neg_scores, `record ${i}: negatives`);
      const raw = await model.score(m.pos_passage.map((p: string) => [m.query, p] as [string, string]), {});
      raw.forEach((x, j) => assert.equal(Math.fround(m.pos_scores[j]), x, 'lossless'));
    }
    await model.close();
    await assert.rejects(mine({ ...base, input, output: join(dir, 'x.jsonl'), rerankMargin: 0.1 }), /rerankMargin needs a reranker/);
    await assert.rejects(mine({ ...base, input, output: join(dir, 'x.jsonl'), reranker: TINY_BERT }), /tiny-bert\/config\.json: not a sequence-classification model/);
  });
});

describe('mine output formats (sentence-transformers rows)', () => {
  it('triplet, n-tuple, labeled-pair, labeled-list from one record, with and without scores', async () => {
    const { formatRows } = await import('../src/jobs/mine-formats.js');
    const r = { query: 'q', positives: ['p1', 'p2'], negatives: ['n1', 'n2'] };
    assert.deepEqual(formatRows('triplet', r, 2), [
      { query: 'q', positive: 'p1', negative: 'n1' },
      { query: 'q', positive: 'p1', negative: 'n2' },
      { query: 'q', positive: 'p2', negative: 'n1' },
      { query: 'q', positive: 'p2', negative: 'n2' },
    ]);
    assert.deepEqual(formatRows('n-tuple', r, 2), [
      { query: 'q', positive: 'p1', negative_1: 'n1', negative_2: 'n2' },
      { query: 'q', positive: 'p2', negative_1: 'n1', negative_2: 'n2' },
    ]);
    assert.deepEqual(formatRows('n-tuple', r, 3), [], 'n-tuple keeps only rows with every negative');
    assert.deepEqual(formatRows('labeled-pair', r, 2).map((x) => [x.positive, x.label]), [['p1', 1], ['p2', 1], ['n1', 0], ['n2', 0]]);
    assert.deepEqual(formatRows('labeled-list', r, 2)[0], { query: 'q', positive: ['p1', 'n1', 'n2'], labels: [1, 0, 0] });
    const scores = { pos: [0.9, 0.8], neg: [0.3, 0.2] };
    assert.deepEqual(formatRows('triplet', { ...r, scores }, 2)[3], { query: 'q', positive: 'p2', negative: 'n2', scores: [0.8, 0.2] });
    assert.deepEqual(formatRows('n-tuple', { ...r, scores }, 2)[0]!.scores, [0.9, 0.3, 0.2]);
    assert.deepEqual(formatRows('labeled-pair', { ...r, scores }, 2).map((x) => x.score), [0.9, 0.8, 0.3, 0.2]);
    assert.deepEqual(formatRows('labeled-list', { ...r, scores }, 2)[1]!.scores, [0.8, 0.3, 0.2]);
  });

  it('mine writes them, one record expanding to its rows', async () => {
    const { mine } = await import('../src/jobs/mine.js');
    const dir = tempDir();
    const input = join(dir, 'in.jsonl');
    writeFileSync(input, ['lift', 'drag', 'flutter', 'wing', 'boundary layer', 'shock wave'].map((q, i) => JSON.stringify({ query: `what is ${q}`, pos_passage: [`${q} is studied in aerodynamics ${i}`] })).join('\n') + '\n');
    const o = { model: TINY_BERT, input, rangeMin: 0, rangeMax: 5, numNegatives: 2, sampling: 'top' as const, threads: 1, quiet: true };
    await mine({ ...o, output: join(dir, 'seed.jsonl') });
    await mine({ ...o, output: join(dir, 'tri.jsonl'), outputFormat: 'triplet' });
    const seed = readFileSync(join(dir, 'seed.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const tri = readFileSync(join(dir, 'tri.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(tri, seed.flatMap((s) => s.neg_passage.map((n: string) => ({ query: s.query, positive: s.pos_passage[0], negative: n }))));
    await assert.rejects(mine({ ...o, output: join(dir, 'x.jsonl'), outputFormat: 'pairs' as never }), /outputFormat must be one of seed, triplet, n-tuple, labeled-pair, labeled-list, got "pairs"/);
  });
});

describe('the reranker path end to end', () => {
  it('mine --reranker → score → train with distillation runs and gives identical weights twice', async () => {
    const { mine } = await import('../src/jobs/mine.js');
    const { score } = await import('../src/jobs/score.js');
    const { train } = await import('../src/jobs/train.js');
    const { resolveConfig } = await import('../src/training/config.js');
    const reranker = join(FIXTURES, 'models', 'tiny-xlmr-reranker');
    const dir = tempDir();
    const input = join(dir, 'in.jsonl');
    const { beirToRecords } = await import('../src/jobs/convert.js');
    await beirToRecords({ beir: CRANFIELD, output: input, quiet: true });
    const weights: Buffer[] = [];
    for (const run of ['a', 'b']) {
      const d = join(dir, run);
      mkdirSync(d);
      await mine({ model: TINY_BERT, pooling: 'mean', input, output: join(d, 'mined.jsonl'), candidatePool: CRANFIELD, rangeMin: 0, rangeMax: 20, numNegatives: 3, reranker, rerankMargin: -0.5, threads: 1, quiet: true });
      await score({ reranker, input: join(d, 'mined.jsonl'), output: join(d, 'scored.jsonl'), threads: 1, quiet: true });
      const { config } = resolveConfig({ model_name_or_path: TINY_BERT, train_data: join(d, 'scored.jsonl'), output_dir: join(d, 'model'), per_device_train_batch_size: 8, max_steps: 3, group_size: 3, max_query_len: 16, max_passage_len: 32, pooling: 'mean', threads: 1, knowledge_distillation: true, learning_rate: 1e-3 });
      const r = await train(config, { quiet: true });
      assert.ok(Number.isFinite(r.finalLoss));
      weights.push(readFileSync(join(d, 'model', 'model.safetensors')));
    }
    assert.deepEqual(weights[0], weights[1]);
  });
});
