/**
 * Models of any size on disk: incomplete checkpoints, a full disk, ONNX external data,
 * sharded weights and half-precision storage. Small models stand in; the real-size runs are in
 * `npm run bench`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import ort from 'onnxruntime-node';
import { readConfig } from '../src/models/config.js';
import { Encoder } from '../src/models/encoder.js';
import { exportModel } from '../src/models/export.js';
import { canonicalName } from '../src/models/params.js';
import { floatToBf16, floatToHalf, halfToFloat, readHeader, readSafetensors, writeSafetensors } from '../src/models/safetensors.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { loadWeights, weightFiles } from '../src/models/weights.js';
import { checkCheckpoint } from '../src/training/checkpoint.js';
import { maxAbsDiff, ROOT, TINY_BERT, TINY_XLMR, tempDir } from './helpers.js';

const CLI = join(ROOT, 'dist', 'src', 'cli.js');
const ZH = join(ROOT, 'data', 'contrastive-zh', 'train.jsonl');

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, EMBEDTUNE_QUIET: '' } });
  return { code: r.status, err: r.stderr };
}

function trainConfig(dir: string, out: string, extra: Record<string, unknown> = {}): string {
  const path = join(dir, `cfg-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(path, JSON.stringify({ model_name_or_path: TINY_BERT, train_data: ZH, output_dir: out, per_device_train_batch_size: 4, group_size: 2, max_query_len: 16, max_passage_len: 16, save_steps: 1, threads: 1, learning_rate: 1e-4, ...extra }));
  return path;
}

describe('checkpoints of any completeness', () => {
  it('names a truncated or missing file by path; --resume falls back to the newest complete checkpoint', () => {
    const dir = tempDir();
    const out = join(dir, 'run');
    assert.equal(cli(['train', '-c', trainConfig(dir, out), '--max-steps', '3', '-q']).code, 0);
    const ck = (n: number) => join(out, `checkpoint-${n}`);
    const weights3 = join(ck(3), 'weights.safetensors');
    truncateSync(weights3, statSync(weights3).size - 100);
    rmSync(join(ck(2), 'optimizer.safetensors'));
    assert.match(checkCheckpoint(ck(3))!, new RegExp(`${weights3}: truncated`));
    assert.match(checkCheckpoint(ck(2))!, /optimizer\.safetensors: missing/);
    assert.equal(checkCheckpoint(ck(1)), null);

    let r = cli(['train', '-c', trainConfig(dir, out), '--max-steps', '4', '--resume']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /skipping incomplete checkpoint .*checkpoint-3: .*weights\.safetensors: truncated/);
    assert.match(r.err, /skipping incomplete checkpoint .*checkpoint-2: .*optimizer\.safetensors: missing/);
    assert.match(r.err, /resumed from .*checkpoint-1 at step 1/);
    assert.equal(checkCheckpoint(ck(4)), null);

    truncateSync(weights3, 50);
    r = cli(['train', '-c', trainConfig(dir, out, { resume_from_checkpoint: ck(3) }), '--max-steps', '4']);
    assert.equal(r.code, 1);
    assert.match(r.err, /checkpoint .*checkpoint-3 is incomplete: .*weights\.safetensors/);
    assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace');
    r = cli(['export', '--checkpoint', ck(3), '-o', join(dir, 'x')]);
    assert.equal(r.code, 1);
    assert.match(r.err, /not a complete checkpoint/);
  });

  it('a disk that fills during a checkpoint keeps the previous one, exits 1 and names the path', (t) => {
    const dir = tempDir();
    const mnt = join(dir, 'small-disk');
    mkdirSync(mnt);
    // One tiny-BERT checkpoint (weights + two moments) is 1.27 MB: the second cannot fit in 2 MB.
    const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt]);
    if (mount.status !== 0) return t.skip('cannot mount a small tmpfs here');
    try {
      const out = join(mnt, 'run');
      const r = cli(['train', '-c', trainConfig(dir, out), '--max-steps', '3', '-q']);
      assert.equal(r.code, 1);
      assert.match(r.err, /checkpoint .*checkpoint-2 was not saved: .*(ENOSPC|no space left)/i);
      assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace');
      assert.equal(checkCheckpoint(join(out, 'checkpoint-1')), null, 'the previous checkpoint is intact');
      assert.deepEqual(readdirSync(out).filter((f) => f.includes('tmp') || f.startsWith('checkpoint-2')), []);
    } finally {
      spawnSync('umount', [mnt]);
    }
  });
});

describe('ONNX past 2 GB', () => {
  it('external data: onnxruntime loads onnx/model.onnx from its path and matches encode', async () => {
    const dir = tempDir();
    const out = join(dir, 'model');
    const config = readConfig(TINY_XLMR);
    exportModel(out, { baseDir: TINY_XLMR, config, weights: loadWeights(TINY_XLMR), pooling: 'mean', normalize: true, onnxExternalData: true });
    const onnxSize = statSync(join(out, 'onnx', 'model.onnx')).size;
    const dataSize = statSync(join(out, 'onnx', 'model.onnx_data')).size;
    assert.ok(onnxSize < 60_000 && dataSize > 500_000, `model.onnx ${onnxSize} B, model.onnx_data ${dataSize} B`);

    const texts = ['一架飞机要起飞了。', 'what is the flutter of a swept wing', 'lift'];
    const tok = loadTokenizer(out);
    const session = await ort.InferenceSession.create(join(out, 'onnx', 'model.onnx'));
    const encoder = await Encoder.load(out, { pooling: 'mean', threads: 1 });
    const ours = await encoder.encode(texts, { quiet: true });
    await encoder.close();
    for (const [i, text] of texts.entries()) {
      const ids = tok.encode(text, 128);
      const feed = {
        input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]),
        attention_mask: new ort.Tensor('int64', new BigInt64Array(ids.length).fill(1n), [1, ids.length]),
      };
      const hidden = (await session.run(feed)).last_hidden_state!.data as Float32Array;
      const h = config.hiddenSize;
      const mean = new Float32Array(h);
      for (let t = 0; t < ids.length; t++) for (let j = 0; j < h; j++) mean[j]! += hidden[t * h + j]! / ids.length;
      const norm = Math.hypot(...mean);
      assert.ok(maxAbsDiff(mean.map((x) => x / norm), ours.data.subarray(i * h, (i + 1) * h)) <= 1e-4, text);
    }
    await session.release();
  });

  it('transformers.js loads the external-data export with use_external_data_format', async () => {
    const { env, pipeline } = await import('@huggingface/transformers');
    env.allowRemoteModels = false;
    const dir = tempDir();
    exportModel(join(dir, 'model'), { baseDir: TINY_BERT, config: readConfig(TINY_BERT), weights: loadWeights(TINY_BERT), pooling: 'cls', normalize: true, onnxExternalData: true });
    env.localModelPath = dir;
    const extractor = await pipeline('feature-extraction', 'model', { local_files_only: true, dtype: 'fp32', use_external_data_format: true });
    const theirs = await extractor(['lift and drag'], { pooling: 'cls', normalize: true });
    const encoder = await Encoder.load(join(dir, 'model'), { threads: 1 });
    const ours = await encoder.encode(['lift and drag'], { quiet: true });
    assert.ok(maxAbsDiff(theirs.data as Float32Array, ours.data) <= 1e-4);
    await encoder.close();
    await extractor.dispose();
  });
});

describe('export streams', () => {
  it('a model several times larger than the JS heap exports every ONNX variant, and each loads', async () => {
    // 25.6M float32 weights (102 MB) under node's smallest heap (--max-old-space-size=16 → 64 MB
    // with the young generation): any JS array, string or Buffer the size of a tensor fails.
    const { writeRandomModel } = await import('../scripts/make-models.js');
    const dir = tempDir();
    const model = join(dir, 'wide');
    writeRandomModel(model, { architecture: 'bert', hidden: 128, layers: 1, heads: 2, intermediate: 128, maxLength: 64, vocabSize: 200_000, seed: 9 });
    const out = join(dir, 'out');
    const r = spawnSync(process.execPath, ['--max-old-space-size=16', join(ROOT, 'dist', 'scripts', 'export-check.js'), model, out], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr.slice(-2000));
    const { heapLimitMB } = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    assert.ok(statSync(join(model, 'model.safetensors')).size > 1.5 * heapLimitMB * 2 ** 20, `heap ${heapLimitMB} MB`);
    const texts = ['lift and drag of a swept wing'];
    const encoder = await Encoder.load(model, { pooling: 'cls', threads: 1 });
    const ours = await encoder.encode(texts, { quiet: true });
    await encoder.close();
    const ids = loadTokenizer(model).encode(texts[0]!, 64);
    const feed = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(ids.length).fill(1n), [1, ids.length]),
      token_type_ids: new ort.Tensor('int64', new BigInt64Array(ids.length), [1, ids.length]),
    };
    for (const [file, tolerance] of [['model.onnx', 1e-5], ['model_fp16.onnx', 5e-3], ['model_quantized.onnx', 0.1]] as const) {
      const session = await ort.InferenceSession.create(join(out, 'onnx', file));
      const got = (await session.run(feed)).sentence_embedding!.data as Float32Array;
      await session.release();
      assert.ok(maxAbsDiff(got, ours.data) <= tolerance, `${file}: ${maxAbsDiff(got, ours.data)}`);
    }
  });
});

describe('weights on disk', () => {
  it('sharded model folders (model.safetensors.index.json) load like one file', async () => {
    const dir = tempDir();
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(TINY_BERT, f), join(dir, f));
    const all = readSafetensors(join(TINY_BERT, 'model.safetensors'));
    const names = [...all.keys()];
    const shards = [names.slice(0, 10), names.slice(10)];
    const weightMap: Record<string, string> = {};
    shards.forEach((part, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      writeSafetensors(join(dir, file), new Map(part.map((n) => [n, all.get(n)!])));
      for (const n of part) weightMap[n] = file;
    });
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    assert.equal(weightFiles(dir).length, 2);
    const loaded = loadWeights(dir);
    for (const [n, t] of all) assert.deepEqual(loaded.get(canonicalName(n))!.data, t.data, n);
    const a = await Encoder.load(dir, { threads: 1 });
    const b = await Encoder.load(TINY_BERT, { threads: 1 });
    assert.deepEqual((await a.encode(['lift'], { quiet: true })).data, (await b.encode(['lift'], { quiet: true })).data);
    await a.close();
    await b.close();
    rmSync(join(dir, 'model-00002-of-00002.safetensors'));
    assert.throws(() => loadWeights(dir), /model\.safetensors\.index\.json: lists model-00002-of-00002\.safetensors, which is missing/);
  });

  it('rounds to bfloat16 and half to nearest even, as IEEE 754 defines them', () => {
    // bfloat16 keeps float32's top 16 bits: 1 + 2⁻⁸ lies halfway between 1 and 1 + 2⁻⁷.
    assert.equal(floatToBf16(1), 0x3f80);
    assert.equal(floatToBf16(1 + 2 ** -8), 0x3f80, 'tie to even (down)');
    assert.equal(floatToBf16(1 + 3 * 2 ** -8), 0x3f82, 'tie to even (up)');
    assert.equal(floatToBf16(-2), 0xc000);
    assert.equal(floatToBf16(Infinity), 0x7f80);
    assert.ok((floatToBf16(NaN) & 0x7f80) === 0x7f80 && (floatToBf16(NaN) & 0x7f) !== 0, 'NaN stays NaN');
    // IEEE half: 65504 is the largest finite, 2⁻²⁴ the smallest subnormal.
    assert.equal(floatToHalf(1), 0x3c00);
    assert.equal(floatToHalf(65504), 0x7bff);
    assert.equal(floatToHalf(65520), 0x7c00, 'rounds up to infinity');
    assert.equal(floatToHalf(2 ** -24), 0x0001);
    assert.equal(floatToHalf(2 ** -26), 0x0000, 'underflows to zero');
    assert.equal(floatToHalf(-0.1), 0xae66);
    assert.equal(floatToHalf(1 + 2 ** -11), 0x3c00, 'tie to even');
    for (let b = 0; b < 0x7c00; b += 7) assert.equal(floatToHalf(halfToFloat(b)), b, `half ${b} round-trips`);
  });

  it('export keeps the base model dtype by default; --dtype chooses; loads back within that precision', async () => {
    const dir = tempDir();
    const base = join(dir, 'base-bf16');
    mkdirSync(base);
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(TINY_BERT, f), join(base, f));
    writeSafetensors(join(base, 'model.safetensors'), readSafetensors(join(TINY_BERT, 'model.safetensors')), { dtype: 'BF16' });
    const out = join(dir, 'run');
    assert.equal(cli(['train', '-c', trainConfig(dir, out, { model_name_or_path: base }), '--max-steps', '2', '-q']).code, 0);
    const dtypes = (p: string) => new Set([...readHeader(p).tensors.values()].map((e) => e.dtype));
    assert.deepEqual(dtypes(join(out, 'model.safetensors')), new Set(['BF16']));
    const r = cli(['export', '--checkpoint', join(out, 'checkpoint-2'), '-o', join(dir, 'f16'), '--dtype', 'f16']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(dtypes(join(dir, 'f16', 'model.safetensors')), new Set(['F16']));
    const f32 = cli(['export', '--checkpoint', join(out, 'checkpoint-2'), '-o', join(dir, 'f32'), '--dtype', 'f32']);
    assert.equal(f32.code, 0, f32.err);
    const full = readSafetensors(join(dir, 'f32', 'model.safetensors'));
    const half = readSafetensors(join(dir, 'f16', 'model.safetensors'));
    for (const [n, t] of full) for (let i = 0; i < t.data.length; i++) {
      assert.ok(Math.abs(half.get(n)!.data[i]! - t.data[i]!) <= Math.abs(t.data[i]!) * 2 ** -11 + 2 ** -25, `${n}[${i}]`);
    }
    assert.equal(cli(['export', '--checkpoint', join(out, 'checkpoint-2'), '-o', join(dir, 'bad'), '--dtype', 'f8']).code, 1);
    const before = readFileSync(join(base, 'model.safetensors'));
    const onto = cli(['export', '--checkpoint', join(out, 'checkpoint-2'), '-o', base]);
    assert.equal(onto.code, 1);
    assert.match(onto.err, /refusing to export into .*base-bf16: it holds the base model/);
    assert.ok(readFileSync(join(base, 'model.safetensors')).equals(before), 'the base model is untouched');
    assert.ok(!existsSync(join(dir, 'bad')));
    assert.ok(readFileSync(join(dir, 'f16', 'onnx', 'model.onnx')).length > 0);
  });
});
