import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { join } from 'node:path';
import { greedyDedup } from '../src/search/dedup.js';
import { HnswSearch, sampledRecall } from '../src/search/hnsw.js';
import { RowFile } from '../src/search/rows.js';
import { ExactSearch, type Vectors } from '../src/search/topk.js';
import { Rng } from '../src/util/rng.js';
import { tempDir } from './helpers.js';

function randomUnit(n: number, d: number, seed: number): Vectors {
  const rng = new Rng(seed);
  const data = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    let norm = 0;
    for (let j = 0; j < d; j++) norm += (data[i * d + j] = rng.normal()) ** 2;
    for (let j = 0; j < d; j++) data[i * d + j]! /= Math.sqrt(norm);
  }
  return { data, dim: d, count: n };
}

const dot = (a: Vectors, i: number, b: Vectors, j: number) => {
  let s = 0;
  for (let k = 0; k < a.dim; k++) s += a.data[i * a.dim + k]! * b.data[j * b.dim + k]!;
  return s;
};

describe('exact top-k', () => {
  it('matches brute force across corpus chunks and query blocks', async () => {
    const q = randomUnit(37, 16, 1);
    const c = randomUnit(1000, 16, 2);
    const search = await ExactSearch.create({ threads: 1 });
    const got = await search.search(q, c, 10, { chunkRows: 128, queryRows: 8 });
    for (let i = 0; i < q.count; i++) {
      const brute = Array.from({ length: c.count }, (_, j) => [dot(q, i, c, j), j]).sort((a, b) => b[0]! - a[0]! || a[1]! - b[1]!);
      assert.deepEqual(Array.from(got.indices.subarray(i * 10, i * 10 + 10)), brute.slice(0, 10).map((x) => x[1]));
      for (let r = 0; r < 10; r++) assert.ok(Math.abs(got.scores[i * 10 + r]! - brute[r]![0]!) < 1e-5);
    }
    await search.close();
  });

  it('breaks ties by lower corpus index, also across chunks', async () => {
    const d = 4;
    const c: Vectors = { data: new Float32Array(10 * d), dim: d, count: 10 };
    for (const i of [7, 2, 9, 4]) c.data[i * d] = 1; // four identical best rows
    const q: Vectors = { data: Float32Array.of(1, 0, 0, 0), dim: d, count: 1 };
    const search = await ExactSearch.create({ threads: 1 });
    for (const chunkRows of [3, 10]) {
      const got = await search.search(q, c, 5, { chunkRows });
      assert.deepEqual(Array.from(got.indices), [2, 4, 7, 9, 0]);
    }
    await search.close();
  });

  it('returns min(k, corpus) columns', async () => {
    const search = await ExactSearch.create({ threads: 1 });
    const got = await search.search(randomUnit(2, 8, 3), randomUnit(3, 8, 4), 10, {});
    assert.equal(got.k, 3);
    assert.equal(got.indices.length, 6);
    await search.close();
  });
});

describe('approximate top-k (HNSW)', () => {
  it('finds the exact neighbours of clustered data with exact scores, in exact order, from memory and from a row file', async () => {
    // 3,000 points around 60 centres (as embeddings cluster), 50 queries near random points.
    const [n, d, k] = [3000, 32, 20];
    const centres = randomUnit(60, d, 5);
    const noise = randomUnit(n + 50, d, 6);
    const c: Vectors = { data: new Float32Array(n * d), dim: d, count: n };
    const q: Vectors = { data: new Float32Array(50 * d), dim: d, count: 50 };
    const place = (out: Float32Array, i: number, centre: number, spread: number, from: number) => {
      let norm = 0;
      for (let j = 0; j < d; j++) norm += (out[i * d + j] = centres.data[centre * d + j]! + spread * noise.data[from * d + j]!) ** 2;
      for (let j = 0; j < d; j++) out[i * d + j]! /= Math.sqrt(norm);
    };
    for (let i = 0; i < n; i++) place(c.data, i, i % 60, 0.6, i);
    for (let i = 0; i < 50; i++) place(q.data, i, (i * 7) % 60, 0.6, n + i);
    const exact = await ExactSearch.create({ threads: 1 });
    const want = await exact.search(q, c, k, {});
    await exact.close();
    const file = RowFile.create(join(tempDir(), 'rows.npy'), d, n);
    file.append(c.data);
    for (const corpus of [c, file]) {
      const index = await HnswSearch.build(corpus, { threads: 1 });
      assert.equal(index.size, n);
      const got = index.search(q, k);
      assert.equal(got.k, k);
      let found = 0;
      for (let i = 0; i < q.count; i++) {
        const row = Array.from(got.indices.subarray(i * k, (i + 1) * k));
        found += row.filter((r) => want.indices.subarray(i * k, (i + 1) * k).includes(r)).length;
        for (let j = 0; j < k; j++) {
          assert.ok(Math.abs(got.scores[i * k + j]! - dot(q, i, c, row[j]!)) <= 1e-6, 'scores are the rows\' own');
          if (j > 0) assert.ok(got.scores[i * k + j - 1]! >= got.scores[i * k + j]!, 'best first');
        }
      }
      assert.ok(found / (q.count * k) >= 0.98, `recall@${k} ${found / (q.count * k)}`);
      // The sampled estimate a mine run reports: every query sampled here, so exactly the recall.
      assert.equal((await sampledRecall(q, corpus, got, { sample: 50, threads: 1 })).recall, found / (q.count * k));
      const wrong = { ...got, indices: got.indices.map((x, j) => (j % k < k / 2 ? (x + 1) % n : x)) };
      assert.ok((await sampledRecall(q, corpus, wrong, { sample: 10, threads: 1 })).recall < 0.6, 'a bad ranking is caught');
    }
    file.remove();
  });
});

describe('greedy dedup', () => {
  it('agrees with a naive greedy loop, across blocks', async () => {
    // Clusters of near-duplicates: copies of 40 centres with small noise, shuffled.
    const d = 12;
    const centres = randomUnit(40, d, 5);
    const rng = new Rng(6);
    const n = 300;
    const v: Vectors = { data: new Float32Array(n * d), dim: d, count: n };
    for (let i = 0; i < n; i++) {
      const c = rng.int(40);
      let norm = 0;
      for (let k = 0; k < d; k++) norm += (v.data[i * d + k] = centres.data[c * d + k]! + 0.15 * rng.normal()) ** 2;
      for (let k = 0; k < d; k++) v.data[i * d + k]! /= Math.sqrt(norm);
    }
    const got = await greedyDedup(v, 0.8, { blockRows: 64, threads: 1 });
    const kept: number[] = [];
    for (let i = 0; i < n; i++) {
      let best = -Infinity;
      let bestJ = -1;
      for (const j of kept) {
        const s = dot(v, i, v, j);
        if (s > best) [best, bestJ] = [s, j];
      }
      if (best >= 0.8) {
        assert.equal(got.keep[i], 0, `row ${i} should be dropped`);
        assert.equal(got.matchedRow[i], bestJ);
        assert.ok(Math.abs(got.matchedScore[i]! - best) < 1e-5);
      } else {
        assert.equal(got.keep[i], 1, `row ${i} should be kept`);
        kept.push(i);
      }
    }
    assert.ok(kept.length > 20 && kept.length < 200, `kept ${kept.length}`);
  });

  it('keeps everything at threshold 1 unless exact duplicates', async () => {
    const v = randomUnit(5, 4, 7);
    v.data.set(v.data.subarray(0, 4), 12); // row 3 = row 0
    const got = await greedyDedup(v, 0.99999, {});
    assert.deepEqual(Array.from(got.keep), [1, 1, 1, 0, 1]);
    assert.equal(got.matchedRow[3], 0);
  });
});
