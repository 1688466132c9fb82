/** BM25 (src/search/bm25.ts) against bm25s on the same tokens (scripts/bm25_reference.py). */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Bm25Index, bm25Tokens } from '../src/search/bm25.js';
import { bm25Sets } from '../scripts/bm25-tokens.js';
import { CRANFIELD, FIXTURES, ROOT, TINY_BERT, tempDir } from './helpers.js';

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

describe('mine --lexical bm25', () => {
  it("adds each query's BM25 top k (not already in its window) after the ranked window, and counts them in the stats", async () => {
    const { mine } = await import('../src/jobs/mine.js');
    const dir = tempDir();
    const input = join(dir, 'in.jsonl');
    const rows = readFileSync(join(ROOT, 'data', 'contrastive-zh', 'train.jsonl'), 'utf8').trim().split('\n').slice(0, 20).map((l) => JSON.parse(l) as { query: string; pos: string[]; neg: string[] });
    writeFileSync(input, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const common = { model: TINY_BERT, input, rangeMin: 0, rangeMax: 2, numNegatives: 20, sampling: 'top' as const, threads: 1, quiet: true };
    await mine({ ...common, output: join(dir, 'plain.jsonl') });
    const result = await mine({ ...common, output: join(dir, 'lex.jsonl'), lexical: 'bm25:5' });
    const read = (f: string) => readFileSync(join(dir, f), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { query: string; pos: string[]; neg: string[] });
    const [plain, lex] = [read('plain.jsonl'), read('lex.jsonl')];
    const pool = [...new Set(rows.flatMap((r) => [...r.pos, ...r.neg]))];
    const index = Bm25Index.build(pool);
    let added = 0;
    lex.forEach((r, i) => {
      assert.deepEqual(r.neg.slice(0, plain[i]!.neg.length), plain[i]!.neg, 'the ranked window comes first, unchanged');
      const extra = r.neg.slice(plain[i]!.neg.length);
      const bm25Top = index.search(r.query, 5 + r.pos.length + 1).map((x) => pool[x.row]!).filter((t) => t !== r.query && !r.pos.includes(t)).slice(0, 5);
      for (const t of extra) assert.ok(bm25Top.includes(t) && !plain[i]!.neg.includes(t), `query ${i}: ${t} is one of its BM25 top 5 and new`);
      assert.equal(extra.length, bm25Top.filter((t) => !plain[i]!.neg.includes(t)).length, `query ${i}: every new BM25 candidate joins (no filter set)`);
      added += extra.length;
    });
    assert.ok(added > 0);
    const stats = JSON.parse(readFileSync(join(dir, 'lex.stats.json'), 'utf8'));
    assert.equal(stats.lexical.chosen, added);
    assert.equal(stats.lexical.k, 5);
    assert.ok(Math.abs(result.lexicalShare! - stats.lexical.share_of_negatives) < 1e-6 && result.lexicalShare! > 0, 'mine returns the share its stats record');
    await assert.rejects(mine({ ...common, output: join(dir, 'bad.jsonl'), lexical: 'tfidf' }), /lexical must be bm25 or bm25:K/);
  });
});
