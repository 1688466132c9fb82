/**
 * sentence-transformers model folders embed as SentenceTransformer.encode does: version 6's
 * `pooling_mode` (every mode) and `model_max_length`, and the older `pooling_mode_*_tokens` flags
 * with `sentence_bert_config.json`'s `max_seq_length`. Reference: scripts/torch_st_reference.py
 * (sentence-transformers 6 on tiny-bert, float64), test/fixtures/reference/st.json.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Encoder } from '../src/models/encoder.js';
import { savedPooling } from '../src/models/st-config.js';
import { FIXTURES, maxAbsDiff, ROOT, TINY_BERT, tempDir } from './helpers.js';

const REF = JSON.parse(readFileSync(join(FIXTURES, 'reference', 'st.json'), 'utf8')) as { sentences: string[]; folders: Record<string, { maxSeqLength: number; embeddings: number[][] }> };

/** tiny-bert's weights and tokenizer with the files sentence-transformers wrote for `name`. */
function stFolder(name: string): string {
  const dir = join(tempDir(), name);
  mkdirSync(dir);
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(TINY_BERT, f), join(dir, f));
  cpSync(join(FIXTURES, 'st', name), dir, { recursive: true });
  return dir;
}

describe('sentence-transformers folders', () => {
  for (const name of Object.keys(REF.folders)) {
    it(`${name}: the embeddings of SentenceTransformer.encode (pooling and max_seq_length from the folder)`, async () => {
      const encoder = await Encoder.load(stFolder(name), { threads: 1 });
      const ours = await encoder.encode(REF.sentences, { quiet: true, batchSize: 4 });
      await encoder.close();
      const want = Float32Array.from(REF.folders[name]!.embeddings.flat());
      assert.ok(maxAbsDiff(ours.data, want) <= 2e-6, `max diff ${maxAbsDiff(ours.data, want)}`);
    });
  }

  it('--max-length overrides max_seq_length, up to the model limit', async () => {
    const encoder = await Encoder.load(stFolder('legacy-mean'), { threads: 1 });
    const long = REF.sentences.find((s) => encoder.tokenize(s, { maxLength: 128 }).length > 20)!;
    assert.equal(encoder.tokenize(long).length, 12);
    assert.equal(encoder.tokenize(long, { maxLength: 20 }).length, 20);
    await encoder.close();
  });

  it('the encode job, and train → export keeps the folder\'s pooling', () => {
    const dir = stFolder('v6-max');
    const work = tempDir();
    const texts = join(work, 'texts.txt');
    writeFileSync(texts, REF.sentences.join('\n') + '\n');
    const cli = (args: string[]) => spawnSync(process.execPath, [join(ROOT, 'dist', 'src', 'cli.js'), ...args], { encoding: 'utf8' });
    let r = cli(['encode', '-m', dir, '-i', texts, '-o', join(work, 'e.npy'), '--threads', '1', '-q']);
    assert.equal(r.status, 0, r.stderr);
    const npy = readFileSync(join(work, 'e.npy'));
    const rows = new Float32Array(Uint8Array.from(npy.subarray(npy.length - REF.sentences.length * 32 * 4)).buffer);
    assert.ok(maxAbsDiff(rows, Float32Array.from(REF.folders['v6-max']!.embeddings.flat())) <= 2e-6);

    const out = join(work, 'run');
    const config = join(work, 'c.json');
    writeFileSync(config, JSON.stringify({ model_name_or_path: dir, train_data: join(ROOT, 'data', 'contrastive-zh', 'train.jsonl'), output_dir: out, per_device_train_batch_size: 2, group_size: 2, max_query_len: 16, max_passage_len: 16, max_steps: 1, threads: 1 }));
    r = cli(['train', '-c', config, '-q']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(savedPooling(join(out)), 'max');
  });

  it('refuses what it cannot follow, naming the file', () => {
    const dir = stFolder('v6-mean');
    const path = join(dir, '1_Pooling', 'config.json');
    writeFileSync(path, JSON.stringify({ embedding_dimension: 32, pooling_mode: ['cls', 'mean'] }));
    assert.throws(() => savedPooling(dir), new RegExp(`${path}: pooling modes \\["cls","mean"\\] concatenate`));
    writeFileSync(path, JSON.stringify({ embedding_dimension: 32, pooling_mode: 'median' }));
    assert.throws(() => savedPooling(dir), /"pooling_mode" "median" is not one of/);
    writeFileSync(path, JSON.stringify({ embedding_dimension: 32, pooling_mode: 'mean', include_prompt: false }));
    assert.throws(() => savedPooling(dir), /"include_prompt": false .* not supported/);
    writeFileSync(path, JSON.stringify({ word_embedding_dimension: 32, pooling_mode_cls_token: false }));
    assert.equal(savedPooling(dir), 'mean', 'no flag set: sentence-transformers pools by mean');
  });
});
