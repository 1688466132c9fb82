import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { clean } from '../src/jobs/clean.js';
import { beirToRecords } from '../src/jobs/convert.js';
import { encodeFile } from '../src/jobs/encode.js';
import { evaluate } from '../src/jobs/evaluate.js';
import { mine } from '../src/jobs/mine.js';
import { merge, parseShard, runShard, type ShardJob, shardRows } from '../src/jobs/shard.js';
import { floatToHalf, halfToFloat } from '../src/models/safetensors.js';
import { CRANFIELD, FIXTURES, TINY_BERT, TINY_XLMR, tempDir } from './helpers.js';

let dir: string;
let input: string;
// Blocks of 8 texts: the 45 records make 6 blocks, so 3 shards get 2 blocks each.
const base = { model: TINY_BERT, pooling: 'mean' as const, blockTexts: 8, threads: 1, quiet: true };

before(async () => {
  dir = tempDir();
  const all = join(dir, 'cranfield.jsonl');
  await beirToRecords({ beir: CRANFIELD, output: all, quiet: true });
  const lines = readFileSync(all, 'utf8').trim().split('\n').slice(0, 40);
  // Repeats of earlier queries in later blocks (and shards): dropped by clean, equal rows everywhere.
  const again = (i: number) => JSON.stringify({ ...JSON.parse(lines[i]!), note: `copy of ${i}` });
  input = join(dir, 'records.jsonl');
  writeFileSync(input, [...lines, again(1), again(9), again(17), again(30), again(3)].join('\n') + '\n');
});

const bytes = (p: string) => readFileSync(p);

/** Runs `job` whole and as 3 shards + merge; returns the two output paths. */
async function wholeAndSharded(job: ShardJob, run: (o: never) => Promise<unknown>, options: Record<string, unknown>, ext = 'jsonl', name: string = job): Promise<[string, string]> {
  const whole = join(dir, `${name}-whole.${ext}`);
  const sharded = join(dir, `${name}-sharded.${ext}`);
  await run({ ...base, ...options, output: whole } as never);
  const shards = join(dir, `${name}.shards`);
  for (const index of [2, 0, 1]) await runShard(job, { ...base, ...options, output: sharded }, { index, count: 3 }, shards);
  assert.ok(!existsSync(sharded), 'a shard writes no output');
  await merge(shards, { quiet: true });
  return [whole, sharded];
}

describe('sharded jobs: 3 shards + merge = one run, byte for byte', () => {
  it('clean (output and dropped report)', async () => {
    const [whole, sharded] = await wholeAndSharded('clean', clean as never, { input, threshold: 0.97 });
    assert.deepEqual(bytes(sharded), bytes(whole));
    const report = (p: string) => p.replace(/\.jsonl$/, '.dropped.jsonl');
    assert.ok(readFileSync(report(whole), 'utf8').trim().split('\n').length >= 5, 'the planted repeats are dropped');
    assert.deepEqual(bytes(report(sharded)), bytes(report(whole)));
  });

  it('mine (output and stats)', async () => {
    const [whole, sharded] = await wholeAndSharded('mine', mine as never, { input, rangeMin: 2, rangeMax: 12, numNegatives: 3, seed: 5 });
    assert.deepEqual(bytes(sharded), bytes(whole));
    const stats = (p: string) => JSON.parse(readFileSync(p.replace(/\.jsonl$/, '.stats.json'), 'utf8'));
    assert.deepEqual(stats(sharded), stats(whole));
  });

  it('mine with the pool on disk: the same bytes as in memory, whole and sharded', async () => {
    const o = { input, rangeMin: 2, rangeMax: 12, numNegatives: 3, seed: 5 };
    const [whole, sharded] = await wholeAndSharded('mine', mine as never, { ...o, poolOnDisk: true }, 'jsonl', 'mine-disk');
    const memory = join(dir, 'mine-memory.jsonl');
    await mine({ ...base, ...o, output: memory });
    assert.deepEqual(bytes(whole), bytes(memory));
    assert.deepEqual(bytes(sharded), bytes(memory));
    assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'the pool file is gone');
  });

  it('eval (metrics)', async () => {
    const [whole, sharded] = await wholeAndSharded('eval', evaluate as never, { data: input, ks: [1, 5, 10] }, 'json');
    assert.deepEqual(bytes(sharded), bytes(whole));
  });

  it('encode (.npy)', async () => {
    const texts = join(dir, 'texts.txt');
    writeFileSync(texts, readFileSync(input, 'utf8').trim().split('\n').map((l) => JSON.parse(l).query).join('\n') + '\n');
    const [whole, sharded] = await wholeAndSharded('encode', encodeFile as never, { input: texts }, 'npy');
    assert.deepEqual(bytes(sharded), bytes(whole));
  });
});

describe('float16 shards', () => {
  it('store rows in half the bytes; the merge works on the rows rounded to float16', async () => {
    const texts = join(dir, 'texts16.txt');
    writeFileSync(texts, readFileSync(input, 'utf8').trim().split('\n').map((l) => JSON.parse(l).query).join('\n') + '\n');
    const whole = join(dir, 'f16-whole.npy');
    await encodeFile({ ...base, input: texts, output: whole });
    const shards = join(dir, 'f16.shards');
    const merged = join(dir, 'f16-merged.npy');
    for (const index of [0, 1, 2]) await runShard('encode', { ...base, input: texts, output: merged }, { index, count: 3 }, shards, 'f16');
    const f32Shards = join(dir, 'f32.shards');
    await runShard('encode', { ...base, input: texts, output: merged }, { index: 0, count: 3 }, f32Shards);
    const body = (p: string) => statSync(p).size - 10 - readFileSync(p).readUInt16LE(8);
    assert.equal(body(join(shards, 'shard-0-of-3', 'call-0.npy')), body(join(f32Shards, 'shard-0-of-3', 'call-0.npy')) / 2);
    await merge(shards, { quiet: true });
    const rows = (p: string) => {
      const b = readFileSync(p);
      return new Float32Array(Uint8Array.from(b.subarray(10 + b.readUInt16LE(8))).buffer);
    };
    const [a, b] = [rows(whole), rows(merged)];
    assert.equal(a.length, b.length);
    let changed = 0;
    a.forEach((x, i) => {
      assert.equal(b[i], halfToFloat(floatToHalf(x)));
      if (b[i] !== x) changed++;
    });
    assert.ok(changed > a.length / 2, 'the rows were rounded');
    // A float32 shard with float16 ones is refused by name.
    for (const index of [1, 2]) await runShard('encode', { ...base, input: texts, output: merged }, { index, count: 3 }, f32Shards, 'f16');
    await assert.rejects(merge(f32Shards), /shard-1-of-3 and shard-0-of-3 differ in .*--shard-dtype/);
    await assert.rejects(runShard('encode', { ...base, input: texts, output: merged }, { index: 0, count: 3 }, shards, 'f8' as 'f16'), /--shard-dtype must be f32 or f16, got "f8"/);
  });
});

describe('shard checks', () => {
  const shardsOf = async (name: string, count: number, indices: number[], extra: Record<string, unknown> = {}) => {
    const shards = join(dir, name);
    for (const index of indices) await runShard('clean', { ...base, input, output: join(dir, `${name}.jsonl`), ...extra }, { index, count }, shards);
    return shards;
  };

  it('refuses a missing shard, shards of another count, other options or another model, and changed input', async () => {
    await assert.rejects(merge(await shardsOf('gap', 3, [0, 2])), /missing shard-1-of-3/);
    const mixed = await shardsOf('mixed', 3, [0, 1, 2]);
    await shardsOf('mixed', 2, [0]);
    await assert.rejects(merge(mixed), /different shard counts/);
    const other = await shardsOf('other', 2, [0]);
    await shardsOf('other', 2, [1], { threshold: 0.8 });
    await assert.rejects(merge(other), /differ in "threshold"/);
    const model = await shardsOf('model', 2, [0]);
    await shardsOf('model', 2, [1], { model: TINY_XLMR });
    await assert.rejects(merge(model), /shard-1-of-2 was encoded with another model than shard-0-of-2/);
    const changed = join(dir, 'changed.jsonl');
    writeFileSync(changed, readFileSync(input));
    const shards = join(dir, 'changed.shards');
    for (const index of [0, 1]) await runShard('clean', { ...base, input: changed, output: join(dir, 'changed-out.jsonl') }, { index, count: 2 }, shards);
    writeFileSync(changed, readFileSync(input, 'utf8').replace('"query":"', '"query":"edited '));
    await assert.rejects(merge(shards), /did an input file change/);
    const incomplete = await shardsOf('incomplete', 2, [0, 1]);
    rmSync(join(incomplete, 'shard-1-of-2', 'manifest.json'));
    await assert.rejects(merge(incomplete), /shard-1-of-2 is incomplete/);
  });

  it('parses i/N and auto/N from array-job environments, naming bad values', () => {
    assert.deepEqual(parseShard('1/4'), { index: 1, count: 4 });
    assert.deepEqual(parseShard('auto/4', { JOB_COMPLETION_INDEX: '3' }), { index: 3, count: 4 });
    assert.deepEqual(parseShard('auto/4', { SLURM_ARRAY_TASK_ID: '3', SLURM_ARRAY_TASK_MIN: '1' }), { index: 2, count: 4 });
    assert.deepEqual(parseShard('auto/4', { AWS_BATCH_JOB_ARRAY_INDEX: '0' }), { index: 0, count: 4 });
    assert.throws(() => parseShard('3/2'), /--shard 3\/2: index 3 is not below the shard count 2/);
    assert.throws(() => parseShard('0/0'), /--shard 0\/0: the shard count must be at least 1/);
    assert.throws(() => parseShard('one/2'), /--shard "one\/2": expected i\/N/);
    assert.throws(() => parseShard('auto/2', {}), /none of JOB_COMPLETION_INDEX, SLURM_ARRAY_TASK_ID, AWS_BATCH_JOB_ARRAY_INDEX is set/);
  });

  it('gives every shard whole blocks, together every row once', () => {
    for (const [n, block, count] of [[45, 8, 3], [10, 4, 5], [0, 8, 2], [100, 7, 1]] as [number, number, number][]) {
      const parts = Array.from({ length: count }, (_, index) => shardRows(n!, { index, count }, block));
      let at = 0;
      for (const [lo, hi] of parts) {
        assert.equal(lo, at);
        assert.ok(lo % block! === 0 && (hi % block! === 0 || hi === n));
        at = hi;
      }
      assert.equal(at, n);
    }
  });
});

describe('a model whose weights are sharded (model.safetensors.index.json)', () => {
  it('encode --cache-dir, score --cache-dir and --shard work on it (they read a model.safetensors that is not there)', async () => {
    const { cpSync, mkdirSync } = await import('node:fs');
    const { readSafetensors, writeSafetensors } = await import('../src/models/safetensors.js');
    const { score } = await import('../src/jobs/score.js');
    const split = (src: string) => {
      const to = join(tempDir(), 'sharded');
      cpSync(src, to, { recursive: true });
      rmSync(join(to, 'model.safetensors'));
      const names = [...readSafetensors(join(src, 'model.safetensors')).entries()];
      const half = names.length >> 1;
      const files = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
      writeSafetensors(join(to, files[0]!), new Map(names.slice(0, half)));
      writeSafetensors(join(to, files[1]!), new Map(names.slice(half)));
      writeFileSync(join(to, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: Object.fromEntries(names.map(([n], i) => [n, files[i < half ? 0 : 1]])) }));
      return to;
    };
    const model = split(TINY_BERT);
    const out = tempDir();
    const texts = join(out, 'texts.txt');
    writeFileSync(texts, readFileSync(input, 'utf8').trim().split('\n').map((l) => JSON.parse(l).query).join('\n') + '\n');
    const plain = join(out, 'plain.npy');
    await encodeFile({ model: TINY_BERT, input: texts, output: plain, quiet: true, threads: 1 });
    for (const pass of [1, 2]) {
      const cached = join(out, `cached-${pass}.npy`);
      await encodeFile({ model, input: texts, output: cached, quiet: true, threads: 1, cacheDir: join(out, 'cache') });
      assert.deepEqual(bytes(cached), bytes(plain), `pass ${pass} (${pass === 2 ? 'from the cache' : 'filling it'})`);
    }
    const shards = join(out, 'shards');
    const merged = join(out, 'merged.npy');
    for (const index of [0, 1]) await runShard('encode', { model, input: texts, output: merged, quiet: true, threads: 1, blockTexts: 8 }, { index, count: 2 }, shards);
    await merge(shards, { quiet: true });
    assert.deepEqual(bytes(merged), bytes(plain));
    const reranker = split(join(FIXTURES, 'models', 'tiny-xlmr-reranker'));
    const scored = join(out, 'scored.jsonl');
    await score({ reranker, input, output: scored, cacheDir: join(out, 'rcache'), quiet: true, threads: 1 });
    assert.ok(readFileSync(scored, 'utf8').includes('pos_scores'));
  });
});
