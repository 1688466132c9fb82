import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Encoder } from '../src/models/encoder.js';
import { executionProviders, parseDevice } from '../src/runtime/device.js';
import { resolveConfig } from '../src/training/config.js';
import { join } from 'node:path';
import { ROOT, TINY_BERT, tempDir } from './helpers.js';

describe('devices', () => {
  it('parses cpu, cuda[:i], webgpu, dml[:i], coreml and names anything else', () => {
    assert.deepEqual(parseDevice('cuda:1'), { name: 'cuda', index: 1, spec: 'cuda:1' });
    assert.deepEqual(parseDevice('webgpu'), { name: 'webgpu', index: undefined, spec: 'webgpu' });
    assert.equal(executionProviders(parseDevice('cpu')), undefined);
    for (const bad of ['tpu', 'cuda:x', 'webgpu:1', 'cpu:0', '']) assert.throws(() => parseDevice(bad), /expected cpu, cuda\[:i\], webgpu, dml\[:i\] or coreml/, bad);
    assert.throws(() => resolveConfig({ model_name_or_path: 'm', output_dir: 'o', train_data: 't', device: 'gpu' }), /--device "gpu"/);
  });

  it('a provider this onnxruntime-node lacks is refused with how to get it; cpu is the default', async () => {
    let cuda: unknown;
    try {
      cuda = executionProviders(parseDevice('cuda'));
    } catch (e) {
      assert.match((e as Error).message, /--device cuda: this onnxruntime-node \(\w+\/\w+\) has no cuda provider \(it has: cpu.*\); .*ONNXRUNTIME_NODE_INSTALL=cuda12/);
    }
    if (cuda) assert.deepEqual(cuda, ['cuda'], 'a machine with the CUDA provider installed gets it');
    if (process.platform === 'linux') assert.throws(() => executionProviders(parseDevice('dml')), /no dml provider.*Windows build/);
    const a = await Encoder.load(TINY_BERT, { device: 'cpu', pooling: 'mean' });
    const b = await Encoder.load(TINY_BERT, { pooling: 'mean' });
    const texts = ['lift', 'drag of a swept wing'];
    assert.deepEqual((await a.encode(texts, { quiet: true })).data, (await b.encode(texts, { quiet: true })).data);
    await Promise.all([a.close(), b.close()]);
  });
});

describe('several encoders (--devices)', () => {
  it('cpu:2x1 deals blocks to two workers and gives the rows of one encoder, bit for bit', async () => {
    const { EncoderPool, parseDevices } = await import('../src/models/encoder-pool.js');
    assert.deepEqual(parseDevices('cpu:2x1'), [{ device: 'cpu', threads: 1 }, { device: 'cpu', threads: 1 }]);
    assert.deepEqual(parseDevices('cuda:0,cuda:1'), [{ device: 'cuda:0' }, { device: 'cuda:1' }]);
    assert.throws(() => parseDevices('cpu:0x1'), /workers and threads must be at least 1/);
    assert.throws(() => parseDevices('cuda:0,tpu'), /--devices "cuda:0,tpu": "tpu" is not a device; expected cpu:NxT/);
    const words = ['lift', 'drag', 'flutter of a swept wing', 'boundary layer', 'shock wave at Mach 2', '一架飞机要起飞了。'];
    // 45 texts in blocks of 8 (6 blocks), with repeats across blocks
    const texts = Array.from({ length: 45 }, (_, i) => `${words[i % 6]} ${i % 7 === 0 ? '' : String(i).repeat(1 + (i % 5))}`);
    const one = await Encoder.load(TINY_BERT, { pooling: 'mean', threads: 1, blockTexts: 8 });
    const pool = await EncoderPool.load(TINY_BERT, { pooling: 'mean', blockTexts: 8, devices: parseDevices('cpu:2x1') });
    try {
      const a = await one.encode(texts, { quiet: true, batchSize: 4 });
      const b = await pool.encode(texts, { quiet: true, batchSize: 4 });
      assert.deepEqual(Buffer.from(b.data.buffer), Buffer.from(a.data.buffer));
      const part = await pool.encode(texts, { quiet: true, batchSize: 4, rows: [16, 40] });
      assert.deepEqual(Buffer.from(part.data.buffer), Buffer.from(a.data.buffer, 16 * a.dim * 4, 24 * a.dim * 4));
      // The cache: kept in the main thread, the same file and key an Encoder uses.
      const cacheDir = join(tempDir(), 'cache');
      const cached = await pool.encode(texts, { quiet: true, batchSize: 4, cacheDir });
      assert.deepEqual(Buffer.from(cached.data.buffer), Buffer.from(a.data.buffer), 'rows with a cold cache');
      const again = await pool.encode(texts, { quiet: true, batchSize: 4, cacheDir });
      assert.deepEqual(Buffer.from(again.data.buffer), Buffer.from(a.data.buffer), 'rows from the cache');
      const before = one.encodedCount;
      await one.encode(texts, { quiet: true, batchSize: 4, cacheDir });
      assert.equal(one.encodedCount, before, 'an Encoder finds every row the pool cached');
    } finally {
      await Promise.all([one.close(), pool.close()]);
    }
  });
});

describe('thread counts past the machine', () => {
  it('--threads, "threads", --devices cpu:NxT and the library refuse more than 4 threads per core, naming the option (they hung)', async () => {
    const { availableParallelism } = await import('node:os');
    const { parseDevices } = await import('../src/models/encoder-pool.js');
    const { spawnSync } = await import('node:child_process');
    const { writeFileSync } = await import('node:fs');
    const cores = availableParallelism();
    const limit = new RegExp(`on a machine with ${cores} cores?; at most ${4 * cores} \\(4 per core\\)`);
    assert.throws(() => parseDevices('cpu:1000x1'), new RegExp(`--devices cpu:1000x1: 1000 threads in all ${limit.source}`));
    assert.throws(() => resolveConfig({ model_name_or_path: 'm', output_dir: 'o', train_data: 't', threads: 100_000 }), /"threads": 100000 threads in all/);
    assert.throws(() => resolveConfig({ model_name_or_path: 'm', output_dir: 'o', train_data: 't', devices: 'cpu:1000x1' }), /--devices cpu:1000x1: 1000 threads in all/);
    await assert.rejects(Encoder.load(TINY_BERT, { threads: 100_000 }), /threads: 100000 threads in all/);
    assert.equal(parseDevices(`cpu:${2 * cores}x2`).length, 2 * cores, 'oversubscribing up to 4 per core is allowed');
    const input = join(tempDir(), 'texts.txt');
    writeFileSync(input, 'lift\ndrag\n');
    const r = spawnSync(process.execPath, [join(ROOT, 'dist', 'src', 'cli.js'), 'encode', '-m', TINY_BERT, '--threads', '100000', '-i', input, '-o', join(tempDir(), 'x.npy')], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /--threads <n>' argument '100000' is invalid\. 100000 threads in all/);
  });
});
