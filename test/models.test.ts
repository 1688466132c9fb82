import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, truncateSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Encoder } from '../src/models/encoder.js';
import { encodeSafetensors, halfToFloat, readSafetensors } from '../src/models/safetensors.js';
import { TINY_BERT, TINY_QWEN3, TINY_XLMR, tempDir, maxAbsDiff } from './helpers.js';
import { transposeInPlace } from '../src/models/params.js';

function copyModel(src: string): string {
  const dir = join(tempDir(), 'model');
  cpSync(src, dir, { recursive: true });
  return dir;
}

describe('model loading errors', () => {
  it('unsupported model_type', async () => {
    const dir = copyModel(TINY_BERT);
    const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...c, model_type: 'gpt2' }));
    await assert.rejects(Encoder.load(dir), /model_type "gpt2" is not supported; supported: bert, xlm-roberta, roberta, camembert, use-lite, qwen2, qwen3/);
  });

  it('Qwen: a missing config key, unsupported RoPE scaling, no end token for last-token pooling', async () => {
    const dir = copyModel(TINY_QWEN3);
    const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    const { num_key_value_heads: _, ...noKv } = c;
    writeFileSync(join(dir, 'config.json'), JSON.stringify(noKv));
    await assert.rejects(Encoder.load(dir), /config.json: field "num_key_value_heads" is missing \(qwen3 models need it\)/);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...c, rope_scaling: { rope_type: 'yarn', factor: 4 } }));
    await assert.rejects(Encoder.load(dir), /field "rope_scaling" is not supported/);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...c, num_key_value_heads: 3 }));
    await assert.rejects(Encoder.load(dir), /num_attention_heads 4 is not a multiple of num_key_value_heads 3/);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(c));
    const tok = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({ ...tok, post_processor: null }));
    await assert.rejects(Encoder.load(dir), /tokenizer.json: appends no end token, and last-token pooling of a qwen3 model/);
    const mean = await Encoder.load(dir, { pooling: 'mean' });
    await mean.close();
  });

  it('missing tokenizer.json and model.safetensors', async () => {
    const dir = copyModel(TINY_BERT);
    rmSync(join(dir, 'model.safetensors'));
    await assert.rejects(Encoder.load(dir), /no model\.safetensors/);
    rmSync(join(dir, 'tokenizer.json'));
    await assert.rejects(Encoder.load(dir), /no tokenizer\.json/);
  });

  it('truncated weights file', async () => {
    const dir = copyModel(TINY_XLMR);
    const p = join(dir, 'model.safetensors');
    truncateSync(p, 200_000);
    await assert.rejects(Encoder.load(dir), /model\.safetensors: truncated: tensor .* ends at byte \d+ but the file has 200000 bytes/);
  });

  it('NaN or infinite weights, and negative or overlapping data_offsets, are refused naming file and tensor', async () => {
    const dir = copyModel(TINY_BERT);
    const p = join(dir, 'model.safetensors');
    const t = readSafetensors(p);
    t.get('encoder.layer.1.output.dense.bias')!.data[3] = NaN;
    writeFileSync(p, encodeSafetensors(t));
    await assert.rejects(Encoder.load(dir), /model\.safetensors: tensor encoder\.layer\.1\.output\.dense\.bias: value NaN at index 3: weights must be finite/);
    t.get('encoder.layer.1.output.dense.bias')!.data[3] = -Infinity;
    writeFileSync(p, encodeSafetensors(t));
    await assert.rejects(Encoder.load(dir), /value -Infinity at index 3/);
    const raw = (header: object, bytes: number) => {
      const json = Buffer.from(JSON.stringify(header));
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(json.length));
      writeFileSync(p, Buffer.concat([len, json, Buffer.alloc(bytes)]));
    };
    raw({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12);
    assert.throws(() => readSafetensors(p), /tensors a and b overlap in the file/);
    raw({ a: { dtype: 'F32', shape: [2], data_offsets: [-8, 0] } }, 8);
    assert.throws(() => readSafetensors(p), /tensor a has invalid data_offsets \[-8,0\]/);
    raw({ a: { dtype: 'F32', shape: [2] } }, 8);
    assert.throws(() => readSafetensors(p), /tensor a has invalid data_offsets undefined/);
  });

  it('a broken 1_Pooling/config.json is named', async () => {
    const dir = copyModel(TINY_BERT);
    mkdirSync(join(dir, '1_Pooling'));
    writeFileSync(join(dir, '1_Pooling', 'config.json'), '{"pooling_mode_cls_token": tru');
    await assert.rejects(Encoder.load(dir), /1_Pooling\/config\.json: not valid JSON/);
  });

  it('a tensor of the wrong shape', async () => {
    const dir = copyModel(TINY_BERT);
    const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...c, intermediate_size: 65 }));
    await assert.rejects(Encoder.load(dir), /tensor "encoder\.layer\.0\.intermediate\.dense\.weight" has shape \[64,32\], expected \[65,32\]/);
  });
});

describe('transposeInPlace', () => {
  it('moves [r, c] to [c, r] for square and non-square shapes, with no copy of the matrix', () => {
    for (const [rows, cols] of [[1, 1], [1, 5], [5, 1], [3, 3], [2, 3], [7, 4], [64, 256], [256, 64]]) {
      const m = Float32Array.from({ length: rows! * cols! }, (_, i) => i);
      transposeInPlace(m, rows!, cols!);
      for (let r = 0; r < rows!; r++) for (let c = 0; c < cols!; c++) assert.equal(m[c * rows! + r], r * cols! + c, `${rows}×${cols} [${r}, ${c}]`);
    }
  });
});

describe('safetensors', () => {
  it('reads F16 and BF16 as float32', () => {
    const dir = tempDir();
    // Hand-built file: F16 [1, -2, 0.5], BF16 [1.5, -3]
    const header = JSON.stringify({ h: { dtype: 'F16', shape: [3], data_offsets: [0, 6] }, b: { dtype: 'BF16', shape: [2], data_offsets: [6, 10] } });
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    const data = Buffer.from(Uint16Array.of(0x3c00, 0xc000, 0x3800, 0x3fc0, 0xc040).buffer);
    const p = join(dir, 'm.safetensors');
    writeFileSync(p, Buffer.concat([len, Buffer.from(header), data]));
    const t = readSafetensors(p);
    assert.deepEqual(Array.from(t.get('h')!.data), [1, -2, 0.5]);
    assert.deepEqual(Array.from(t.get('b')!.data), [1.5, -3]);
    assert.equal(halfToFloat(0x0001), 2 ** -24); // subnormal
  });

  it('round-trips F32 and strips task-head prefixes on load', async () => {
    const dir = copyModel(TINY_BERT);
    const p = join(dir, 'model.safetensors');
    const t = readSafetensors(p);
    const prefixed = new Map([...t].map(([k, v]) => [`bert.${k}`, v]));
    writeFileSync(p, encodeSafetensors(prefixed));
    const a = await Encoder.load(TINY_BERT);
    const b = await Encoder.load(dir);
    const ea = await a.encode(['wing'], { quiet: true });
    const eb = await b.encode(['wing'], { quiet: true });
    assert.equal(maxAbsDiff(ea.data, eb.data), 0);
    await a.close();
    await b.close();
  });

  it('reads pooling from sentence-transformers 1_Pooling/config.json', async () => {
    const dir = copyModel(TINY_BERT);
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(dir, '1_Pooling'));
    writeFileSync(join(dir, '1_Pooling', 'config.json'), JSON.stringify({ word_embedding_dimension: 32, pooling_mode_cls_token: false, pooling_mode_mean_tokens: true }));
    const e = await Encoder.load(dir);
    assert.equal(e.pooling, 'mean');
    await e.close();
  });
});
