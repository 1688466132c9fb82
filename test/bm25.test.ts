/** BM25 (src/search/bm25.ts) against bm25s on the same tokens (scripts/bm25_reference.py). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Bm25Index, bm25Tokens } from '../src/search/bm25.js';
import { bm25Sets } from '../scripts/bm25-tokens.js';
import { FIXTURES } from './helpers.js';

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
