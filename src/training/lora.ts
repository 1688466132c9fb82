/**
 * LoRA (Hu et al. 2021), as PEFT defines it: a targeted linear layer W [out, in] gets
 * A [r, in] and B [out, r], and computes x·Wᵀ + (x·Aᵀ)·Bᵀ · alpha/r. A starts Kaiming-uniform
 * (bound 1/√in, as PEFT's `kaiming_uniform_(a=√5)`), B at zero, so training starts from the base
 * model. Only A and B train; the base weights are fed as they are (no gradient, no moments, no
 * copy). Export merges W + alpha/r · B·A, or writes the adapter alone in PEFT's layout.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import type { ModelConfig } from '../models/config.js';
import { canonicalName } from '../models/params.js';
import { type NamedTensor, readSafetensors, writeSafetensors } from '../models/safetensors.js';
import { Rng } from '../util/rng.js';

export interface LoraOptions {
  rank: number;
  alpha: number;
  dropout: number;
  /** PEFT module names: the last part of a layer's name (`q_proj`, `query`, `dense`, …), or `all-linear`. */
  targets: string[];
}

/** PEFT's defaults per architecture when `lora_target_modules` is not given (attention projections). */
export const DEFAULT_TARGETS: Record<ModelConfig['architecture'], string[]> = {
  bert: ['query', 'key', 'value'],
  'xlm-roberta': ['query', 'key', 'value'],
  'use-lite': ['qkv'],
  qwen2: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
  qwen3: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
};

export const ADAPTER = /\.lora_[AB]\.weight$/;

/** The linear layers (name without `.weight`) whose module name is one of `targets`; refuses targets that match nothing or a bad rank. */
export function loraLayers(weights: Map<string, NamedTensor>, o: LoraOptions, config: ModelConfig): string[] {
  // A linear layer: a 2-D `.weight` beside which the model has (or could have) a bias, not a lookup table.
  const linears = [...weights.keys()].filter((n) => n.endsWith('.weight') && weights.get(n)!.shape.length === 2 && !/embed/.test(n)).map((n) => n.slice(0, -'.weight'.length));
  const moduleName = (layer: string) => layer.split('.').at(-1)!;
  const available = [...new Set(linears.map(moduleName))].sort();
  const targets = o.targets.includes('all-linear') ? available : o.targets;
  const unknown = targets.filter((t) => !available.includes(t));
  if (unknown.length) throw new Error(`lora_target_modules: ${unknown.map((t) => `"${t}"`).join(', ')} match no layer of this ${config.modelType} model; its linear layers are: ${available.join(', ')}`);
  const layers = linears.filter((l) => targets.includes(moduleName(l)));
  if (!Number.isInteger(o.rank) || o.rank <= 0) throw new Error(`lora_rank must be a positive integer, got ${o.rank}`);
  for (const l of layers) {
    const [a, b] = weights.get(`${l}.weight`)!.shape as [number, number];
    if (o.rank > Math.min(a, b)) throw new Error(`lora_rank ${o.rank} is larger than layer ${l} (${a} × ${b}); choose at most ${Math.min(a, b)}`);
  }
  return layers;
}

/**
 * Adds each layer's adapter to `weights` as PyTorch stores them: `<layer>.lora_A.weight` [r, in]
 * and `<layer>.lora_B.weight` [out, r]. USE-Lite's layers are [in, out] (TensorFlow's layout);
 * its adapters are still [r, in] / [out, r].
 */
export function addAdapters(weights: Map<string, NamedTensor>, layers: string[], rank: number, config: ModelConfig, seed: number): void {
  const rng = new Rng(seed);
  for (const l of layers) {
    const [d0, d1] = weights.get(`${l}.weight`)!.shape as [number, number];
    const [out, inF] = config.architecture === 'use-lite' ? [d1, d0] : [d0, d1];
    const bound = 1 / Math.sqrt(inF);
    weights.set(`${l}.lora_A.weight`, { shape: [rank, inF], data: Float32Array.from({ length: rank * inF }, () => (2 * rng.next() - 1) * bound) });
    weights.set(`${l}.lora_B.weight`, { shape: [out, rank], data: new Float32Array(out * rank) });
  }
}

/**
 * The weights with every adapter folded in (W += alpha/r · B·A) and the adapter tensors removed:
 * a plain model in the base's layout, loadable anywhere.
 */
export function mergeAdapters(weights: Map<string, NamedTensor>, scale: number, config: ModelConfig): Map<string, NamedTensor> {
  const out = new Map<string, NamedTensor>();
  for (const [name, t] of weights) if (!ADAPTER.test(name)) out.set(name, t);
  for (const [name, a] of weights) {
    if (!name.endsWith('.lora_A.weight')) continue;
    const layer = name.slice(0, -'.lora_A.weight'.length);
    const b = weights.get(`${layer}.lora_B.weight`)!;
    const w = out.get(`${layer}.weight`)!;
    const [rank, inF] = a.shape as [number, number];
    const outF = b.shape[0]!;
    const merged = w.data.slice();
    const tf = config.architecture === 'use-lite'; // [in, out]
    for (let o = 0; o < outF; o++) {
      for (let i = 0; i < inF; i++) {
        let s = 0;
        for (let r = 0; r < rank; r++) s += b.data[o * rank + r]! * a.data[r * inF + i]!;
        merged[tf ? i * outF + o : o * inF + i]! += scale * s;
      }
    }
    out.set(`${layer}.weight`, { shape: w.shape, data: merged });
  }
  return out;
}

/**
 * Writes the adapter alone in PEFT's layout: `adapter_config.json` and
 * `adapter_model.safetensors` with `base_model.model.<layer>.lora_{A,B}.weight` tensors, as PEFT
 * names them for the model `AutoModel` (and sentence-transformers) loads: `layers.0.self_attn.q_proj`
 * for Qwen, `encoder.layer.0.attention.self.query` for BERT.
 * @example writeAdapter('runs/ft/adapter', await trainer.hfWeights(), { rank: 16, alpha: 32, dropout: 0, targets: ['q_proj'] }, 'Qwen/Qwen3-Embedding-0.6B');
 */
export function writeAdapter(dir: string, weights: Map<string, NamedTensor>, o: LoraOptions, base: string): void {
  mkdirSync(dir, { recursive: true });
  const tensors = new Map<string, NamedTensor>();
  for (const [name, t] of weights) if (ADAPTER.test(name)) tensors.set(`${PEFT_PREFIX}${name}`, t);
  writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors);
  const config = {
    peft_type: 'LORA',
    base_model_name_or_path: base,
    task_type: 'FEATURE_EXTRACTION',
    r: o.rank,
    lora_alpha: o.alpha,
    lora_dropout: o.dropout,
    target_modules: o.targets,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    modules_to_save: null,
    use_rslora: false,
    use_dora: false,
  };
  writeFileAtomic(join(dir, 'adapter_config.json'), JSON.stringify(config, null, 2) + '\n');
}

const PEFT_PREFIX = 'base_model.model.';

/**
 * A PEFT LoRA adapter folder: its settings and tensors under our names (`<layer>.lora_A.weight`).
 * Tensors for layers the model lacks (BERT's pooler, which embeddings never use) are left out.
 * @example const { tensors, options } = readAdapter('runs/ft/adapter', loadWeights('models/base'));
 */
export function readAdapter(dir: string, weights: Map<string, NamedTensor>): { tensors: Map<string, NamedTensor>; options: LoraOptions } {
  const path = join(dir, 'adapter_config.json');
  let c: Record<string, unknown>;
  try {
    c = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: cannot read (${(e as Error).message})`);
  }
  if (c.peft_type !== 'LORA') throw new Error(`${path}: peft_type ${JSON.stringify(c.peft_type)} is not supported (only LORA)`);
  if (c.use_dora || c.use_rslora) throw new Error(`${path}: DoRA / rsLoRA adapters are not supported`);
  const tensors = new Map<string, NamedTensor>();
  for (const [name, t] of readSafetensors(join(dir, 'adapter_model.safetensors'))) {
    const ours = canonicalName(name.replace(PEFT_PREFIX, '').replace('.default.', '.'));
    if (weights.has(ours.replace(ADAPTER, '.weight'))) tensors.set(ours, t);
  }
  const targets = Array.isArray(c.target_modules) ? (c.target_modules as string[]) : [String(c.target_modules)];
  return { tensors, options: { rank: Number(c.r), alpha: Number(c.lora_alpha), dropout: Number(c.lora_dropout ?? 0), targets } };
}
