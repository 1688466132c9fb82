/**
 * Nothing silent: empty inputs, impossible configs and damaged shards stop with a message that
 * names the file and what is wrong in it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { merge, runShard } from '../src/jobs/shard.js';
import { readConfig } from '../src/models/config.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { checkCheckpoint } from '../src/training/checkpoint.js';
import { loadTrainConfig, resolveConfig } from '../src/training/config.js';
import { CRANFIELD, ROOT, TINY_BERT, tempDir } from './helpers.js';

const CLI = join(ROOT, 'dist', 'src', 'cli.js');
const cli = (args: string[]) => spawnSync(process.execPath, [CLI, ...args, ...(args[0] === 'report' ? [] : ['-q'])], { encoding: 'utf8' });
const REQUIRED = { model_name_or_path: TINY_BERT, output_dir: 'out', train_data: 'x.jsonl' };

describe('nothing silent', () => {
  it('empty BEIR parts, a convert that keeps nothing, a report of no run, an empty negatives file: exit 1, named', () => {
    const dir = tempDir();
    for (const part of ['corpus.jsonl', 'queries.jsonl', join('qrels', 'test.tsv')]) {
      const beir = join(dir, `empty-${part.replace(/\W/g, '')}`);
      cpSync(CRANFIELD, beir, { recursive: true });
      writeFileSync(join(beir, part), '');
      const r = cli(['eval', '-m', TINY_BERT, '-d', beir]);
      assert.equal(r.status, 1, part);
      assert.match(r.stderr, new RegExp(`${join(beir, part).replace(/[\\/.]/g, '\\$&')}: empty`));
    }
    let r = cli(['convert', '--beir', CRANFIELD, '-o', join(dir, 'c.jsonl'), '--min-score', '5']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /no query has a judged document with score ≥ 5/);
    mkdirSync(join(dir, 'not-a-run'));
    r = cli(['report', join(dir, 'not-a-run')]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /not-a-run: not a run folder/);
    const data = join(dir, 'dev.jsonl');
    writeFileSync(data, JSON.stringify({ query: 'lift', pos_passage: ['lift is a force'] }) + '\n');
    writeFileSync(join(dir, 'neg.jsonl'), '');
    r = cli(['eval', '-m', TINY_BERT, '-d', data, '--negatives', join(dir, 'neg.jsonl')]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /neg\.jsonl: no negatives to add to the corpus \(the file is empty\)/);
  });

  it('model configs and tokenizers are checked by field', () => {
    const dir = join(tempDir(), 'm');
    cpSync(TINY_BERT, dir, { recursive: true });
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    for (const [key, value] of [['num_hidden_layers', -1], ['num_hidden_layers', 1.5], ['num_attention_heads', -4], ['vocab_size', 0]] as const) {
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, [key]: value }));
      assert.throws(() => readConfig(dir), new RegExp(`config\\.json: field "${key}" must be an integer ≥ 1, got ${value}`));
    }
    writeFileSync(join(dir, 'config.json'), 'null');
    assert.throws(() => readConfig(dir), /config\.json: expected a JSON object/);
    const tok = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({ ...tok, model: { ...tok.model, type: 'Foo' } }));
    assert.throws(() => loadTokenizer(dir), /tokenizer\.json: model\.type "Foo" is not a tokenizer model/);
  });

  it('train configs: integers, strings, finite numbers and weights as their keys need; state.json by field', () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ seed: 1.5 }, /"seed" must be an integer ≥ 0/],
      [{ eval_negatives: 5 }, /"eval_negatives" must be a string or null, got 5/],
      [{ revision: 5 }, /"revision" must be a string or null/],
      [{ threads: 'x' }, /"threads" must be a number or null/],
      [{ matryoshka_weights: [-1, 1], embedding_matryoshka_dims: [16, 32] }, /"matryoshka_weights" must be ≥ 0/],
    ];
    for (const [extra, why] of bad) assert.throws(() => resolveConfig({ ...REQUIRED, ...extra }), why, JSON.stringify(extra));
    const dir = tempDir();
    const path = join(dir, 'c.json');
    writeFileSync(path, `{"model_name_or_path": "m", "output_dir": "o", "train_data": "t", "num_train_epochs": 1e999}`);
    assert.throws(() => loadTrainConfig(path), /"num_train_epochs" must be finite, got "Infinity"/);

    const ck = join(dir, 'checkpoint-1');
    mkdirSync(ck);
    writeFileSync(join(ck, 'state.json'), JSON.stringify({ step: 'x', epoch: 0, batchInEpoch: 0, epochRng: 1, optimizerStep: 1, bestMetric: null }));
    assert.match(checkCheckpoint(ck)!, /state\.json: "step" must be an integer ≥ 0, got "x"/);
  });

  it('merge checks that the shards cover every row once, with finite rows', async () => {
    const dir = tempDir();
    const input = join(dir, 'texts.txt');
    writeFileSync(input, Array.from({ length: 20 }, (_, i) => `text number ${i}`).join('\n') + '\n');
    const o = { model: TINY_BERT, input, output: join(dir, 'e.npy'), blockTexts: 8, threads: 1, quiet: true };
    const fresh = async (name: string) => {
      const shards = join(dir, name);
      for (const index of [0, 1]) await runShard('encode', { ...o, output: join(dir, `${name}.npy`) } as never, { index, count: 2 }, shards);
      return shards;
    };
    const tampered = await fresh('tampered');
    const manifest = join(tampered, 'shard-1-of-2', 'manifest.json');
    const m = JSON.parse(readFileSync(manifest, 'utf8'));
    m.calls[0].rows = [8, 16];
    writeFileSync(manifest, JSON.stringify(m));
    await assert.rejects(merge(tampered, { quiet: true }), /shard-1-of-2\/manifest\.json: "[^"]+" records rows \[8,16\], but shard 1 of 2 encodes rows \[8,20\]/);

    const nan = await fresh('nan');
    const folder = join(nan, 'shard-0-of-2');
    const rows = join(folder, readdirSync(folder).find((f) => f.endsWith('.npy'))!);
    const size = readFileSync(rows).length;
    const fd = openSync(rows, 'r+');
    writeSync(fd, Buffer.from(new Float32Array([NaN]).buffer), 0, 4, size - 4);
    closeSync(fd);
    await assert.rejects(merge(nan, { quiet: true }), /\.npy: row 7 holds NaN: the shard's rows must be finite/);

    writeFileSync(join(nan, 'shard-1-of-2', 'manifest.json'), '{"format": "embedtune-sh');
    await assert.rejects(merge(nan, { quiet: true }), /manifest\.json is not valid JSON/);
  });
});

describe('weights and vocabulary errors name their files', () => {
  const model = (edit: (dir: string) => void) => {
    const dir = join(tempDir(), 'model');
    cpSync(TINY_BERT, dir, { recursive: true });
    edit(dir);
    return dir;
  };
  const header = (json: string) => {
    const body = Buffer.from(json);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(body.length));
    return Buffer.concat([len, body]);
  };
  const config = (dir: string, change: Record<string, unknown>) =>
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(TINY_BERT, 'config.json'), 'utf8')), ...change }));

  it('a safetensors header or entry of null, a weights "file" that is a folder, missing tensors and shapes the config does not give', async () => {
    const { Encoder } = await import('../src/models/encoder.js');
    const cases: [(dir: string) => void, (dir: string) => RegExp][] = [
      [(d) => writeFileSync(join(d, 'model.safetensors'), header('null')), (d) => new RegExp(`^${join(d, 'model.safetensors')}: the safetensors header is null, not an object of tensors$`)],
      [(d) => writeFileSync(join(d, 'model.safetensors'), header('{"a.weight":null}')), (d) => new RegExp(`^${join(d, 'model.safetensors')}: tensor a\\.weight is null in the header`)],
      [(d) => (rmSync(join(d, 'model.safetensors')), mkdirSync(join(d, 'model.safetensors'))), (d) => new RegExp(`^${join(d, 'model.safetensors')}: a folder, not a safetensors file$`)],
      [(d) => config(d, { num_hidden_layers: 3 }), (d) => new RegExp(`^${join(d, 'model.safetensors')}: missing tensor "encoder\\.layer\\.2\\..*" \\(for the model ${join(d, 'config.json')} describes\\)$`)],
      [(d) => config(d, { hidden_size: 64 }), (d) => new RegExp(`^${join(d, 'model.safetensors')}: tensor "embeddings\\.word_embeddings\\.weight" has shape \\[2600,32\\], expected \\[2600,64\\]`)],
      [(d) => config(d, { max_position_embeddings: 4 }), (d) => new RegExp(`^${join(d, 'model.safetensors')}: tensor "embeddings\\.position_embeddings\\.weight" has shape \\[128,32\\], expected \\[4,32\\]`)],
    ];
    for (const [edit, message] of cases) {
      const dir = model(edit);
      await assert.rejects(Encoder.load(dir, { threads: 1 }), (e: Error) => (assert.match(e.message, message(dir)), true));
    }
  });

  it('a tokenizer with ids past the embedding table, or a pad_token_id outside it, is refused before any batch, naming both files', async () => {
    const { Encoder } = await import('../src/models/encoder.js');
    const big = model((d) => {
      const t = JSON.parse(readFileSync(join(d, 'tokenizer.json'), 'utf8'));
      t.added_tokens.push({ id: 5000, content: '[BIG]', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
      writeFileSync(join(d, 'tokenizer.json'), JSON.stringify(t));
    });
    await assert.rejects(Encoder.load(big, { threads: 1 }), new RegExp(`${join(big, 'tokenizer.json')}: has token ids up to 5000, but the model's embedding table has 2600 rows \\(${join(big, 'config.json')}: vocab_size 2600\\)`));
    const pad = model((d) => config(d, { pad_token_id: 99999 }));
    await assert.rejects(Encoder.load(pad, { threads: 1 }), new RegExp(`${join(pad, 'config.json')}: pad_token_id 99999 is outside the embedding table`));
    const { train } = await import('../src/jobs/train.js');
    await assert.rejects(train(resolveConfig({ model_name_or_path: big, train_data: join(ROOT, 'data', 'contrastive-zh', 'train.jsonl'), output_dir: join(tempDir(), 'o'), max_steps: 1 }).config, { quiet: true }), /tokenizer\.json: has token ids up to 5000/);
  });
});

describe('more errors that named nothing (issue 22, item 9)', () => {
  it('"devices" that is no device list, eval on a folder that is not a complete BEIR folder, a torn or bad log.jsonl and a corrupt train_config.json for report, an HF_ENDPOINT that is not a URL', async () => {
    assert.throws(() => resolveConfig({ model_name_or_path: 'm', train_data: 't', output_dir: 'o', devices: 'lots' }), /"devices": --devices "lots": "lots" is not a device; expected cpu:NxT/);
    const partial = join(tempDir(), 'beir');
    mkdirSync(join(partial, 'qrels'), { recursive: true });
    writeFileSync(join(partial, 'queries.jsonl'), '{"_id": "1", "text": "q"}\n');
    const { evaluate } = await import('../src/jobs/evaluate.js');
    await assert.rejects(evaluate({ model: TINY_BERT, data: partial, quiet: true }), new RegExp(`${partial}: a folder, but not a BEIR folder: no corpus\\.jsonl`));
    // report: a torn last log line (a run stopped mid-write) is left out and said; a bad line or train_config.json is named.
    const run = join(tempDir(), 'run');
    mkdirSync(run);
    const report = () => spawnSync(process.execPath, [join(ROOT, 'dist', 'src', 'cli.js'), 'report', run], { encoding: 'utf8', env: { ...process.env, EMBEDTUNE_QUIET: '' } });
    writeFileSync(join(run, 'log.jsonl'), '{"step": 1, "loss": 2.0}\n{"step": 2, "lo');
    let r = report();
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /log\.jsonl:2: a torn last line \(the run stopped while writing it\), left out/);
    writeFileSync(join(run, 'log.jsonl'), '{"step": 1, "loss": 2.0}\n{"step": 2, "lo\n{"step": 3}\n');
    r = report();
    assert.equal(r.status, 1);
    assert.match(r.stderr, /log\.jsonl:2: not valid JSON/);
    writeFileSync(join(run, 'log.jsonl'), '{"step": 1, "loss": 2.0}\n');
    writeFileSync(join(run, 'train_config.json'), '{bad');
    r = report();
    assert.equal(r.status, 1);
    assert.match(r.stderr, /train_config\.json: not valid JSON/);
    const { hubSnapshot } = await import('../src/models/hub.js');
    await assert.rejects(hubSnapshot('org/model', { env: { HF_ENDPOINT: 'notaurl', HF_HOME: tempDir() } }), /HF_ENDPOINT "notaurl" is not an http\(s\) URL/);
  });
});

describe('a full disk names the file', () => {
  it('train writing log.jsonl on a full device (/dev/full: ENOSPC) exits 1 naming log.jsonl', { skip: !existsSync('/dev/full') && 'no /dev/full here' }, async () => {
    const { symlinkSync } = await import('node:fs');
    const out = join(tempDir(), 'run');
    mkdirSync(out);
    symlinkSync('/dev/full', join(out, 'log.jsonl'));
    const { train } = await import('../src/jobs/train.js');
    const config = resolveConfig({ model_name_or_path: TINY_BERT, train_data: join(ROOT, 'data', 'contrastive-zh', 'train.jsonl'), output_dir: out, max_steps: 2, per_device_train_batch_size: 4, group_size: 2, max_query_len: 16, max_passage_len: 16, threads: 1 }).config;
    await assert.rejects(train(config, { quiet: true }), new RegExp(`${join(out, 'log.jsonl')}: ENOSPC`));
  });
});
