import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, after, describe, it } from 'node:test';
import { clean } from '../src/jobs/clean.js';
import { beirToRecords } from '../src/jobs/convert.js';
import { evaluate, specRetrievalSet } from '../src/jobs/evaluate.js';
import { mine } from '../src/jobs/mine.js';
import { Encoder } from '../src/models/encoder.js';
import { meanMetrics } from '../src/evaluation/metrics.js';
import { CRANFIELD, TINY_BERT, TINY_XLMR, tempDir } from './helpers.js';

const readJsonl = (p: string) => readFileSync(p, 'utf8').trim().split('\n').map((l) => JSON.parse(l));

let bertEnc: Encoder;
let dir: string;
let records: string; // spec-shaped Cranfield records

before(async () => {
  bertEnc = await Encoder.load(TINY_BERT, { pooling: 'mean' });
  dir = tempDir();
  records = join(dir, 'cranfield.jsonl');
  await beirToRecords({ beir: CRANFIELD, output: records, quiet: true });
});
after(async () => bertEnc.close());

async function embed(texts: string[], e: Encoder = bertEnc) {
  const r = await e.encode(texts, { quiet: true });
  return (i: number, j: number) => {
    let s = 0;
    for (let k = 0; k < r.dim; k++) s += r.data[i * r.dim + k]! * r.data[j * r.dim + k]!;
    return s;
  };
}

describe('clean', () => {
  it('drops queries at or above the threshold against kept ones, in input order, copying kept lines unchanged', async () => {
    const lines = readFileSync(records, 'utf8').trim().split('\n').slice(0, 30);
    // Plant exact duplicates (with different positives and an extra field) after their originals.
    const dup = (i: number) => JSON.stringify({ ...JSON.parse(lines[i]!), pos_passage: ['other'], note: i });
    const input = [...lines.slice(0, 10), dup(2), ...lines.slice(10), dup(12)];
    const inPath = join(dir, 'clean-in.jsonl');
    writeFileSync(inPath, input.join('\n') + '\n');
    const out = join(dir, 'clean-out.jsonl');
    const threshold = 0.93;
    const r = await clean({ model: bertEnc, input: inPath, output: out, threshold, quiet: true });

    const queries = input.map((l) => JSON.parse(l).query as string);
    const sim = await embed(queries);
    const kept: number[] = [];
    for (let i = 0; i < queries.length; i++) if (!kept.some((j) => sim(i, j) >= threshold)) kept.push(i);
    assert.deepEqual(readFileSync(out, 'utf8').trim().split('\n'), kept.map((i) => input[i]));
    assert.equal(r.kept, kept.length);
    assert.equal(r.dropped, queries.length - kept.length);
    assert.ok(r.dropped >= 2 && r.kept >= 5, `kept ${r.kept}, dropped ${r.dropped}`);

    const report = readJsonl(r.report);
    assert.equal(report.length, r.dropped);
    const planted = report.find((x) => x.line === 11);
    assert.equal(planted.matched_line, 3);
    assert.equal(planted.query, planted.matched_query);
    assert.ok(Math.abs(planted.score - 1) < 1e-5);
    for (const x of report) assert.ok(x.score >= threshold);
  });

  it('keeps a UTF-8 BOM and CRLF line endings byte-identical', async () => {
    const lines = readFileSync(records, 'utf8').trim().split('\n').slice(0, 8);
    const dup = JSON.stringify({ ...JSON.parse(lines[1]!), note: 'duplicate' });
    const inPath = join(dir, 'clean-crlf.jsonl');
    writeFileSync(inPath, '\ufeff' + [...lines.slice(0, 4), dup, ...lines.slice(4)].join('\r\n') + '\r\n');
    const out = join(dir, 'clean-crlf-out.jsonl');
    const r = await clean({ model: bertEnc, input: inPath, output: out, threshold: 0.99, quiet: true });
    assert.equal(r.dropped, 1);
    assert.deepEqual(readFileSync(out), Buffer.from('\ufeff' + lines.join('\r\n') + '\r\n'));
  });

  it('refuses to overwrite its input', async () => {
    await assert.rejects(clean({ model: bertEnc, input: records, output: records, quiet: true }), /it is an input file/);
  });
});

describe('mine', () => {
  it('picks ranked non-positives inside the window, under the margin, merging duplicate queries', async () => {
    const src = readJsonl(records).slice(0, 25);
    // A duplicate query with a different positive: neither record may get the other's positive.
    src.push({ query: src[0].query, pos_passage: [src[1].pos_passage[0]], neg_passage: ['kept?'], extra: 'x' });
    const inPath = join(dir, 'mine-in.jsonl');
    writeFileSync(inPath, src.map((x) => JSON.stringify(x)).join('\n') + '\n');
    const out = join(dir, 'mine-out.jsonl');
    const o = { model: bertEnc, input: inPath, output: out, rangeMin: 3, rangeMax: 40, numNegatives: 6, absoluteMargin: 0.01, sampling: 'random' as const, seed: 7, quiet: true };
    const r = await mine(o);
    const got = readJsonl(out);
    assert.equal(got.length, src.length);
    assert.equal(got[25].extra, 'x');

    // Independent check: rank the pool by brute force.
    const pool = [...new Set(src.flatMap((x) => [...x.pos_passage, ...x.neg_passage]))];
    assert.equal(r.poolSize, pool.length);
    const qs = [...new Set(src.map((x) => x.query as string))];
    const e = await bertEnc.encode([...qs, ...pool], { quiet: true });
    const score = (qi: number, pi: number) => {
      let s = 0;
      for (let k = 0; k < e.dim; k++) s += e.data[qi * e.dim + k]! * e.data[(qs.length + pi) * e.dim + k]!;
      return s;
    };
    src.forEach((rec, ri) => {
      const qi = qs.indexOf(rec.query);
      const positives = new Set(src.filter((x) => x.query === rec.query).flatMap((x) => x.pos_passage as string[]));
      // The search depth, as sentence-transformers': range_max plus the most positives of any query.
      const maxPositives = Math.max(...qs.map((q) => new Set(src.filter((x) => x.query === q).flatMap((x) => x.pos_passage as string[])).size));
      const ranked = pool.map((t, pi) => ({ t, s: score(qi, pi) })).sort((a, b) => b.s - a.s).slice(0, 40 + maxPositives).filter((c) => !positives.has(c.t) && c.t !== rec.query);
      const posScore = Math.min(...[...positives].map((t) => score(qi, pool.indexOf(t))));
      // sentence-transformers' order: the margin first, then ranks 3..39 of what passes it.
      const window = ranked.filter((c) => c.s <= posScore - 0.01).slice(3, 40).map((c) => c.t);
      const negs = got[ri].neg_passage as string[];
      assert.equal(negs.length, Math.min(6, window.length));
      for (const n of negs) {
        assert.ok(!positives.has(n), 'never a positive');
        assert.ok(window.includes(n), `negative outside the window/margin: ${n.slice(0, 40)}`);
      }
    });
    assert.deepEqual(got[0].neg_passage, got[25].neg_passage, 'duplicate queries share their mined negatives');

    // A narrow window, taken whole: exactly sentence-transformers' candidates, none from deeper.
    const narrow = join(dir, 'mine-narrow.jsonl');
    await mine({ ...o, output: narrow, rangeMin: 0, rangeMax: 3, numNegatives: 50, sampling: 'top' });
    const maxPositives = Math.max(...qs.map((q) => new Set(src.filter((x) => x.query === q).flatMap((x) => x.pos_passage as string[])).size));
    readJsonl(narrow).forEach((rec, ri) => {
      const qi = qs.indexOf(src[ri].query);
      const positives = new Set(src.filter((x) => x.query === src[ri].query).flatMap((x) => x.pos_passage as string[]));
      const posScore = Math.min(...[...positives].map((t) => score(qi, pool.indexOf(t))));
      const ranked = pool.map((t, pi) => ({ t, s: score(qi, pi) })).sort((a, b) => b.s - a.s).slice(0, 3 + maxPositives);
      const window = ranked.filter((c) => !positives.has(c.t) && c.t !== src[ri].query && c.s <= posScore - 0.01).slice(0, 3).map((c) => c.t);
      assert.deepEqual(new Set(rec.neg_passage as string[]), new Set(window), `record ${ri}`);
    });
    const stats = JSON.parse(readFileSync(r.statsPath, 'utf8'));
    assert.equal(stats.negatives.count, got.reduce((a, x) => a + x.neg_passage.length, 0));
    assert.ok(stats.positives.mean > stats.negatives.mean - 1);

    // Same seed → same output; `top` → the best-ranked window entries.
    const again = join(dir, 'mine-again.jsonl');
    await mine({ ...o, output: again });
    assert.equal(readFileSync(again, 'utf8'), readFileSync(out, 'utf8'));
    await mine({ ...o, output: again, sampling: 'top' });
    const top = readJsonl(again);
    assert.notDeepEqual(top.map((x) => x.neg_passage), got.map((x) => x.neg_passage));

    // --index hnsw: on a pool this small the graph search finds every row, so the same output.
    const approx = join(dir, 'mine-hnsw.jsonl');
    await mine({ ...o, output: approx, index: 'hnsw' });
    assert.equal(readFileSync(approx, 'utf8'), readFileSync(out, 'utf8'));
    assert.deepEqual(JSON.parse(readFileSync(approx.replace(/\.jsonl$/, '.stats.json'), 'utf8')).index, { kind: 'hnsw', sampled_recall: 1, sampled_queries: 25 });
    await assert.rejects(mine({ ...o, output: approx, index: 'annoy' as 'hnsw' }), /index must be exact or hnsw, got "annoy"/);
  });

  it('keeps the BGE shape, appends with --keep-existing, reports short records, and caches embeddings', async () => {
    const src = [
      { query: 'wing flutter at high speed', pos: ['flutter of wings'], neg: ['old negative'] },
      { query: 'boundary layer transition', pos: ['transition in boundary layers'], neg: [] },
      { query: 'heat transfer in slabs', pos: ['heat conduction in composite slabs'] },
    ];
    const inPath = join(dir, 'bge.jsonl');
    writeFileSync(inPath, src.map((x) => JSON.stringify(x)).join('\n') + '\n');
    const out = join(dir, 'bge-out.jsonl');
    const cacheDir = join(dir, 'cache');
    const o = { model: bertEnc, input: inPath, output: out, rangeMin: 0, rangeMax: 10, numNegatives: 4, keepExisting: true, cacheDir, quiet: true };
    const r = await mine(o);
    const got = readJsonl(out);
    assert.ok(got.every((x) => 'neg' in x && !('neg_passage' in x)));
    assert.equal(got[0].neg[0], 'old negative');
    assert.equal(r.short, 3, 'a 4-text pool minus positives cannot give 4 negatives to any query');
    const before = bertEnc.encodedCount;
    await mine({ ...o, output: join(dir, 'bge-out2.jsonl') });
    assert.equal(bertEnc.encodedCount, before, 'the second run re-encodes nothing');
    assert.equal(readFileSync(join(dir, 'bge-out2.jsonl'), 'utf8'), readFileSync(out, 'utf8'));
  });
});

describe('evaluate', () => {
  it('spec mode: corpus = positives + negatives, identical texts once, metrics from an independent ranking', async () => {
    const src = readJsonl(records).slice(0, 12);
    const qp = join(dir, 'dev.jsonl');
    writeFileSync(qp, src.map((x) => JSON.stringify({ query: x.query, pos_passage: x.pos_passage })).join('\n') + '\n');
    const negTexts = readJsonl(records).slice(30, 45).map((x) => x.pos_passage[0]);
    const negPath = join(dir, 'dev_neg.jsonl');
    // The first negative repeats a positive: it must stay one document.
    writeFileSync(negPath, [{ neg_passage: [src[0].pos_passage[0], ...negTexts.slice(0, 5)] }, { neg_passage: negTexts.slice(5) }].map((x) => JSON.stringify(x)).join('\n') + '\n');
    const r = await evaluate({ model: TINY_XLMR, data: qp, negatives: negPath, ks: [1, 5, 10], quiet: true, output: join(dir, 'ev.json') });
    const set = await specRetrievalSet(qp, negPath);
    const unique = new Set([...src.flatMap((x) => x.pos_passage), ...negTexts]);
    assert.equal(r.corpusSize, unique.size);
    assert.equal(r.queries, 12);

    const enc = await Encoder.load(TINY_XLMR);
    const qids = [...set.queries.keys()];
    const e = await enc.encode([...qids.map((q) => set.queries.get(q)!), ...set.corpus.map((d) => d.text)], { quiet: true });
    await enc.close();
    const rankings = new Map<string, string[]>();
    qids.forEach((q, i) => {
      const s = set.corpus.map((d, j) => {
        let x = 0;
        for (let k = 0; k < e.dim; k++) x += e.data[i * e.dim + k]! * e.data[(qids.length + j) * e.dim + k]!;
        return { id: d.id, x, j };
      });
      s.sort((a, b) => b.x - a.x || a.j - b.j);
      rankings.set(q, s.map((z) => z.id));
    });
    const expected = meanMetrics(rankings, set.qrels, [1, 5, 10]).metrics;
    for (const [k, v] of Object.entries(expected)) assert.ok(Math.abs(r.metrics[k]! - v) < 1e-9, `${k}: ${r.metrics[k]} vs ${v}`);
    assert.equal(JSON.parse(readFileSync(join(dir, 'ev.json'), 'utf8')).metrics['ndcg@10'], r.metrics['ndcg@10']);
  });

  it('BEIR mode: a hand-computed case with graded qrels', async () => {
    // Each query is the text of one document, so that document ranks first whatever the model;
    // the documents ranked after it have equal grades, so every metric is fixed by hand.
    const beir = join(tempDir(), 'beir');
    mkdirSync(join(beir, 'qrels'), { recursive: true });
    const docs = ['the flow over a swept wing at high speed', 'heat transfer in hypersonic boundary layers', 'buckling of thin cylindrical shells under pressure'];
    writeFileSync(join(beir, 'corpus.jsonl'), docs.map((text, i) => JSON.stringify({ _id: `d${i + 1}`, title: '', text })).join('\n') + '\n');
    writeFileSync(join(beir, 'queries.jsonl'), docs.map((text, i) => JSON.stringify({ _id: `q${i + 1}`, text })).join('\n') + '\n');
    const qrels = [['q1', 'd1', 2], ['q2', 'd1', 1], ['q2', 'd3', 1], ['q3', 'd3', 1], ['q3', 'd1', 2], ['q3', 'd2', 2]];
    writeFileSync(join(beir, 'qrels', 'test.tsv'), 'query-id\tcorpus-id\tscore\n' + qrels.map((r) => r.join('\t')).join('\n') + '\n');
    const r = await evaluate({ model: bertEnc, data: beir, ks: [1, 3], quiet: true });
    // q1 ranks [d1, ·, ·] with d1 graded 2: every metric 1.
    // q2 ranks [d2, d1|d3, d3|d1]: first hit at 2; DCG@3 = 1/log2 3 + 1/log2 4, ideal 1 + 1/log2 3; AP@3 = (1/2 + 2/3) / 2.
    // q3 ranks [d3 (1), d1|d2 (2), d2|d1 (2)]: NDCG@1 = 1/2; DCG@3 = 1 + 2/log2 3 + 2/2, ideal 2 + 2/log2 3 + 1/2.
    const l3 = Math.log2(3);
    const expected: Record<string, number> = {
      'hit@1': 2 / 3, 'mrr@1': 2 / 3, 'ndcg@1': (1 + 0 + 0.5) / 3, 'recall@1': (1 + 0 + 1 / 3) / 3, 'precision@1': 2 / 3, 'map@1': 2 / 3,
      'hit@3': 1, 'mrr@3': (1 + 0.5 + 1) / 3, 'recall@3': 1, 'precision@3': (1 / 3 + 2 / 3 + 1) / 3, 'map@3': (1 + (1 / 2 + 2 / 3) / 2 + 1) / 3,
      'ndcg@3': (1 + (1 / l3 + 1 / 2) / (1 + 1 / l3) + (1 + 2 / l3 + 1) / (2 + 2 / l3 + 1 / 2)) / 3,
    };
    for (const [k, v] of Object.entries(expected)) assert.ok(Math.abs(r.metrics[k]! - v) < 1e-12, `${k}: ${r.metrics[k]} vs ${v}`);
  });

  it('--skip-invalid counts and reports bad records and bad negatives lines', async () => {
    const src = readJsonl(records).slice(0, 6);
    const qp = join(dir, 'dev-bad.jsonl');
    writeFileSync(qp, [...src.map((x) => JSON.stringify({ query: x.query, pos_passage: x.pos_passage })), '{"query": "no positives"}', 'not json'].join('\n') + '\n');
    const negPath = join(dir, 'neg-bad.jsonl');
    writeFileSync(negPath, [JSON.stringify({ neg_passage: ['a negative'] }), JSON.stringify({ neg_passage: [3] }), '{'].join('\n') + '\n');
    await assert.rejects(evaluate({ model: bertEnc, data: qp, quiet: true }), /dev-bad.jsonl:7: field "pos_passage"/);
    await assert.rejects(evaluate({ model: bertEnc, data: join(dir, 'dev.jsonl'), negatives: negPath, quiet: true }), /neg-bad.jsonl:2: field "neg_passage\[0\]"/);
    const out = join(dir, 'ev-skip.json');
    const r = await evaluate({ model: bertEnc, data: qp, negatives: negPath, skipInvalid: true, quiet: true, output: out });
    assert.equal(r.queries, 6);
    assert.equal(r.skipped?.total, 4);
    assert.deepEqual(JSON.parse(readFileSync(out, 'utf8')).skipped, r.skipped);
    assert.equal(Object.values(r.skipped!.reasons).reduce((a, b) => a + b, 0), 4);
  });

  it('BEIR mode with graded qrels', async () => {
    const r = await evaluate({ model: bertEnc, data: CRANFIELD, quiet: true });
    assert.equal(r.queries, 60);
    assert.equal(r.corpusSize, 466);
    assert.deepEqual(r.ks, [1, 3, 5, 10]);
    for (const k of r.ks) assert.ok(r.metrics[`hit@${k}`]! >= r.metrics[`mrr@${k}`]!);
    assert.ok(r.metrics['hit@10']! > 0, 'some relevant document is found');
  });
});

describe('the negatives window (hand-made scores)', () => {
  const ranked = (scores: number[]) => scores.map((score, i) => ({ text: `n${i}`, score }));
  const texts = (w: { text: string }[]) => w.map((c) => c.text);

  it('relative margin: neg ≤ pos − |pos|·m, right also for a negative positive score (sentence-transformers #3821)', async () => {
    const { negativeWindow } = await import('../src/jobs/mine.js');
    // pos −0.472, m 0.1 → threshold −0.5192: −0.451 (more similar than the positive) must go.
    const w = negativeWindow(ranked([-0.451, -0.5, -0.53, -0.6]), -0.472, { rangeMin: 0, rangeMax: 10, relativeMargin: 0.1 });
    assert.deepEqual(texts(w), ['n2', 'n3']);
    // pos 0.8, m 0.1 → threshold 0.72, as before.
    assert.deepEqual(texts(negativeWindow(ranked([0.75, 0.72, 0.7]), 0.8, { rangeMin: 0, rangeMax: 10, relativeMargin: 0.1 })), ['n1', 'n2']);
  });

  it('ranks count the candidates that pass the filters (sentence-transformers), or every candidate with rankBeforeFilters (FlagEmbedding)', async () => {
    const { negativeWindow } = await import('../src/jobs/mine.js');
    // pos 0.8 with absolute margin 0.1 removes n0..n2 (≥ 0.71); survivors n3, n4, …
    const scores = ranked([0.79, 0.75, 0.72, 0.7, 0.69, 0.68, 0.67, 0.66, 0.65]);
    const o = { rangeMin: 2, rangeMax: 5, absoluteMargin: 0.1 };
    // Survivors ranked 0.. are n3, n4, n5, n6, n7: ranks 2..4 → n5, n6, n7.
    assert.deepEqual(texts(negativeWindow(scores, 0.8, o)), ['n5', 'n6', 'n7']);
    // FlagEmbedding: ranks 2..4 of all candidates are n2, n3, n4; n2 fails the margin.
    assert.deepEqual(texts(negativeWindow(scores, 0.8, { ...o, rankBeforeFilters: true })), ['n3', 'n4']);
    // Without filters both orders agree.
    assert.deepEqual(texts(negativeWindow(scores, 0.8, { rangeMin: 2, rangeMax: 5 })), texts(negativeWindow(scores, 0.8, { rangeMin: 2, rangeMax: 5, rankBeforeFilters: true })));
  });
});
