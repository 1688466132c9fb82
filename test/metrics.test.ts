import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dcgAtK, meanMetrics, queryMetrics } from '../src/evaluation/metrics.js';

const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} != ${b}`);
const rel = (...ids: string[]) => new Map(ids.map((i) => [i, 1]));

describe('metrics (sentence-transformers InformationRetrievalEvaluator definitions)', () => {
  it('one relevant document at rank 3', () => {
    const m = queryMetrics(['a', 'b', 'x', 'c'], rel('x'), [1, 3, 5]);
    assert.equal(m['hit@1'], 0);
    assert.equal(m['hit@3'], 1);
    close(m['mrr@3']!, 1 / 3);
    assert.equal(m['mrr@1'], 0);
    close(m['ndcg@3']!, 1 / Math.log2(4)); // ideal DCG = 1
    close(m['recall@3']!, 1);
    close(m['precision@3']!, 1 / 3);
    close(m['precision@5']!, 1 / 5);
    close(m['map@3']!, 1 / 3 / 1); // (1/3) / min(3, 1)
  });

  it('several relevant documents', () => {
    // relevant: r1, r2, r3; ranking hits at ranks 1 and 3
    const m = queryMetrics(['r1', 'n1', 'r2', 'n2', 'n3'], rel('r1', 'r2', 'r3'), [3, 5]);
    close(m['mrr@3']!, 1);
    close(m['recall@3']!, 2 / 3);
    close(m['precision@3']!, 2 / 3);
    const dcg = 1 + 1 / Math.log2(4);
    const idcg = 1 + 1 / Math.log2(3) + 1 / Math.log2(4);
    close(m['ndcg@3']!, dcg / idcg);
    close(m['map@3']!, (1 / 1 + 2 / 3) / 3);
    close(m['map@5']!, (1 / 1 + 2 / 3) / 3);
  });

  it('graded relevance uses grades as gains', () => {
    const grades = new Map([
      ['a', 3],
      ['b', 1],
    ]);
    const m = queryMetrics(['b', 'a'], grades, [2]);
    close(m['ndcg@2']!, (1 + 3 / Math.log2(3)) / (3 + 1 / Math.log2(3)));
  });

  it('no relevant document retrieved gives zeros', () => {
    const m = queryMetrics(['a', 'b'], rel('z'), [2]);
    for (const name of ['hit@2', 'mrr@2', 'ndcg@2', 'recall@2', 'precision@2', 'map@2']) assert.equal(m[name], 0);
  });

  it('averages over judged queries only', () => {
    const rankings = new Map([
      ['q1', ['a', 'b']],
      ['q2', ['c', 'd']],
      ['q3', ['e']],
    ]);
    const qrels = new Map([
      ['q1', rel('a')],
      ['q2', rel('d')],
    ]);
    const { metrics, queries } = meanMetrics(rankings, qrels, [1, 2]);
    assert.equal(queries, 2);
    close(metrics['hit@1']!, 0.5);
    close(metrics['mrr@2']!, (1 + 0.5) / 2);
  });

  it('dcg of an empty list is 0', () => assert.equal(dcgAtK([], 5), 0));
});

describe('ranking ties', () => {
  it('equal scores are ordered by id compared as strings, as sentence-transformers orders them', async () => {
    const { tiesById } = await import('../src/jobs/evaluate.js');
    const row = [{ id: '9', score: 0.5 }, { id: '10', score: 0.5 }, { id: '2', score: 0.7 }, { id: '1', score: 0.5 }];
    assert.deepEqual(tiesById(row), ['2', '1', '10', '9']);
  });

  it('ties at the top-k cutoff keep the lowest ids, however far the tie runs past the search depth', async () => {
    const { topIds } = await import('../src/jobs/evaluate.js');
    const { ExactSearch } = await import('../src/search/topk.js');
    // 60 corpus rows: row 0 scores 2, rows 1..59 all score 1 (one duplicated text); ids run
    // backwards so the lowest ids are the last rows — the search's own tie rule (lowest row) and
    // a search depth of depth + 8 would both miss them.
    const n = 60;
    const corpus = new Float32Array(n * 2);
    for (let i = 0; i < n; i++) corpus.set(i === 0 ? [2, 0] : [1, 0], i * 2);
    const ids = Array.from({ length: n }, (_, i) => `c${String(n - i).padStart(3, '0')}`);
    const queries = new Float32Array([1, 0, 0, 1]); // the second query ties on every row (score 0)
    const search = await ExactSearch.create({ threads: 1 });
    try {
      const top = await topIds(search, { data: queries, dim: 2, count: 2 }, { data: corpus, dim: 2, count: n }, ids, 3, {});
      assert.deepEqual(top[0], ['c060', 'c001', 'c002']);
      assert.deepEqual(top[1], ['c001', 'c002', 'c003']);
    } finally {
      await search.close();
    }
  });
});
