import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Encoder } from '../src/models/encoder.js';
import { executionProviders, parseDevice } from '../src/runtime/device.js';
import { resolveConfig } from '../src/training/config.js';
import { TINY_BERT } from './helpers.js';

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
