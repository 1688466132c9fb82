/**
 * No command writes onto a file it reads: not the data, not a file of the model or reranker
 * folder, a BEIR folder or the cache, not the training run's eval data; an export replaces
 * only an earlier export of ours unless told to. Each refusal exits 1 before any work and leaves
 * the file as it was.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CRANFIELD, FIXTURES, ROOT, TINY_BERT, tempDir } from './helpers.js';

const CLI = join(ROOT, 'dist', 'src', 'cli.js');
const ZH = join(ROOT, 'data', 'contrastive-zh', 'train.jsonl');

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args, ...(args[0] === 'export' ? [] : ['-q'])], { encoding: 'utf8' });
  return { code: r.status, err: r.stderr };
}

/** Runs a command that must refuse to write `target`, and checks the file is untouched. */
function refuses(args: string[], target: string, why: RegExp) {
  const before = readFileSync(target);
  const r = cli(args);
  assert.equal(r.code, 1, `${args.join(' ')}: ${r.err}`);
  assert.match(r.err, why, args.join(' '));
  assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace');
  assert.deepEqual(readFileSync(target), before, `${target} unchanged`);
}

describe('outputs never land on inputs', () => {
  it('model, reranker, BEIR and cache folders are inputs: no output goes inside them', () => {
    const dir = tempDir();
    const model = join(dir, 'model');
    cpSync(TINY_BERT, model, { recursive: true });
    const reranker = join(dir, 'reranker');
    cpSync(join(FIXTURES, 'models', 'tiny-bert-reranker'), reranker, { recursive: true });
    const beir = join(dir, 'beir');
    cpSync(CRANFIELD, beir, { recursive: true });
    writeFileSync(join(beir, 'qrels', 'train.tsv'), readFileSync(join(beir, 'qrels', 'test.tsv')));
    const texts = join(dir, 'texts.txt');
    writeFileSync(texts, 'lift\ndrag\n');
    const records = join(dir, 'records.jsonl');
    writeFileSync(records, readFileSync(ZH, 'utf8').split('\n').slice(0, 20).join('\n') + '\n');
    const cache = join(dir, 'cache');
    mkdirSync(cache);
    writeFileSync(join(cache, 'keep.bin'), 'cache entry');
    const inside = /refusing to write .*: it is inside .*, a folder this command reads/;

    refuses(['encode', '-m', model, '-i', texts, '-o', join(model, 'tokenizer.json')], join(model, 'tokenizer.json'), inside);
    refuses(['encode', '-m', model, '-i', texts, '-o', join(cache, 'keep.bin'), '--cache-dir', cache], join(cache, 'keep.bin'), inside);
    refuses(['clean', '-m', model, '-i', records, '-o', join(dir, 'c.jsonl'), '--report', join(model, 'config.json')], join(model, 'config.json'), inside);
    refuses(['mine', '-m', model, '-i', records, '-o', join(beir, 'corpus.jsonl'), '--candidate-pool', beir], join(beir, 'corpus.jsonl'), /it is (inside .*|an input file)/);
    refuses(['mine', '-m', model, '-i', records, '-o', join(dir, 'm.jsonl'), '--stats', join(beir, 'qrels', 'test.tsv'), '--candidate-pool', beir], join(beir, 'qrels', 'test.tsv'), inside);
    refuses(['mine', '-m', model, '-i', records, '-o', join(beir, 'qrels', 'test.tsv'), '--reranker', `qrels:${beir}`], join(beir, 'qrels', 'test.tsv'), inside);
    refuses(['mine', '-m', model, '-i', records, '-o', join(reranker, 'config.json'), '--reranker', reranker], join(reranker, 'config.json'), inside);
    refuses(['eval', '-m', model, '-d', beir, '-o', join(model, 'config.json')], join(model, 'config.json'), inside);
    refuses(['score', '-r', reranker, '-i', records, '-o', join(reranker, 'model.safetensors')], join(reranker, 'model.safetensors'), inside);
    refuses(['convert', '--beir', beir, '-o', join(beir, 'qrels', 'train.tsv')], join(beir, 'qrels', 'train.tsv'), inside);
  });

  it('train refuses eval_data inside output_dir; export replaces only an earlier export unless --overwrite', () => {
    const dir = tempDir();
    const out = join(dir, 'run');
    mkdirSync(out);
    const evalData = join(out, 'log.jsonl');
    writeFileSync(evalData, readFileSync(ZH, 'utf8').split('\n').slice(0, 5).join('\n') + '\n');
    const config = (extra: Record<string, unknown>) => {
      const path = join(dir, `c-${Math.random().toString(36).slice(2)}.json`);
      writeFileSync(path, JSON.stringify({ model_name_or_path: TINY_BERT, train_data: ZH, output_dir: out, per_device_train_batch_size: 2, group_size: 2, max_query_len: 16, max_passage_len: 16, max_steps: 1, threads: 1, ...extra }));
      return path;
    };
    refuses(['train', '-c', config({ eval_data: evalData })], evalData, /output_dir .* holds eval_data .*log\.jsonl, which the run would overwrite/);

    const run = join(dir, 'run2');
    assert.equal(cli(['train', '-c', config({ output_dir: run })]).code, 0);
    const someone = join(dir, 'someones-model');
    cpSync(TINY_BERT, someone, { recursive: true });
    refuses(['export', '--checkpoint', join(run, 'checkpoint-1'), '-o', someone], join(someone, 'model.safetensors'), /refusing to export into .*someones-model: it holds .* and is not an earlier embedtune export/);
    const target = join(dir, 'exported');
    assert.equal(cli(['export', '--checkpoint', join(run, 'checkpoint-1'), '-o', target]).code, 0);
    writeFileSync(join(target, 'stray.txt'), 'from an earlier export');
    assert.equal(cli(['export', '--checkpoint', join(run, 'checkpoint-1'), '-o', target]).code, 0, 'an earlier export is replaced');
    assert.ok(!existsSync(join(target, 'stray.txt')), 'as a whole: nothing of the old folder is left');
    assert.equal(cli(['export', '--checkpoint', join(run, 'checkpoint-1'), '-o', someone, '--overwrite']).code, 0);
    assert.ok(existsSync(join(someone, 'embedtune_export.json')));
  });
});
