/**
 * eval_holdout (a share of the training queries evaluated each epoch, the best epoch kept) and
 * load_best_model_at_end.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { train } from '../src/index.js';
import { evaluateSet } from '../src/jobs/evaluate.js';
import { loadRecords } from '../src/data/records.js';
import { splitHoldout } from '../src/training/holdout.js';
import { ROOT, TINY_BERT, tempDir } from './helpers.js';

const ZH = join(ROOT, 'data', 'contrastive-zh', 'train.jsonl');
const lines = readFileSync(ZH, 'utf8').trim().split('\n').slice(0, 32);
const base = {
  model_name_or_path: TINY_BERT, per_device_train_batch_size: 4, group_size: 2, max_query_len: 16, max_passage_len: 16,
  threads: 1, learning_rate: 2e-3, save_steps: 100, logging_steps: 100,
};
const jsonl = (path: string) => readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

describe('held-out queries and the best model', () => {
  it('splitHoldout: a seeded share of the queries, all their records, ranked over every passage', async () => {
    const dir = tempDir();
    const file = join(dir, 'train.jsonl');
    writeFileSync(file, [...lines, lines[0]!].join('\n') + '\n'); // one query twice
    const { records } = await loadRecords(file);
    const a = splitHoldout(records, 0.25, 7);
    const queries = new Set(records.map((r) => r.query));
    assert.equal(a.heldOut.queries.size, Math.round(0.25 * queries.size));
    const held = new Set(a.heldOut.queries.values());
    assert.ok(a.train.every((r) => !held.has(r.query)), 'no held-out query trains');
    assert.equal(a.train.length + records.filter((r) => held.has(r.query)).length, records.length);
    assert.equal(a.heldOut.corpus.length, new Set(records.flatMap((r) => [...r.pos, ...r.neg])).size);
    for (const [id, q] of a.heldOut.queries) {
      const pos = records.filter((r) => r.query === q).flatMap((r) => r.pos);
      assert.deepEqual([...a.heldOut.qrels.get(id)!.keys()].map((d) => a.heldOut.corpus.find((c) => c.id === d)!.text).sort(), [...new Set(pos)].sort());
    }
    assert.deepEqual([...splitHoldout(records, 0.25, 7).heldOut.queries.values()], [...held], 'seeded');
    assert.notDeepEqual([...splitHoldout(records, 0.25, 8).heldOut.queries.values()], [...held]);
    assert.throws(() => splitHoldout(records.slice(0, 1), 0.5, 7), /leaves none to train on/);
  });

  it('eval_holdout evaluates each epoch and the output is the best epoch\'s model', async () => {
    const dir = tempDir();
    const file = join(dir, 'train.jsonl');
    writeFileSync(file, lines.join('\n') + '\n');
    const out = join(dir, 'run');
    const result = await train({ ...base, train_data: file, output_dir: out, num_train_epochs: 3, eval_holdout: 0.25 }, { quiet: true });
    const evals = jsonl(join(out, 'log.jsonl')).filter((l) => 'eval' in l) as { step: number; eval: Record<string, number> }[];
    assert.equal(evals.length, 3);
    assert.deepEqual(evals.map((e) => e.step), [1, 2, 3].map((k) => (k * result.steps) / 3));
    const bestMetric = Math.max(...evals.map((e) => e.eval['ndcg@10']!));
    assert.deepEqual(readFileSync(join(out, 'model.safetensors')), readFileSync(join(out, 'best', 'model.safetensors')));
    // The model in output_dir scores the best epoch's metric on the same held-out queries.
    const { heldOut } = splitHoldout((await loadRecords(file)).records, 0.25, 42);
    const again = await evaluateSet({ model: out, quiet: true, maxQueryLength: 16, maxPassageLength: 16, threads: 1 }, heldOut, [10]);
    assert.ok(Math.abs(again.metrics['ndcg@10']! - bestMetric) < 1e-6, `${again.metrics['ndcg@10']} vs best ${bestMetric}`);
    // Without eval_holdout every query trains: more steps per epoch.
    const all = await train({ ...base, train_data: file, output_dir: join(dir, 'all'), num_train_epochs: 1 }, { quiet: true });
    assert.ok(all.steps > result.steps / 3);
  });

  it('load_best_model_at_end with eval_data; the settings that cannot work are named', async () => {
    const dir = tempDir();
    const file = join(dir, 'train.jsonl');
    writeFileSync(file, lines.slice(0, 24).join('\n') + '\n');
    writeFileSync(join(dir, 'eval.jsonl'), lines.slice(24).join('\n') + '\n');
    const out = join(dir, 'run');
    await train({ ...base, train_data: file, output_dir: out, max_steps: 6, eval_data: join(dir, 'eval.jsonl'), eval_steps: 2, load_best_model_at_end: true }, { quiet: true });
    assert.deepEqual(readFileSync(join(out, 'model.safetensors')), readFileSync(join(out, 'best', 'model.safetensors')));
    const run = (extra: Record<string, unknown>) => train({ ...base, train_data: file, output_dir: join(dir, String(Math.random())), max_steps: 1, ...extra } as never, { quiet: true });
    await assert.rejects(run({ eval_holdout: 0.2, eval_data: join(dir, 'eval.jsonl') }), /give "eval_data" .* or "eval_holdout" .*, not both/);
    await assert.rejects(run({ load_best_model_at_end: true }), /"load_best_model_at_end" keeps the best evaluation's model; set "eval_data" or "eval_holdout"/);
    await assert.rejects(run({ eval_holdout: 0.9 }), /"eval_holdout" must be a share in \[0, 0.5\]/);
  });
});
