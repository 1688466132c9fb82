import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { loadBeir } from '../src/data/beir.js';
import { loadRecords } from '../src/data/records.js';
import { demo } from '../src/jobs/demo.js';
import { evaluateSet, type RetrievalSet } from '../src/jobs/evaluate.js';
import { ROOT, TINY_BERT, tempDir } from './helpers.js';

describe('demo pipeline and HTML report', () => {
  it('runs split → clean → mine → train → eval with a small model and writes a report that renders in Chromium', async () => {
    const out = join(tempDir(), 'demo');
    const reranker = join(ROOT, 'test', 'fixtures', 'models', 'tiny-xlmr-reranker');
    const r = await demo({ model: TINY_BERT, data: join(ROOT, 'data', 'cranfield-full'), outDir: out, epochs: 3, learningRate: 1e-3, quiet: true, threads: 2, reranker });
    assert.equal(r.trainQueries + r.testQueries, 225);
    assert.equal(r.testQueries, 68);
    for (const k of ['ndcg@10', 'mrr@10', 'hit@1']) {
      assert.equal(typeof r.base.metrics[k], 'number');
      assert.equal(typeof r.tuned.metrics[k], 'number');
    }
    // Fine-tuning must have moved the model towards its training data: on the training queries
    // the tuned model ranks relevant documents clearly higher than the base. (The tiny random
    // model has too little capacity to gain much on held-out queries in 3 epochs; `npm start`
    // shows that gain with USE-Lite: nDCG@10 0.21 → 0.30.)
    const beir = await loadBeir(join(ROOT, 'data', 'cranfield-full'));
    const trained = new Set((await loadRecords(join(out, 'train.jsonl'))).records.map((x) => x.query));
    const fit: RetrievalSet = { ...beir, queries: new Map([...beir.queries].filter(([, text]) => trained.has(text))) };
    const before = await evaluateSet({ model: TINY_BERT, pooling: 'mean', quiet: true }, fit, [10]);
    const after = await evaluateSet({ model: join(out, 'model'), quiet: true }, fit, [10]);
    assert.equal(before.queries, 157);
    assert.ok(after.metrics['ndcg@10']! > 1.2 * before.metrics['ndcg@10']!, `nDCG@10 on training queries ${before.metrics['ndcg@10']} → ${after.metrics['ndcg@10']}`);
    assert.ok(after.metrics['mrr@10']! > before.metrics['mrr@10']!);
    const html = readFileSync(r.report, 'utf8');
    assert.doesNotMatch(html, /<(script|link)[^>]+(src|href)=["']?https?:/i, 'self-contained: nothing loaded from the network');
    assert.match(html, /<table id="metrics">.*ndcg@10/s);

    // Debian's chromium (apt-get install chromium), driven by playwright-core.
    const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1100, height: 2000 } });
      const errors: string[] = [];
      page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.goto(`file://${r.report}`);
      const drawn = await page.evaluate(() =>
        [...document.querySelectorAll('canvas')].map((c) => {
          const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
          let n = 0;
          for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
          return n;
        }),
      );
      assert.equal(drawn.length, 4, 'loss, learning rate, score and reranker histogram charts');
      for (const n of drawn) assert.ok(n > 1000, `a chart drew only ${n} pixels`);
      assert.deepEqual(errors, []);
      const rows = await page.$$eval('#metrics tbody tr', (trs) => trs.length);
      assert.equal(rows, 24);
      const shot = join(out, 'report.png');
      await page.screenshot({ path: shot, fullPage: true });
      assert.ok(statSync(shot).size > 20000);
      assert.match(await page.textContent('#clean') ?? '', /of 157 training queries dropped/);
      const stats = JSON.parse(readFileSync(join(out, 'mine.stats.json'), 'utf8'));
      assert.ok(stats.reranker.dropped_count > 0);
      assert.match(await page.textContent('#rerank') ?? '', new RegExp(`^${stats.reranker.dropped_count} of ${stats.reranker.dropped_count + stats.reranker.kept.count} candidates .* dropped as likely false negatives`));
    } finally {
      await browser.close();
    }
  });

  it("the demo's levers: BM25 candidates, re-mining each epoch, a held-out share picking the epoch — in the stats, the log and the report", async () => {
    const out = join(tempDir(), 'demo');
    const r = await demo({ model: TINY_BERT, data: join(ROOT, 'data', 'cranfield-full'), outDir: out, epochs: 2, learningRate: 1e-3, quiet: true, threads: 2, lexical: 'bm25:20', remineEvery: 1, evalHoldout: 0.1 });
    assert.equal(r.testQueries, 68, 'the test split is the same');
    const stats = JSON.parse(readFileSync(join(out, 'mine.stats.json'), 'utf8'));
    assert.equal(stats.lexical.k, 20);
    const log = readFileSync(join(out, 'model', 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const rounds = log.filter((l) => l.remine);
    assert.deepEqual(rounds.map((l) => l.remine.epoch), [2]);
    assert.equal(typeof rounds[0].remine.lexical_share, 'number', 'the round mines with BM25 too');
    const evals = log.filter((l) => l.eval);
    assert.equal(evals.length, 2, 'one evaluation per epoch');
    const round = JSON.parse(readFileSync(join(out, 'model', 'remine', 'epoch-2.stats.json'), 'utf8'));
    assert.deepEqual([round.settings.rangeMin, round.settings.rangeMax, round.settings.numNegatives], [10, 100, 8], "the demo's own mining settings");
    const html = readFileSync(r.report, 'utf8');
    assert.match(html, /<ul id="remine"><li>epoch 2: negatives re-mined at step \d+/);
    assert.match(html, /<table id="held-out">/);
  });
});
