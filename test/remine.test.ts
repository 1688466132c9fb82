/**
 * Re-mining during training (remine_every): a round's negatives are what `mine` gives with the
 * weights of that moment; a run stopped in or before a round's epoch resumes to the same end as an
 * unstopped one; bad remine_options are named.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { mine, train } from '../src/index.js';
import { writeReport } from '../src/jobs/report.js';
import { ROOT, TINY_BERT, tempDir } from './helpers.js';

const ZH = join(ROOT, 'data', 'contrastive-zh', 'train.jsonl');
const records = readFileSync(ZH, 'utf8').trim().split('\n').slice(0, 24).map((l) => JSON.parse(l) as { query: string; pos: string[]; neg: string[] });
const remine = { rangeMin: 0, rangeMax: 12, numNegatives: 3 };
const base = {
  model_name_or_path: TINY_BERT, train_data: records, per_device_train_batch_size: 4, group_size: 2, max_query_len: 16, max_passage_len: 16,
  threads: 1, learning_rate: 1e-3, lr_scheduler_type: 'constant' as const, save_steps: 100, logging_steps: 1,
};
const jsonl = (path: string) => readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

describe('re-mining during training', () => {
  it("a round's negatives are mine's with the weights at that epoch's start; it is logged", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'held-out.jsonl'), readFileSync(ZH, 'utf8').trim().split('\n').slice(24, 48).join('\n') + '\n');
    const one = await train({ ...base, output_dir: join(dir, 'one'), num_train_epochs: 1 }, { quiet: true });
    const two = await train({ ...base, output_dir: join(dir, 'two'), num_train_epochs: 2, remine_every: 1, remine_options: remine, eval_data: join(dir, 'held-out.jsonl'), eval_steps: one.steps }, { quiet: true });
    assert.equal(two.steps, 2 * one.steps);
    const round = jsonl(join(dir, 'two', 'remine', 'epoch-2.jsonl'));
    assert.ok(!existsSync(join(dir, 'two', 'remine', 'epoch-1.jsonl')), 'the first epoch trains on the data as given');
    // The same mining with the model the one-epoch run exported (the same weights: constant lr).
    await mine({ model: join(dir, 'one'), input: join(dir, 'two', 'remine', 'records.jsonl'), output: join(dir, 'm.jsonl'), ...remine, seed: 42 + 1, maxQueryLength: 16, maxPassageLength: 16, threads: 1, quiet: true });
    const expected = jsonl(join(dir, 'm.jsonl'));
    assert.deepEqual(round.map((r) => r.neg), expected.map((r) => r.neg));
    assert.ok(round.some((r, i) => JSON.stringify(r.neg) !== JSON.stringify(records[i]!.neg)), 'the round changed negatives');
    round.forEach((r, i) => {
      assert.equal(r.query, records[i]!.query);
      for (const n of r.neg as string[]) assert.ok(!records[i]!.pos.includes(n), 'a positive is never a negative');
    });
    const log = jsonl(join(dir, 'two', 'log.jsonl'));
    const entries = log.filter((l) => 'remine' in l) as { step: number; remine: { epoch: number; queries: number; pool: number; kept_old: number } }[];
    assert.equal(entries.length, 1);
    assert.equal(entries[0]!.step, one.steps);
    assert.equal(entries[0]!.remine.epoch, 2);
    assert.equal(entries[0]!.remine.queries, new Set(records.map((r) => r.query)).size);
    assert.ok(existsSync(join(dir, 'two', 'remine', 'epoch-2.stats.json')));
    // The report lists the round and the held-out evaluation at each epoch's end.
    const html = readFileSync(writeReport(join(dir, 'two')), 'utf8');
    assert.match(html, new RegExp(`epoch 2: negatives re-mined at step ${one.steps} with the weights then \\(${entries[0]!.remine.queries} queries, pool ${entries[0]!.remine.pool}`));
    const evals = log.filter((l) => 'eval' in l) as { step: number; eval: Record<string, number> }[];
    assert.deepEqual(evals.map((e) => e.step), [one.steps, 2 * one.steps]);
    assert.match(html, new RegExp(`<tr><td>${2 * one.steps}</td>.*?<td>${evals[1]!.eval['ndcg@10']!.toFixed(4)}</td>`));
  });

  it('stopped inside a round, or at the epoch end before it, a resumed run ends as an unstopped one', async () => {
    const dir = tempDir();
    const config = { ...base, num_train_epochs: 3, remine_every: 2, remine_options: remine };
    const straight = await train({ ...config, output_dir: join(dir, 'straight') }, { quiet: true });
    const perEpoch = straight.steps / 3;
    for (const at of [2 * perEpoch + 1, 2 * perEpoch]) {
      const out = join(dir, `stop-${at}`);
      const stop = new AbortController();
      const stopped = await train({ ...config, output_dir: out }, { quiet: true, signal: stop.signal, onStep: (s) => s.step === at && stop.abort() }).then(() => undefined, (e: Error) => e);
      assert.equal(stopped?.name, 'AbortError');
      const resumed = await train({ ...config, output_dir: out, resume_from_checkpoint: true }, { quiet: true });
      assert.equal(resumed.finalLoss, straight.finalLoss, `stopped at step ${at}`);
      assert.deepEqual(readFileSync(join(out, 'model.safetensors')), readFileSync(join(dir, 'straight', 'model.safetensors')));
    }
  });

  it('bad remine settings are named before training', async () => {
    const dir = tempDir();
    const run = (extra: Record<string, unknown>) => train({ ...base, output_dir: join(dir, String(Math.random())), max_steps: 1, ...extra } as never, { quiet: true });
    await assert.rejects(run({ remine_every: 1, remine_options: { rangeMn: 2 } }), /"remine_options": unknown key "rangeMn"; mine's options here are .*rangeMin/);
    await assert.rejects(run({ remine_every: 1, remine_options: { rangeMax: '50' } }), /"remine_options": "rangeMax" must be an integer \(mine's --range-max\), got "50"/);
    await assert.rejects(run({ remine_every: 1, remine_options: { input: 'x.jsonl' } }), /unknown key "input"/);
    await assert.rejects(run({ remine_every: -1 }), /"remine_every" must be an integer ≥ 0/);
    await assert.rejects(run({ remine_every: 1, knowledge_distillation: true }), /"remine_every" replaces the negatives/);
  });
});
