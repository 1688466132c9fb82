/** BM25 (src/search/bm25.ts) against bm25s on the same tokens (scripts/bm25_reference.py). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Bm25Index, bm25Tokens } from '../src/search/bm25.js';
import { bm25Sets } from '../scripts/bm25-tokens.js';
import { CRANFIELD, FIXTURES, TINY_BERT } from './helpers.js';

type Ref = Record<'cranfield' | 'zh', { corpus_size: number; queries: { query: string; top: { row: number; score: number }[] }[] }>;
const ref = JSON.parse(readFileSync(join(FIXTURES, 'reference', 'bm25.json'), 'utf8')) as Ref;

describe('BM25', () => {
  for (const name of ['cranfield', 'zh'] as const) {
    it(`${name}: each query's top 10 rows and scores equal bm25s's (Lucene BM25, k1 1.2, b 0.75) within 1e-5`, () => {
      const set = bm25Sets()[name];
      assert.equal(set.corpus.length, ref[name].corpus_size);
      const index = Bm25Index.build(set.corpus);
      ref[name].queries.forEach((q, i) => {
        assert.equal(q.query, set.queries[i]);
        const got = index.search(q.query, 10);
        assert.deepEqual(got.map((r) => r.row), q.top.map((r) => r.row), `query ${i}: rows`);
        got.forEach((r, j) => assert.ok(Math.abs(r.score - q.top[j]!.score) <= 1e-5 * q.top[j]!.score, `query ${i} rank ${j}: ${r.score} vs ${q.top[j]!.score}`));
      });
    });
  }

  it('tokenizes English into lower-cased words and Chinese into words (ICU), dropping punctuation', () => {
    assert.deepEqual(bm25Tokens('Lift of a Swept-Wing?'), ['lift', 'of', 'a', 'swept', 'wing']);
    assert.ok(bm25Tokens('后掠翼的升力是多少').includes('升力'));
  });
});

describe('eval --hybrid bm25', () => {
  it('reports dense (= plain eval), BM25 (= its own ranking) and the two fused by reciprocal rank', async () => {
    const { evaluate, fuseRankings, rank, tiesById } = await import('../src/jobs/evaluate.js');
    const { loadBeir } = await import('../src/data/beir.js');
    const { meanMetrics } = await import('../src/evaluation/metrics.js');
    const common = { model: TINY_BERT, data: CRANFIELD, threads: 1, quiet: true, ks: [1, 10] };
    const r = await evaluate({ ...common, hybrid: 'bm25', candidates: 50 });
    assert.deepEqual(Object.keys(r.modes!), ['dense', 'bm25', 'dense+bm25']);
    const plain = await evaluate(common);
    assert.deepEqual(r.modes!.dense, plain.metrics);
    const set = await loadBeir(CRANFIELD);
    const ids = set.corpus.map((d) => d.id);
    const index = Bm25Index.build(set.corpus.map((d) => d.text));
    const qids = [...set.queries.keys()].filter((q) => set.qrels.has(q));
    const bm25 = new Map(qids.map((q) => [q, tiesById(index.search(set.queries.get(q)!, ids.length).map((x) => ({ id: ids[x.row]!, score: x.score }))).slice(0, 50)]));
    assert.deepEqual(r.modes!.bm25, meanMetrics(bm25, set.qrels, [1, 10]).metrics);
    const dense = await rank({ model: TINY_BERT, threads: 1, quiet: true }, set, 50);
    const fused = new Map(qids.map((q) => [q, fuseRankings([dense.get(q)!, bm25.get(q)!], 50)]));
    assert.deepEqual(r.modes!['dense+bm25'], meanMetrics(fused, set.qrels, [1, 10]).metrics);
    assert.deepEqual(fuseRankings([['a', 'b'], ['b', 'c']], 3), ['b', 'a', 'c']);
    await assert.rejects(evaluate({ ...common, hybrid: 'bm25', modes: ['dense'] }), /--modes \(bge-m3\) or --hybrid bm25, not both/);
  });
});
