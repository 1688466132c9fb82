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
    close(m['mrr@3'], 1 / 3);
    assert.equal(m['mrr@1'], 0);
    close(m['ndcg@3'], 1 / Math.log2(4)); // ideal DCG = 1
    close(m['recall@3'], 1);
    close(m['precision@3'], 1 / 3);
    close(m['precision@5'], 1 / 5);
    close(m['map@3'], 1 / 3 / 1); // (1/3) / min(3, 1)
  });

  it('several relevant documents', () => {
    // relevant: r1, r2, r3; ranking hits at ranks 1 and 3
    const m = queryMetrics(['r1', 'n1', 'r2', 'n2', 'n3'], rel('r1', 'r2', 'r3'), [3, 5]);
    close(m['mrr@3'], 1);
    close(m['recall@3'], 2 / 3);
    close(m['precision@3'], 2 / 3);
    const dcg = 1 + 1 / Math.log2(4);
    const idcg = 1 + 1 / Math.log2(3) + 1 / Math.log2(4);
    close(m['ndcg@3'], dcg / idcg);
    close(m['map@3'], (1 / 1 + 2 / 3) / 3);
    close(m['map@5'], (1 / 1 + 2 / 3) / 3);
  });

  it('graded relevance uses grades as gains', () => {
    const grades = new Map([
      ['a', 3],
      ['b', 1],
    ]);
    const m = queryMetrics(['b', 'a'], grades, [2]);
    close(m['ndcg@2'], (1 + 3 / Math.log2(3)) / (3 + 1 / Math.log2(3)));
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
    close(metrics['hit@1'], 0.5);
    close(metrics['mrr@2'], (1 + 0.5) / 2);
  });

  it('dcg of an empty list is 0', () => assert.equal(dcgAtK([], 5), 0));
});

describe('ranking ties', () => {
  it('equal scores are ordered by id compared as strings, as sentence-transformers orders them', async () => {
    const { tiesById } = await import('../src/jobs/evaluate.js');
    const row = [{ id: '9', score: 0.5 }, { id: '10', score: 0.5 }, { id: '2', score: 0.7 }, { id: '1', score: 0.5 }];
    assert.deepEqual(tiesById(row), ['2', '1', '10', '9']);
  });
});
