/**
 * A fine-tuned model as files in memory, in the layout the Node export writes: config and
 * tokenizer files, model.safetensors, the sentence-transformers modules, and onnx/model.onnx
 * for transformers.js.
 */
import { serialize } from '../graph/onnx.js';
import { exportGraph, modulesJson, TOKENIZER_FILES } from '../models/export-files.js';
import { encodeSafetensors } from '../models/safetensors-format.js';
import { poolingConfig } from '../models/st-modules.js';
import { zipStored } from '../util/zip.js';
import type { FileMap } from './model.js';
import type { WebTrainer } from './trainer.js';

const text = (s: string) => new TextEncoder().encode(s);
const json = (v: unknown) => text(JSON.stringify(v, null, 2) + '\n');

/**
 * @example const files = exportFiles(trainer); // Map: 'model.safetensors' → bytes, …
 */
export function exportFiles(trainer: WebTrainer): FileMap {
  const m = trainer.model;
  const weights = trainer.hfWeights();
  const files: FileMap = new Map();
  files.set('config.json', json(m.config.raw));
  for (const f of TOKENIZER_FILES) if (m.files.has(f)) files.set(f, m.files.get(f)!);
  if (m.files.has('config_sentence_transformers.json')) files.set('config_sentence_transformers.json', m.files.get('config_sentence_transformers.json')!);
  files.set('model.safetensors', encodeSafetensors(weights));
  files.set('1_Pooling/config.json', json(poolingConfig(m.pooling, m.config.hiddenSize)));
  files.set('modules.json', text(modulesJson(m.normalize)));
  files.set('sentence_bert_config.json', json({ max_seq_length: m.maxLength, do_lower_case: false }));
  files.set('onnx/model.onnx', serialize(exportGraph(m.config, weights, { pooling: m.pooling, normalize: m.normalize })).model);
  return files;
}

/** The files as one zip (stored, no compression) under `folder/`, for a download link. */
export function zipFiles(files: FileMap, folder = 'model'): Uint8Array {
  return zipStored([...files].map(([rel, data]) => ({ name: `${folder}/${rel}`, data })), 1);
}
