import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadRecords } from '../src/data/records.js';
import { evaluate } from '../src/jobs/evaluate.js';
import { train } from '../src/jobs/train.js';
import { readConfig } from '../src/models/config.js';
import { applyTemplate, Encoder, loadWeights } from '../src/models/encoder.js';
import { readSafetensors } from '../src/models/safetensors.js';
import { loadTextTokenizer } from '../src/models/tokenizer.js';
import { loadTrainConfig, resolveConfig } from '../src/training/config.js';
import { drawGroup, epochBatches } from '../src/training/sampler.js';
import { toDense } from '../src/training/optimizer.js';
import { EMBEDDING_TABLE, Trainer } from '../src/training/trainer.js';
import { Rng } from '../src/util/rng.js';
import { ROOT, TINY_BERT, TINY_QWEN2, TINY_QWEN3, TINY_XLMR, maxAbsDiff, tempDir } from './helpers.js';

const ZH = join(ROOT, 'data', 'contrastive-zh', 'train.jsonl');
const CLI = join(ROOT, 'dist', 'src', 'cli.js');

/** The bundled Chinese slice split into train (first 240) and dev (last 60) files. */
function split(dir: string) {
  const lines = readFileSync(ZH, 'utf8').trim().split('\n');
  const trainPath = join(dir, 'train.jsonl');
  const devPath = join(dir, 'dev.jsonl');
  const negPath = join(dir, 'dev_neg.jsonl');
  writeFileSync(trainPath, lines.slice(0, 240).join('\n') + '\n');
  const dev = lines.slice(240).map((l) => JSON.parse(l));
  writeFileSync(devPath, dev.map((r) => JSON.stringify({ query: r.query, pos_passage: r.pos })).join('\n') + '\n');
  writeFileSync(negPath, dev.map((r) => JSON.stringify({ neg_passage: r.neg })).join('\n') + '\n');
  return { trainPath, devPath, negPath };
}

describe('training on the Chinese slice', () => {
  it('lowers the loss and raises hit@1 on its own dev split; exports a model that loads back', async () => {
    const dir = tempDir();
    const { trainPath, devPath, negPath } = split(dir);
    const out = join(dir, 'run');
    const { config } = resolveConfig({
      model_name_or_path: TINY_BERT, train_data: trainPath, output_dir: out, per_device_train_batch_size: 16, num_train_epochs: 10,
      learning_rate: 2e-3, warmup_ratio: 0.1, max_query_len: 32, max_passage_len: 64, group_size: 6, embedding_temperature: 0.1,
      pooling: 'mean', logging_steps: 5, save_steps: 1000, threads: 2,
    });
    const base = await evaluate({ model: TINY_BERT, pooling: 'mean', data: devPath, negatives: negPath, quiet: true, maxQueryLength: 32, maxPassageLength: 64 });
    const result = await train(config, { quiet: true });
    const log = readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(log.at(-1).loss < log[0].loss * 0.8, `loss ${log[0].loss} → ${log.at(-1).loss}`);
    for (const k of ['step', 'loss', 'lr', 'grad_norm', 'seconds']) assert.ok(k in log[0], `log has ${k}`);
    const tuned = await evaluate({ model: out, data: devPath, negatives: negPath, quiet: true, maxQueryLength: 32, maxPassageLength: 64 });
    assert.ok(tuned.metrics['hit@1']! >= base.metrics['hit@1']! + 0.05, `hit@1 ${base.metrics['hit@1']} → ${tuned.metrics['hit@1']}`);
    assert.ok(tuned.metrics['mrr@10']! >= base.metrics['mrr@10']! + 0.1, `mrr@10 ${base.metrics['mrr@10']} → ${tuned.metrics['mrr@10']}`);
    assert.ok(result.steps >= 150);

    // The export keeps every base tensor name and carries the pooling for sentence-transformers.
    const baseNames = [...readSafetensors(join(TINY_BERT, 'model.safetensors')).keys()].sort();
    assert.deepEqual([...readSafetensors(join(out, 'model.safetensors')).keys()].sort(), baseNames);
    assert.equal(JSON.parse(readFileSync(join(out, '1_Pooling', 'config.json'), 'utf8')).pooling_mode_mean_tokens, true);
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'modules.json'), 'utf8')).map((m: { type: string }) => m.type.split('.').at(-1)), ['Transformer', 'Pooling', 'Normalize']);
    assert.ok(existsSync(join(out, 'onnx', 'model.onnx')));
  });

  it('evaluates during training and keeps the best model as best/', async () => {
    const dir = tempDir();
    const { trainPath, devPath, negPath } = split(dir);
    const out = join(dir, 'run');
    const { config } = resolveConfig({
      model_name_or_path: TINY_XLMR, train_data: trainPath, output_dir: out, per_device_train_batch_size: 16, max_steps: 20,
      learning_rate: 1e-3, max_query_len: 32, max_passage_len: 48, group_size: 2, embedding_temperature: 0.05,
      eval_data: devPath, eval_negatives: negPath, eval_steps: 10, metric_for_best_model: 'mrr@10', threads: 2,
    });
    const r = await train(config, { quiet: true });
    const evals = readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.eval);
    assert.deepEqual(evals.map((e) => e.step), [10, 20]);
    assert.ok(r.best && existsSync(join(out, 'best', 'model.safetensors')));
    assert.equal(r.best.metric, Math.max(...evals.map((e) => e.eval['mrr@10'])));
  });
});

describe('training an LLM embedder (Qwen3)', () => {
  it('trains with last-token pooling and the Qwen3-Embedding template, evaluates, keeps best/, resumes to the same weights, and exports the prompts', async () => {
    const dir = tempDir();
    const { trainPath, devPath, negPath } = split(dir);
    const cfg = {
      model_name_or_path: TINY_QWEN3, train_data: trainPath, per_device_train_batch_size: 8, max_steps: 8, learning_rate: 1e-3,
      max_query_len: 32, max_passage_len: 48, group_size: 3, embedding_temperature: 0.02, template_preset: 'qwen3-embedding',
      mini_batch_size: 4, embedding_matryoshka_dims: [16, 32], eval_data: devPath, eval_negatives: negPath, eval_steps: 4,
      save_steps: 4, logging_steps: 1, threads: 1, seed: 3,
    };
    const out = join(dir, 'run');
    const r = await train(resolveConfig({ ...cfg, output_dir: out }).config, { quiet: true });
    assert.equal(r.steps, 8);
    assert.ok(r.best && existsSync(join(out, 'best', 'model.safetensors')));
    assert.equal(JSON.parse(readFileSync(join(out, '1_Pooling', 'config.json'), 'utf8')).pooling_mode_lasttoken, true, 'pooling from the base model');
    const st = JSON.parse(readFileSync(join(out, 'config_sentence_transformers.json'), 'utf8'));
    assert.equal(st.prompts.query, 'Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:');
    assert.equal(st.prompts.document, undefined, 'passages have no prompt');
    // The base's tensor names (no `model.` prefix in Qwen3-Embedding's files) are kept.
    assert.deepEqual([...readSafetensors(join(out, 'model.safetensors')).keys()].sort(), [...readSafetensors(join(TINY_QWEN3, 'model.safetensors')).keys()].sort());

    // Resuming from checkpoint-4 in a fresh folder ends where the straight run did.
    const resumed = join(dir, 'resumed');
    mkdirSync(resumed);
    cpSync(join(out, 'checkpoint-4'), join(resumed, 'checkpoint-4'), { recursive: true });
    writeFileSync(join(resumed, 'log.jsonl'), readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').filter((l) => JSON.parse(l).step <= 4).join('\n') + '\n');
    await train(resolveConfig({ ...cfg, output_dir: resumed, resume_from_checkpoint: true }).config, { quiet: true });
    assert.ok(readFileSync(join(out, 'model.safetensors')).equals(readFileSync(join(resumed, 'model.safetensors'))), 'bit-identical after resume');

    // The exported model encodes queries with its saved prompt by role, as trained.
    const enc = await Encoder.load(out);
    assert.equal(enc.pooling, 'last');
    assert.deepEqual(enc.tokenize('lift', { role: 'query' }), enc.tokenize('Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:lift'));
    assert.deepEqual(enc.tokenize('lift', { role: 'passage' }), enc.tokenize('lift'));
    await enc.close();
  });

  it('an untied lm_head (Qwen2ForCausalLM checkpoints) is not read, and the export carries it unchanged', async () => {
    const { writeSafetensors } = await import('../src/models/safetensors.js');
    const dir = tempDir();
    const model = join(dir, 'causal-lm');
    cpSync(TINY_QWEN2, model, { recursive: true });
    const tensors = readSafetensors(join(model, 'model.safetensors'));
    const head = { shape: [960, 32], data: Float32Array.from({ length: 960 * 32 }, (_, i) => Math.sin(i)) };
    tensors.set('lm_head.weight', head);
    writeSafetensors(join(model, 'model.safetensors'), tensors);
    writeFileSync(join(model, 'config.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(model, 'config.json'), 'utf8')), tie_word_embeddings: false, architectures: ['Qwen2ForCausalLM'] }));
    assert.equal(loadWeights(model).has('lm_head.weight'), false);
    const out = join(dir, 'run');
    await train(resolveConfig({ model_name_or_path: model, train_data: ZH, output_dir: out, per_device_train_batch_size: 4, max_steps: 2, group_size: 2, max_query_len: 16, max_passage_len: 16, threads: 1 }).config, { quiet: true });
    const exported = readSafetensors(join(out, 'model.safetensors'));
    assert.deepEqual([...exported.keys()].sort(), [...tensors.keys()].sort());
    assert.ok(exported.get('lm_head.weight')!.data.every((x, i) => x === head.data[i]));
  });

  it('template_preset prompteol is the spec\'s default form; a template without {text} is a prefix', async () => {
    const { trainingTemplates } = await import('../src/jobs/train.js');
    const c = resolveConfig({ model_name_or_path: TINY_QWEN2, train_data: ZH, output_dir: 'x', template_preset: 'prompteol' }).config;
    const t = trainingTemplates(c, TINY_QWEN2);
    assert.equal(applyTemplate('lift', t.query), 'Query: lift\nUse one word to summarize the query\'s relevant information. The word is: "');
    assert.equal(applyTemplate('lift', t.passage), 'Text: lift\nUse one word to summarize the text\'s content. The word is: "');
    const flag = resolveConfig({ model_name_or_path: TINY_BERT, train_data: ZH, output_dir: 'x', query_instruction_for_retrieval: 'Represent this sentence for searching relevant passages: ' }).config;
    assert.equal(applyTemplate('lift', trainingTemplates(flag, TINY_BERT).query), 'Represent this sentence for searching relevant passages: lift');
    assert.throws(() => resolveConfig({ model_name_or_path: TINY_BERT, train_data: ZH, output_dir: 'x', template_preset: 'nope' }), /"template_preset" must be one of prompteol, qwen3-embedding/);
  });
});

describe('resume', () => {
  it('a run killed with SIGKILL and resumed ends with bit-identical weights', async () => {
    const dir = tempDir();
    const cfg = {
      model_name_or_path: TINY_BERT, train_data: ZH, per_device_train_batch_size: 4, max_steps: 150, learning_rate: 5e-4,
      warmup_steps: 10, max_query_len: 24, max_passage_len: 32, group_size: 3, embedding_temperature: 0.05, save_steps: 5,
      save_total_limit: 3, logging_steps: 5, threads: 1, seed: 7,
    };
    const configPath = join(dir, 'config.json');
    writeFileSync(configPath, JSON.stringify(cfg));
    const run = (outDir: string, extra: string[] = [], killAtCheckpoint?: number) =>
      new Promise<{ code: number | null; signal: string | null }>((resolve) => {
        const child = spawn(process.execPath, [CLI, 'train', '-c', configPath, '-o', outDir, '-q', ...extra], { stdio: 'ignore' });
        let timer: NodeJS.Timeout | undefined;
        if (killAtCheckpoint) {
          timer = setInterval(() => {
            if (existsSync(join(outDir, `checkpoint-${killAtCheckpoint}`, 'state.json'))) child.kill('SIGKILL');
          }, 2);
        }
        child.on('exit', (code, signal) => {
          clearInterval(timer);
          resolve({ code, signal });
        });
      });
    const straight = join(dir, 'straight');
    assert.equal((await run(straight)).code, 0);
    const interrupted = join(dir, 'interrupted');
    const killed = await run(interrupted, [], 40);
    assert.equal(killed.signal, 'SIGKILL');
    assert.equal(existsSync(join(interrupted, 'model.safetensors')), false, 'the killed run did not finish');
    assert.ok(readdirSync(interrupted).some((f) => f.startsWith('checkpoint-')));
    assert.equal((await run(interrupted, ['--resume'])).code, 0);
    const a = readFileSync(join(straight, 'model.safetensors'));
    const b = readFileSync(join(interrupted, 'model.safetensors'));
    assert.ok(a.equals(b), 'final weights are bit-identical');
    const logA = readFileSync(join(straight, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const logB = readFileSync(join(interrupted, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(logB.map((l) => [l.step, l.loss]), logA.map((l) => [l.step, l.loss]));
  });
});

describe('the run folder', () => {
  const cfg = (out: string, extra: Record<string, unknown> = {}) =>
    resolveConfig({ model_name_or_path: TINY_BERT, train_data: ZH, output_dir: out, per_device_train_batch_size: 4, max_steps: 2, group_size: 2, max_query_len: 16, max_passage_len: 16, save_steps: 1, logging_steps: 1, threads: 1, ...extra }).config;

  it('is never the base model\'s folder or the data\'s', async () => {
    await assert.rejects(train(cfg(TINY_BERT), { quiet: true }), /output_dir .* holds the base model .*choose another output_dir/);
    await assert.rejects(train(cfg(join(ROOT, 'data')), { quiet: true }), /output_dir .* holds train_data .*, which the run would overwrite/);
  });

  it('is locked while a run uses it; a lock left by a killed run, its temp files and a torn log line do not block the next run', async () => {
    const out = join(tempDir(), 'run');
    mkdirSync(out);
    writeFileSync(join(out, '.embedtune.lock'), String(process.ppid)); // a live process
    await assert.rejects(train(cfg(out), { quiet: true }), /output_dir .* is in use by another training run \(pid \d+\)/);
    writeFileSync(join(out, '.embedtune.lock'), '999999999'); // no such process: a killed run's
    mkdirSync(join(out, '.checkpoint-7.tmp'));
    writeFileSync(join(out, '.model.safetensors.abc123.tmp'), 'partial');
    await train(cfg(out), { quiet: true });
    assert.deepEqual(readdirSync(out).filter((f) => f.startsWith('.')), [], 'lock released, stale temp files gone');
    appendFileSync(join(out, 'log.jsonl'), '{"step": 3, "lo');
    const r = await train(cfg(out, { max_steps: 3, resume_from_checkpoint: true }), { quiet: true });
    assert.equal(r.steps, 3);
    const steps = readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
    assert.deepEqual(steps, [1, 2, 3]);
  });
});

describe('failures', () => {
  it('a NaN loss stops the run naming the step and the last good checkpoint', async () => {
    const dir = tempDir();
    const out = join(dir, 'run');
    const { config } = resolveConfig({
      model_name_or_path: TINY_BERT, train_data: ZH, output_dir: out, per_device_train_batch_size: 8, max_steps: 10,
      learning_rate: 1e30, max_grad_norm: 0, max_query_len: 16, max_passage_len: 16, group_size: 2, save_steps: 1, threads: 1,
    });
    await assert.rejects(train(config, { quiet: true }), /step (\d+): (loss is NaN|gradient norm is (NaN|Infinity)).*Last good checkpoint: .*checkpoint-\d+/);
  });

  it('records without negatives cannot fill a group', async () => {
    const dir = tempDir();
    const p = join(dir, 'nonegs.jsonl');
    writeFileSync(p, '{"query": "a", "pos": ["b"]}\n');
    const { config } = resolveConfig({ model_name_or_path: TINY_BERT, train_data: p, output_dir: join(dir, 'o'), group_size: 4 });
    await assert.rejects(train(config, { quiet: true }), /nonegs\.jsonl:1: field "neg": no negatives, but group_size is 4/);
  });
});

describe('config', () => {
  it("accepts the spec's emb_argument.json keys, warning about those that do not apply", () => {
    const { config, ignored } = loadTrainConfig(join(ROOT, 'examples', 'xlm-roberta-bge-m3.json'));
    assert.equal(config.train_data, './train');
    assert.equal(config.gradient_accumulation_steps, 4);
    assert.deepEqual(ignored.sort(), ['sharding', 'use_flash_attention']);
    const { notes } = resolveConfig({ model_name_or_path: 'm', train_data: 'd', output_dir: 'o', bf16: true, fp16: false });
    assert.equal(notes.length, 1, 'bf16: true is answered; fp16: false needs no word');
    assert.match(notes[0]!, /^bf16: true — embedtune computes in float32 on CPU .*export keeps the base model's dtype/);
    assert.equal(config.recompute, true, 'recompute is honoured (gradient checkpointing)');
  });

  it('rejects an unknown key with a suggestion, and bad values by name', () => {
    assert.throws(() => resolveConfig({ model_name_or_path: 'm', output_dir: 'o', train_data: 't', learning_rat: 1 }), /unknown key "learning_rat"; did you mean "learning_rate"\?/);
    assert.throws(() => resolveConfig({ model_name_or_path: 'm', output_dir: 'o', train_data: 't', group_size: 0 }), /"group_size" must be a positive integer/);
    assert.throws(() => resolveConfig({ model_name_or_path: 'm', output_dir: 'o', train_data: 't', learning_rate: '1e-5' }), /"learning_rate" must be number/);
    assert.throws(() => resolveConfig({ output_dir: 'o', train_data: 't' }), /"model_name_or_path" is required/);
    assert.throws(() => resolveConfig({ model_name_or_path: 'm', output_dir: 'o', train_data: 't', loss_type: 'focal' }), /"loss_type" must be contrastive or inf_cl, got "focal"/);
    const bad = (extra: Record<string, unknown>, message: RegExp) => assert.throws(() => resolveConfig({ model_name_or_path: 'm', output_dir: 'o', train_data: 't', ...extra }), message);
    bad({ adam_beta1: 1 }, /"adam_beta1" must be in \[0, 1\), got 1/);
    bad({ adam_beta2: -0.1 }, /"adam_beta2" must be in \[0, 1\)/);
    bad({ adam_epsilon: 0 }, /"adam_epsilon" must be > 0/);
    bad({ weight_decay: -1 }, /"weight_decay" must be ≥ 0/);
    bad({ warmup_ratio: 1.5 }, /"warmup_ratio" must be in \[0, 1\]/);
    bad({ num_train_epochs: 0 }, /"num_train_epochs" must be > 0/);
    bad({ max_steps: 2.5 }, /"max_steps" must be an integer/);
    bad({ save_total_limit: 0 }, /"save_total_limit" must be a positive integer or null/);
    bad({ mini_batch_size: 'x' }, /"mini_batch_size" must be a number or null, got "x"/);
    bad({ threads: 'abc' }, /"threads" must be a number or null, got "abc"/);
    bad({ embedding_matryoshka_dims: [0, 64] }, /"embedding_matryoshka_dims" must be positive integers/);
    bad({ metric_for_best_model: 'ndcg@7' }, /"metric_for_best_model" must be one of .* got "ndcg@7"/);
  });
});

describe('sampler', () => {
  it('draws one positive and distinct negatives, afresh each epoch, reproducibly', async () => {
    const { records } = await loadRecords(ZH, { requirePositives: true });
    const rng = new Rng(3);
    const e1 = epochBatches(records, { batchSize: 16, groupSize: 5 }, rng);
    const e2 = epochBatches(records, { batchSize: 16, groupSize: 5 }, rng);
    assert.deepEqual(epochBatches(records, { batchSize: 16, groupSize: 5 }, new Rng(3)), e1, 'seeded');
    const all = e1.flat();
    assert.equal(all.length, records.length, 'every record once per epoch');
    // (the data repeats some queries with other passages: check against all of a query's records)
    const byQuery = new Map<string, { pos: Set<string>; neg: Set<string> }>();
    for (const r of records) {
      const e = byQuery.get(r.query) ?? { pos: new Set<string>(), neg: new Set<string>() };
      r.pos.forEach((p) => e.pos.add(p));
      r.neg.forEach((n) => e.neg.add(n));
      byQuery.set(r.query, e);
    }
    for (const ex of all) {
      const r = byQuery.get(ex.query)!;
      assert.ok(r.pos.has(ex.passages[0]!));
      const negs = ex.passages.slice(1);
      assert.equal(new Set(negs).size, 4, 'negatives without replacement');
      assert.ok(negs.every((n) => r.neg.has(n)));
    }
    const draws = (e: typeof e1) => new Set(e.flat().map((x) => `${x.query}|${[...x.passages.slice(1)].sort().join('|')}`));
    const b = draws(e2);
    assert.ok([...draws(e1)].filter((d) => !b.has(d)).length > records.length / 2, 'negatives are redrawn every epoch');
  });

  it('the schedule counts the batches every epoch really cuts (duplicate-free batching varies per epoch)', async () => {
    const { scheduleSteps } = await import('../src/training/sampler.js');
    // Pairs that share passages (one record per query–positive pair, as the demo trains), so
    // duplicate-free batching defers records and the batch count moves between epochs.
    const { records: base } = await loadRecords(ZH, { requirePositives: true });
    const records = base.slice(0, 60).flatMap((r, i) => [r, { ...r, query: `${r.query} (${i})`, pos: [base[(i + 1) % 60]!.pos[0]!] }]);
    const o = { batchSize: 16, groupSize: 3 };
    let state = new Rng(5).seedState;
    const counts: number[] = [];
    for (let e = 0; e < 3; e++) {
      const rng = new Rng(state);
      counts.push(epochBatches(records, o, rng).length);
      state = rng.seedState;
    }
    assert.ok(new Set(counts).size > 1, `epochs cut different batch counts: ${counts}`);
    assert.equal(scheduleSteps(records, o, 5, 3), counts[0]! + counts[1]! + counts[2]!);
    assert.equal(scheduleSteps(records, o, 5, 1.5), counts[0]! + Math.ceil(counts[1]! / 2));
  });

  it('keeps batches free of duplicate queries and passages', () => {
    const recs = [
      { query: 'q1', pos: ['shared'], neg: ['n1'], raw: {}, bytes: new Uint8Array(), line: 1 },
      { query: 'q2', pos: ['shared'], neg: ['n2'], raw: {}, bytes: new Uint8Array(), line: 2 },
      { query: 'q1', pos: ['p3'], neg: ['n3'], raw: {}, bytes: new Uint8Array(), line: 3 },
      { query: 'q4', pos: ['p4'], neg: ['n4'], raw: {}, bytes: new Uint8Array(), line: 4 },
    ];
    const batches = epochBatches(recs, { batchSize: 4, groupSize: 2 }, new Rng(1));
    for (const b of batches) {
      const texts = b.flatMap((e) => [e.query, ...e.passages]);
      assert.equal(new Set(texts).size, texts.length, JSON.stringify(b));
    }
    assert.equal(batches.flat().length, 4);
    assert.ok(batches.length >= 2);
    const off = epochBatches(recs, { batchSize: 4, groupSize: 2, noDuplicates: false }, new Rng(1));
    assert.equal(off.length, 1);
  });

  it('never cuts a one-pair batch without hard negatives (its loss would be 0): it joins the batch before, or sits the epoch out', () => {
    const rec = (q: string, p: string, line: number) => ({ query: q, pos: [p], neg: [], raw: {}, bytes: new Uint8Array(), line });
    const five = [1, 2, 3, 4, 5].map((i) => rec(`q${i}`, `p${i}`, i));
    const joined = epochBatches(five, { batchSize: 4, groupSize: 1 }, new Rng(2));
    assert.deepEqual(joined.map((b) => b.length), [5], 'the lone fifth pair joins the first batch');
    // q5 shares q1's positive: wherever it lands, the lone pair would repeat p1 in the batch before
    const clash = [...five.slice(0, 4), rec('q5', 'p1', 5)];
    for (let seed = 1; seed <= 6; seed++) {
      const b = epochBatches(clash, { batchSize: 4, groupSize: 1 }, new Rng(seed));
      assert.deepEqual(b.map((x) => x.length), [4], `seed ${seed}`);
      const texts = b[0]!.flatMap((e) => [e.query, ...e.passages]);
      assert.equal(new Set(texts).size, texts.length);
    }
    // with hard negatives a one-pair batch still has negatives: kept as it is
    const withNeg = five.map((r) => ({ ...r, neg: [`n${r.line}`] }));
    assert.deepEqual(epochBatches(withNeg, { batchSize: 4, groupSize: 2 }, new Rng(2)).map((b) => b.length), [4, 1]);
  });

  it('repeats negatives only when a record has too few', () => {
    const r = { query: 'q', pos: ['p'], neg: ['a', 'b'], raw: {}, bytes: new Uint8Array(), line: 1 };
    const g = drawGroup(r, 5, new Rng(1));
    assert.equal(g.length, 5);
    assert.deepEqual([...new Set(g.slice(1))].sort(), ['a', 'b']);
  });

  it('a record with no negatives (or no positive) is refused by query, never filled with undefined passages; Rng.int(0) throws', () => {
    const base = { query: 'q without negatives', pos: ['p'], neg: [] as string[], raw: {}, bytes: new Uint8Array(), line: 1 };
    assert.throws(() => drawGroup(base, 3, new Rng(1)), /the record of query "q without negatives" has no negatives, but group_size is 3/);
    assert.deepEqual(drawGroup(base, 1, new Rng(1)), ['p'], 'group_size 1 needs none');
    assert.throws(() => drawGroup({ ...base, pos: [], neg: ['n'] }, 2, new Rng(1)), /has no positive passage/);
    assert.throws(() => new Rng(1).int(0), /Rng\.int\(0\): needs an integer n ≥ 1/);
  });
});

describe('GradCache', () => {
  for (const [model, pooling] of [[TINY_XLMR, 'mean'], [TINY_QWEN3, 'last']] as const) it(`gives the gradients of the fused step (${model.split('/').at(-1)})`, async () => {
    const config = readConfig(model);
    const tok = loadTextTokenizer(model);
    const { records } = await loadRecords(ZH, { requirePositives: true });
    const o = { pooling, normalize: true, temperature: 0.05, learningRate: 1e-3, weightDecay: 0, warmupSteps: 0, totalSteps: 10, schedule: 'constant' as const, maxGradNorm: 0, maxQueryLength: 24, maxPassageLength: 40, threads: 1, matryoshkaDims: [16, config.hiddenSize], matryoshkaWeights: [1, 1] };
    const fused = await Trainer.fromWeights(config, tok, loadWeights(model), o);
    const cached = await Trainer.fromWeights(config, tok, loadWeights(model), { ...o, miniBatchSize: 3 });
    const [batch] = epochBatches(records, { batchSize: 10, groupSize: 3 }, new Rng(2));
    const la = await fused.computeGradients(batch!);
    const lb = await cached.computeGradients(batch!);
    assert.ok(Math.abs(la - lb) < 1e-5);
    fused.slots.forEach((s, i) => {
      let diff = 0;
      let norm = 0;
      const a = toDense(fused.grads[i]!, s.data.length);
      const b = toDense(cached.grads[i]!, s.data.length);
      for (let j = 0; j < a.length; j++) {
        diff += (a[j]! - b[j]!) ** 2;
        norm += a[j]! ** 2;
      }
      assert.ok(Math.sqrt(diff) <= 1e-4 * Math.sqrt(norm) + 1e-7, `${s.name}: ${Math.sqrt(diff)} vs ${Math.sqrt(norm)}`);
    });
    await fused.close();
    await cached.close();
  });
});

describe('embedding tables', () => {
  const o = { pooling: 'cls' as const, normalize: true, temperature: 0.05, learningRate: 1e-2, weightDecay: 0.1, warmupSteps: 0, totalSteps: 10, schedule: 'constant' as const, maxGradNorm: 1, maxQueryLength: 24, maxPassageLength: 40, threads: 1 };

  it('row gradients equal the dense gradients (fused and GradCache)', async () => {
    for (const [model, mini] of [[TINY_BERT, undefined], [TINY_XLMR, undefined], [TINY_XLMR, 4], [TINY_QWEN2, undefined]] as const) {
      const config = readConfig(model);
      const tok = loadTextTokenizer(model);
      const { records } = await loadRecords(ZH, { requirePositives: true });
      const [batch] = epochBatches(records, { batchSize: 6, groupSize: 2 }, new Rng(3));
      const dense = await Trainer.fromWeights(config, tok, loadWeights(model), { ...o, miniBatchSize: mini, sparseEmbeddings: false });
      const sparse = await Trainer.fromWeights(config, tok, loadWeights(model), { ...o, miniBatchSize: mini });
      assert.equal(sparse.slots.find((s) => /word_embeddings|embed_tokens/.test(s.name))!.grad, null, 'the word table gets row gradients');
      assert.equal(await dense.computeGradients(batch!), await sparse.computeGradients(batch!));
      dense.slots.forEach((s, i) => {
        const a = toDense(dense.grads[i]!, s.data.length);
        const b = toDense(sparse.grads[sparse.slots.findIndex((x) => x.name === s.name)]!, s.data.length);
        let diff = 0;
        let norm = 0;
        for (let k = 0; k < a.length; k++) [diff, norm] = [diff + (a[k]! - b[k]!) ** 2, norm + a[k]! ** 2];
        assert.ok(Math.sqrt(diff) <= 1e-6 * Math.sqrt(norm) + 1e-9, `${model} ${s.name}: ${Math.sqrt(diff)} of ${Math.sqrt(norm)}`);
      });
      await dense.close();
      await sparse.close();
    }
  });

  it('freeze_embeddings trains every other tensor and leaves the tables as they were', async () => {
    const config = readConfig(TINY_XLMR);
    const before = loadWeights(TINY_XLMR);
    const trainer = await Trainer.fromWeights(config, loadTextTokenizer(TINY_XLMR), loadWeights(TINY_XLMR), { ...o, freezeEmbeddings: true });
    assert.ok(trainer.slots.every((s) => !EMBEDDING_TABLE.test(s.name)));
    assert.ok(trainer.slots.some((s) => s.name === 'embeddings.LayerNorm.weight'));
    const { records } = await loadRecords(ZH, { requirePositives: true });
    await trainer.step(epochBatches(records, { batchSize: 6, groupSize: 2 }, new Rng(3))[0]!);
    const after = await trainer.hfWeights();
    for (const [name, t] of before) {
      const same = t.data.every((x, k) => x === after.get(name)!.data[k]);
      assert.equal(same, EMBEDDING_TABLE.test(name), `${name} ${same ? 'unchanged' : 'changed'}`);
    }
    await trainer.close();
  });
});

describe('AdamW keys and templates', () => {
  it('adam_beta1, adam_beta2 and adam_epsilon reach the optimizer', async () => {
    const dir = tempDir();
    const base = { model_name_or_path: TINY_BERT, train_data: ZH, per_device_train_batch_size: 4, max_steps: 2, group_size: 2, max_query_len: 16, max_passage_len: 16, learning_rate: 1e-3, threads: 1 };
    const weights = async (extra: Record<string, unknown>, name: string) => {
      const { config } = resolveConfig({ ...base, ...extra, output_dir: join(dir, name) });
      await train(config, { quiet: true });
      return readFileSync(join(dir, name, 'model.safetensors'));
    };
    const plain = await weights({}, 'plain');
    assert.ok(plain.equals(await weights({ adam_beta1: 0.9, adam_beta2: 0.999, adam_epsilon: 1e-8 }, 'same')), 'the defaults are torch\'s');
    for (const [key, value] of [['adam_beta1', 0.5], ['adam_beta2', 0.9], ['adam_epsilon', 1]] as const) {
      assert.ok(!plain.equals(await weights({ [key]: value }, key)), `${key} changes the run`);
    }
  });

  it('a fractional num_train_epochs stops where the learning-rate schedule ends', async () => {
    const dir = tempDir();
    const { config } = resolveConfig({ model_name_or_path: TINY_BERT, train_data: ZH, output_dir: join(dir, 'run'), per_device_train_batch_size: 16, num_train_epochs: 1.5, group_size: 2, max_query_len: 16, max_passage_len: 16, learning_rate: 1e-3, lr_scheduler_type: 'cosine', logging_steps: 1, threads: 1 });
    const perEpoch = epochBatches((await loadRecords(ZH, { requirePositives: true })).records, { batchSize: 16, groupSize: 2, noDuplicates: true }, new Rng(config.seed)).length;
    const r = await train(config, { quiet: true });
    assert.equal(r.steps, Math.ceil(perEpoch * 1.5));
    const lrs = readFileSync(join(dir, 'run', 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).lr as number);
    assert.ok(lrs.every((lr, i) => i === 0 || lr <= lrs[i - 1]!), `cosine never rises again: ${lrs.map((x) => x.toExponential(1)).join(' ')}`);
  });

  it('templates put the text in verbatim ($$ and $& are text)', () => {
    assert.equal(applyTemplate('price $$5 and $& and $1', 'query: {text}'), 'query: price $$5 and $& and $1');
  });
});

describe('recompute (gradient checkpointing)', () => {
  it('layer-by-layer gradients equal the fused step (BERT cls, XLM-R mean, XLM-R with mini-batches, Qwen3 last, Qwen2 with mini-batches)', async () => {
    const o = { normalize: true, temperature: 0.05, learningRate: 1e-2, weightDecay: 0.1, warmupSteps: 0, totalSteps: 10, schedule: 'constant' as const, maxGradNorm: 1, maxQueryLength: 24, maxPassageLength: 40, threads: 1 };
    const { records } = await loadRecords(ZH, { requirePositives: true });
    const [batch] = epochBatches(records, { batchSize: 6, groupSize: 3 }, new Rng(3));
    for (const [model, pooling, mini] of [[TINY_BERT, 'cls', undefined], [TINY_XLMR, 'mean', undefined], [TINY_XLMR, 'cls', 4], [TINY_QWEN3, 'last', undefined], [TINY_QWEN2, 'mean', 4]] as const) {
      const config = readConfig(model);
      const tok = loadTextTokenizer(model);
      const fused = await Trainer.fromWeights(config, tok, loadWeights(model), { ...o, pooling });
      const layered = await Trainer.fromWeights(config, tok, loadWeights(model), { ...o, pooling, recompute: true, miniBatchSize: mini });
      assert.deepEqual(layered.slots.map((s) => s.name).sort(), fused.slots.map((s) => s.name).sort());
      const la = await fused.computeGradients(batch!);
      const lb = await layered.computeGradients(batch!);
      assert.ok(Math.abs(la - lb) <= 1e-6 * la, `loss ${la} vs ${lb}`);
      let [diffAll, normAll, worst, largest] = [0, 0, 0, 0];
      fused.slots.forEach((s, i) => {
        const a = toDense(fused.grads[i]!, s.data.length);
        const b = toDense(layered.grads[layered.slots.findIndex((x) => x.name === s.name)]!, s.data.length);
        let [diff, norm] = [0, 0];
        for (let k = 0; k < a.length; k++) [diff, norm, worst, largest] = [diff + (a[k]! - b[k]!) ** 2, norm + a[k]! ** 2, Math.max(worst, Math.abs(a[k]! - b[k]!)), Math.max(largest, Math.abs(a[k]!))];
        [diffAll, normAll] = [diffAll + diff, normAll + norm];
        // float32 rounding of differently fused kernels; a key bias's true gradient is 0 (softmax cancels it)
        if (!/key\.bias$/.test(s.name)) assert.ok(Math.sqrt(diff) <= 1e-5 * Math.sqrt(norm), `${s.name}: relative ${Math.sqrt(diff / norm)}`);
      });
      // Every gradient element within 1e-6 of the fused step's largest; overall the same float32
      // noise (~1e-6 relative) as GradCache against the fused step.
      assert.ok(worst <= 5e-6 * largest, `largest element difference ${worst} (largest element ${largest})`);
      assert.ok(Math.sqrt(diffAll / normAll) <= 2e-6, `all gradients: relative ${Math.sqrt(diffAll / normAll)}`);
      await fused.close();
      await layered.close();
    }
  });

  it('the recompute key trains; USE-Lite-style models say it is not supported', async () => {
    const dir = tempDir();
    const { config } = resolveConfig({ model_name_or_path: TINY_XLMR, train_data: ZH, output_dir: join(dir, 'run'), per_device_train_batch_size: 4, max_steps: 2, group_size: 2, max_query_len: 16, max_passage_len: 16, recompute: true, threads: 1 });
    const r = await train(config, { quiet: true });
    assert.equal(r.steps, 2);
    assert.ok(Number.isFinite(r.finalLoss));
    const use = join(ROOT, 'test', 'fixtures', 'models', 'tiny-use');
    const { config: c2 } = resolveConfig({ ...config, model_name_or_path: use, output_dir: join(dir, 'use') });
    await assert.rejects(train(c2, { quiet: true }), /recompute: not supported for use-lite models/);
    const { config: c3 } = resolveConfig({ ...config, model_name_or_path: TINY_QWEN2, output_dir: join(dir, 'qwen') });
    assert.equal((await train(c3, { quiet: true })).steps, 2);
  });
});

describe('export', () => {
  it('loads in transformers.js (feature-extraction, local files) with embeddings equal to ours (BERT, XLM-R, Qwen3)', async () => {
    const { env, pipeline } = await import('@huggingface/transformers');
    env.allowRemoteModels = false;
    for (const [model, pooling, theirPooling] of [
      [TINY_BERT, 'cls', 'cls'],
      [TINY_XLMR, 'mean', 'mean'],
      // Qwen3: transformers.js pads on the left as tokenizer_config says, and takes the last token.
      [TINY_QWEN3, 'last', 'last_token'],
    ] as const) {
      const dir = tempDir();
      const out = join(dir, 'model');
      const { config } = resolveConfig({ model_name_or_path: model, train_data: ZH, output_dir: out, per_device_train_batch_size: 8, max_steps: 3, learning_rate: 1e-3, group_size: 2, max_query_len: 16, max_passage_len: 16, pooling, threads: 1 });
      await train(config, { quiet: true });
      env.localModelPath = dir;
      const extractor = await pipeline('feature-extraction', 'model', { local_files_only: true, dtype: 'fp32' });
      const texts = ['一架飞机要起飞了。', 'what is the flutter of a swept wing', 'lift'];
      const theirs = await extractor(texts, { pooling: theirPooling, normalize: true });
      const ours = await Encoder.load(out);
      const mine = await ours.encode(texts, { quiet: true });
      const data = theirs.data as Float32Array;
      let m = 0;
      for (let i = 0; i < data.length; i++) m = Math.max(m, Math.abs(data[i]! - mine.data[i]!));
      assert.ok(m <= 1e-4, `${model}: max abs diff ${m}`);
      assert.equal(ours.pooling, pooling, 'pooling travels with the model');
      await ours.close();
      await extractor.dispose();
    }
  });

  it('writes onnx/model_quantized.onnx (int8) and model_fp16.onnx that transformers.js loads as q8 / fp16', async () => {
    const { env, pipeline } = await import('@huggingface/transformers');
    env.allowRemoteModels = false;
    const dir = tempDir();
    const out = join(dir, 'model');
    const { config } = resolveConfig({ model_name_or_path: TINY_XLMR, train_data: ZH, output_dir: out, per_device_train_batch_size: 8, max_steps: 2, learning_rate: 1e-3, group_size: 2, max_query_len: 16, max_passage_len: 16, pooling: 'mean', threads: 1 });
    await train(config, { quiet: true });
    const size = (f: string) => statSync(join(out, 'onnx', f)).size;
    assert.ok(size('model_fp16.onnx') < 0.6 * size('model.onnx'), 'fp16 weights: about half the file');
    assert.ok(size('model_quantized.onnx') < size('model.onnx'), 'int8 linear layers: smaller');
    env.localModelPath = dir;
    const texts = ['一架飞机要起飞了。', 'what is the flutter of a swept wing', 'lift'];
    const f32 = await Encoder.load(out);
    const int8 = await Encoder.load(out, { quantize: 'int8' });
    const exact = await f32.encode(texts, { quiet: true });
    const ours8 = await int8.encode(texts, { quiet: true });
    for (const [dtype, ours, tol] of [['q8', ours8, 1e-5], ['fp16', exact, 2e-3]] as const) {
      const extractor = await pipeline('feature-extraction', 'model', { local_files_only: true, dtype });
      const theirs = (await extractor(texts, { pooling: 'mean', normalize: true })).data as Float32Array;
      assert.ok(maxAbsDiff(theirs, ours.data) <= tol, `${dtype}: max abs diff ${maxAbsDiff(theirs, ours.data)}`);
      await extractor.dispose();
    }
    // int8 is an approximation of the float model, not a different one
    for (let i = 0; i < texts.length; i++) {
      let dot = 0;
      for (let k = 0; k < exact.dim; k++) dot += exact.data[i * exact.dim + k]! * ours8.data[i * exact.dim + k]!;
      assert.ok(dot > 0.99, `text ${i}: cosine int8 vs f32 ${dot}`);
    }
    assert.ok(maxAbsDiff(exact.data, ours8.data) > 0, 'int8 really ran');
    await f32.close();
    await int8.close();
  });
});

describe('distillation (knowledge_distillation: teacher scores from a reranker)', () => {
  const ref = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'reference', 'distill.json'), 'utf8'));

  it('loss and embedding gradients match PyTorch (kl_div and margin_mse, added to InfoNCE by weight)', async () => {
    const { lossGradGraph } = await import('../src/training/graphs.js');
    const { Session, floatTensor, int64Tensor } = await import('../src/runtime/session.js');
    const [Q, G, D] = [ref.teacher.length, ref.teacher[0].length, ref.queries[0].length];
    for (const type of ['kl_div', 'margin_mse'] as const) {
      const graph = lossGradGraph(D, { temperature: ref.temperature, normalized: true, distill: { type, weight: ref.weight, teacherTemperature: ref.teacher_temperature } });
      const s = await Session.create(graph, { threads: 1 });
      const out = await s.run({
        queries: floatTensor(Float32Array.from(ref.queries.flat()), [Q, D]),
        passages: floatTensor(Float32Array.from(ref.passages.flat()), [Q * G, D]),
        labels: int64Tensor(BigInt64Array.from({ length: Q }, (_, i) => BigInt(i * G)), [Q, 1]),
        teacher: floatTensor(Float32Array.from(ref.teacher.flat()), [Q, G]),
        group_columns: int64Tensor(BigInt64Array.from({ length: Q * G }, (_, i) => BigInt(i)), [Q, G]),
      });
      await s.release();
      const want = ref.losses[type];
      const close = (a: number, b: number) => Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(b));
      assert.ok(close((out.loss!.data as Float32Array)[0]!, want.loss), `${type} loss ${(out.loss!.data as Float32Array)[0]} vs ${want.loss}`);
      for (const [name, grads] of [['queries', want.grad_queries], ['passages', want.grad_passages]] as const) {
        const mine = out[`grad.${name}`]!.data as Float32Array;
        (grads as number[][]).flat().forEach((g, i) => assert.ok(close(mine[i]!, g), `${type} d/d${name}[${i}]: ${mine[i]} vs ${g}`));
      }
    }
  });

  it('GradCache and recompute stay exact; the sampler carries each passage\'s teacher score; records without scores are refused by line', async () => {
    const config = readConfig(TINY_XLMR);
    const tok = loadTextTokenizer(TINY_XLMR);
    const dir = tempDir();
    const { records } = await loadRecords(ZH, { requirePositives: true });
    // Teacher scores that identify their passage: the text's length.
    const scored = join(dir, 'scored.jsonl');
    const lines = readFileSync(ZH, 'utf8').trim().split('\n').slice(0, 40).map((l) => JSON.parse(l));
    writeFileSync(scored, lines.map((r) => JSON.stringify({ ...r, pos_scores: r.pos.map((t: string) => t.length / 10), neg_scores: r.neg.map((t: string) => t.length / 10) })).join('\n') + '\n');
    const withScores = records.slice(0, 40).map((r) => ({ ...r, posScores: r.pos.map((t) => t.length / 10), negScores: r.neg.map((t) => t.length / 10) }));
    const [batch] = epochBatches(withScores, { batchSize: 8, groupSize: 3 }, new Rng(4));
    for (const e of batch!) assert.deepEqual(e.teacher, e.passages.map((t) => t.length / 10));
    for (const type of ['kl_div', 'margin_mse'] as const) {
      const o = { pooling: 'mean' as const, normalize: true, temperature: 0.05, learningRate: 1e-3, weightDecay: 0, warmupSteps: 0, totalSteps: 10, schedule: 'constant' as const, maxGradNorm: 0, maxQueryLength: 24, maxPassageLength: 40, threads: 1, distill: { type, weight: 0.7 } };
      const fused = await Trainer.fromWeights(config, tok, loadWeights(TINY_XLMR), o);
      const cached = await Trainer.fromWeights(config, tok, loadWeights(TINY_XLMR), { ...o, miniBatchSize: 3 });
      const plain = await Trainer.fromWeights(config, tok, loadWeights(TINY_XLMR), { ...o, distill: undefined });
      const layered = await Trainer.fromWeights(config, tok, loadWeights(TINY_XLMR), { ...o, recompute: true });
      const [la, lb, lp, lr] = [await fused.computeGradients(batch!), await cached.computeGradients(batch!), await plain.computeGradients(batch!), await layered.computeGradients(batch!)];
      assert.ok(Math.abs(la - lb) < 1e-5 && Math.abs(la - lr) < 1e-5, `${type}: ${la} vs ${lb} (GradCache) vs ${lr} (recompute)`);
      assert.ok(la > lp, `${type}: the distillation term adds to InfoNCE (${la} vs ${lp})`);
      fused.slots.forEach((s, i) => {
        const a = toDense(fused.grads[i]!, s.data.length);
        for (const other of [cached, layered]) {
          const b = toDense(other.grads[i]!, s.data.length);
          let [diff, norm] = [0, 0];
          for (let j = 0; j < a.length; j++) [diff, norm] = [diff + (a[j]! - b[j]!) ** 2, norm + a[j]! ** 2];
          assert.ok(Math.sqrt(diff) <= 1e-4 * Math.sqrt(norm) + 1e-7, `${type} ${s.name}`);
        }
      });
      await Promise.all([fused.close(), cached.close(), plain.close(), layered.close()]);
    }
    const run = { model_name_or_path: TINY_XLMR, output_dir: join(dir, 'out'), per_device_train_batch_size: 4, max_steps: 2, group_size: 2, max_query_len: 16, max_passage_len: 16, pooling: 'mean', threads: 1, knowledge_distillation: true };
    const r = await train(resolveConfig({ ...run, train_data: scored }).config, { quiet: true });
    assert.ok(Number.isFinite(r.finalLoss));
    const broken = join(dir, 'broken.jsonl');
    writeFileSync(broken, [JSON.stringify({ ...lines[0], pos_scores: [1], neg_scores: [1] }), JSON.stringify(lines[1])].join('\n') + '\n');
    await assert.rejects(train(resolveConfig({ ...run, train_data: broken, output_dir: join(dir, 'b') }).config, { quiet: true }), /broken\.jsonl:1: field "neg_scores": has 1 scores for \d+ passages/);
    writeFileSync(broken, [JSON.stringify({ ...lines[0], pos_scores: [1], neg_scores: lines[0].neg.map(() => 0) }), JSON.stringify(lines[1])].join('\n') + '\n');
    await assert.rejects(train(resolveConfig({ ...run, train_data: broken, output_dir: join(dir, 'c') }).config, { quiet: true }), /broken\.jsonl:2: field "pos_scores": missing: knowledge_distillation needs a teacher score/);
    writeFileSync(broken, JSON.stringify({ ...lines[0], pos_scores: [1], neg_scores: lines[0].neg.map((_: string, i: number) => (i === 1 ? 'high' : 0)) }) + '\n');
    await assert.rejects(train(resolveConfig({ ...run, train_data: broken, output_dir: join(dir, 'd') }).config, { quiet: true }), /broken\.jsonl:1: field "neg_scores\[1\]": expected a number, got "high"/);
    assert.throws(() => resolveConfig({ ...run, train_data: scored, kd_loss_type: 'mse' }), /"kd_loss_type" must be kl_div or margin_mse, got "mse"/);
  });
});
