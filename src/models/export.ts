/**
 * Writes a model directory that PyTorch, sentence-transformers and transformers.js load:
 * config and tokenizer files copied from the base model, `model.safetensors` with the base
 * model's own tensor names (trained tensors replaced, every other tensor kept), the
 * sentence-transformers modules (Transformer → Pooling → Normalize), and `onnx/model.onnx`,
 * the forward graph returning `last_hidden_state`. Everything is streamed to disk tensor by
 * tensor. Past 1.5 GiB of weights (bge-m3) the ONNX weights go to `onnx/model.onnx_data`
 * (ONNX external data: protobuf caps a file at 2 GiB), which onnxruntime reads from the model's
 * path and transformers.js with `use_external_data_format: true`.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { publish, replaceFolder, settled, tempPathFor, tracked, writeAtomicSync } from '../util/atomic.js';
import { join, resolve } from 'node:path';
import type { Graph } from '../graph/graph.js';
import { needsExternalData, serializeParts } from '../graph/onnx.js';
import type { ModelConfig } from './config.js';
import { positionLimit } from './encoder.js';
import { canonicalName, canonicalNames } from './params.js';
import { exportGraph, modulesJson, ONNX_FILES, type OnnxVariant, TOKENIZER_FILES } from './export-files.js';
import { sentenceTransformersConfig, type Templates } from './prompts.js';
import type { Pooling } from './pooling.js';
import { type NamedTensor, readHeader, readSafetensors, type SafeDType, writeSafetensors } from './safetensors.js';
import { storedDType, weightFiles } from './weights.js';
import { poolingConfig, savedMaxSeqLength } from './st-config.js';
import { HEAD_NAMES } from './m3-heads.js';
import { torchStateDictBytes } from './torch-save.js';

export interface ExportOptions {
  /** The base model directory: config, tokenizer files and untrained tensors come from it. */
  baseDir: string;
  config: ModelConfig;
  /** Trained tensors by canonical (prefix-free) Hugging Face name, in PyTorch layout. */
  weights: Map<string, NamedTensor>;
  pooling: Pooling;
  normalize: boolean;
  /** Query/passage templates trained with: written to config_sentence_transformers.json. */
  templates?: Templates;
  maxLength?: number;
  /** Storage type of model.safetensors (default: the base model's). The ONNX graph is float32. */
  dtype?: SafeDType;
  /** ONNX weights in `onnx/model.onnx_data`: default past 1.5 GiB of weights; true forces it (tests). */
  onnxExternalData?: boolean;
  /** ONNX files to write (default all three: fp32, int8, fp16). */
  onnxVariants?: readonly OnnxVariant[];
  /** Replace a folder that is not an earlier export of ours (its files would be lost). */
  overwrite?: boolean;
  /**
   * The folder holds other things to keep (a training run's checkpoints and log): the model's
   * files are renamed in one by one, the marker last, instead of the folder swapped as a whole.
   */
  keepOthers?: boolean;
}

/** Written last into every export: a folder with it is ours to replace. */
export const EXPORT_MARKER = 'embedtune_export.json';

export { exportGraph, type OnnxVariant } from './export-files.js';

/**
 * The base model's tensors with the trained ones swapped in, under the base model's names.
 * Only tensors that were not trained are read from the base files.
 */
function mergedTensors(baseDir: string, trained: Map<string, NamedTensor>): Map<string, NamedTensor> {
  const out = new Map<string, NamedTensor>();
  for (const file of weightFiles(baseDir)) {
    const names = [...readHeader(file).tensors.keys()];
    const untrained = readSafetensors(file, (name) => !trained.has(canonicalName(name)));
    for (const name of names) out.set(name, trained.get(canonicalName(name)) ?? untrained.get(name)!);
  }
  return out;
}

/**
 * bge-m3's heads beside the encoder, as bge-m3 ships them: trained ones (`sparse_linear.*`,
 * `colbert_linear.*` among the weights) written as torch.save files, else the base folder's
 * copied, so a dense-only fine-tune of bge-m3 keeps its sparse and ColBERT outputs.
 */
function writeM3Heads(dir: string, weights: Map<string, NamedTensor>, baseDir: string): void {
  for (const head of HEAD_NAMES) {
    const [weight, bias] = [weights.get(`${head}.weight`), weights.get(`${head}.bias`)];
    if (weight && bias) writeFileSync(join(dir, `${head}.pt`), torchStateDictBytes(new Map([['weight', weight], ['bias', bias]]), head));
    else for (const f of [`${head}.pt`, `${head}.safetensors`]) if (existsSync(join(baseDir, f))) copyFileSync(join(baseDir, f), join(dir, f));
  }
}

/** Writes `onnx/<name>.onnx` (+ `<name>.onnx_data` when external). */
function writeOnnx(dir: string, graph: Graph, external: boolean, name = 'model'): void {
  const { parts, external: chunks } = serializeParts(graph, external ? { externalDataLocation: `${name}.onnx_data` } : {});
  if (external) writeAtomicSync(join(dir, `${name}.onnx_data`), (write) => chunks.forEach(write));
  writeAtomicSync(join(dir, `${name}.onnx`), (write) => parts.forEach(write));
}

/**
 * Moves the finished export `tmp` to `target`: a new or empty folder is replaced; an earlier
 * export of ours (its marker) or, with `overwrite`, any folder is swapped as a whole (renamed
 * aside, the new one renamed in, the old removed); with `keepOthers` only the model's files are
 * replaced, the marker removed first and written last (so a crash in between leaves a folder
 * that is not taken for a complete export). Anything else is refused, naming what it holds.
 */
function place(tmp: string, target: string, o: Pick<ExportOptions, 'overwrite' | 'keepOthers'>): void {
  const present = existsSync(target) ? readdirSync(target) : [];
  const ours = present.includes(EXPORT_MARKER);
  const files = readdirSync(tmp);
  const clashes = o.keepOthers ? present.filter((f) => files.includes(f)) : present;
  if (clashes.length && !ours && !o.overwrite) {
    throw new Error(`refusing to export into ${target}: it holds ${clashes.slice(0, 4).join(', ')}${clashes.length > 4 ? ', …' : ''} and is not an earlier embedtune export; choose another folder, or pass --overwrite to replace it`);
  }
  if (!o.keepOthers) return replaceFolder(tmp, target, present.length > 0);
  // Each file synced and renamed in; the marker last.
  rmSync(join(target, EXPORT_MARKER), { force: true });
  for (const f of files.filter((f) => f !== EXPORT_MARKER)) {
    rmSync(join(target, f), { recursive: true, force: true });
    publish(join(tmp, f), join(target, f));
  }
  publish(join(tmp, EXPORT_MARKER), join(target, EXPORT_MARKER));
  rmSync(tmp, { recursive: true, force: true });
}

/**
 * Writes the model into `outDir` (created, or replaced as a whole, via a temp directory).
 * @example
 *   await exportModel('runs/ft', { baseDir: 'models/bge-small-en', config, weights: await trainer.hfWeights(), pooling: 'cls', normalize: true });
 */
export function exportModel(outDir: string, o: ExportOptions): void {
  const target = resolve(outDir);
  const tmp = tracked(tempPathFor(target));
  mkdirSync(join(tmp, 'onnx'), { recursive: true });
  mkdirSync(join(tmp, '1_Pooling'));
  try {
    writeFileSync(join(tmp, 'config.json'), JSON.stringify(o.config.raw, null, 2) + '\n');
    for (const f of TOKENIZER_FILES) if (existsSync(join(o.baseDir, f))) copyFileSync(join(o.baseDir, f), join(tmp, f));
    const merged = mergedTensors(o.baseDir, o.weights);
    writeSafetensors(join(tmp, 'model.safetensors'), merged, { dtype: o.dtype ?? storedDType(o.baseDir) });
    writeM3Heads(tmp, o.weights, o.baseDir);
    const dim = o.config.hiddenSize;
    writeFileSync(
      join(tmp, '1_Pooling', 'config.json'),
      JSON.stringify(poolingConfig(o.pooling, dim), null, 2) + '\n',
    );
    if (o.normalize) mkdirSync(join(tmp, '2_Normalize'));
    writeFileSync(join(tmp, 'modules.json'), modulesJson(o.normalize));
    const stConfig = join(o.baseDir, 'config_sentence_transformers.json');
    if (o.templates && (o.templates.query !== '{text}' || o.templates.passage !== '{text}')) {
      writeFileSync(join(tmp, 'config_sentence_transformers.json'), JSON.stringify(sentenceTransformersConfig(o.templates), null, 2) + '\n');
    } else if (existsSync(stConfig)) copyFileSync(stConfig, join(tmp, 'config_sentence_transformers.json'));
    writeFileSync(join(tmp, 'sentence_bert_config.json'), JSON.stringify({ max_seq_length: o.maxLength ?? savedMaxSeqLength(o.baseDir) ?? positionLimit(o.config), do_lower_case: false }, null, 2) + '\n');
    for (const variant of o.onnxVariants ?? (['fp32', 'int8', 'fp16'] as const)) {
      const graph = exportGraph(o.config, canonicalNames(merged), { pooling: o.pooling, normalize: o.normalize }, variant);
      writeOnnx(join(tmp, 'onnx'), graph, o.onnxExternalData ?? needsExternalData(graph), ONNX_FILES[variant]);
    }
    writeFileSync(join(tmp, EXPORT_MARKER), JSON.stringify({ exporter: 'embedtune', base: o.baseDir, files: readdirSync(tmp).sort() }, null, 2) + '\n');
    place(tmp, target, o);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  } finally {
    settled(tmp);
  }
}
