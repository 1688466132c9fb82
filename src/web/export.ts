/**
 * A fine-tuned model as files in memory, in the layout the Node export writes: config and
 * tokenizer files, model.safetensors, the sentence-transformers modules, and onnx/model.onnx
 * for transformers.js.
 */
import { serialize } from '../graph/onnx.js';
import { exportGraph, modulesJson, TOKENIZER_FILES } from '../models/export-files.js';
import { encodeSafetensors } from '../models/safetensors-format.js';
import { poolingConfig } from '../models/st-modules.js';
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

/** The files as one zip (stored, no compression), for a download link. */
export function zipFiles(files: FileMap, folder = 'model'): Uint8Array {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const [rel, data] of files) {
    const name = text(`${folder}/${rel}`);
    const crc = crc32(data);
    const local = new Uint8Array(30 + name.length);
    const v = new DataView(local.buffer);
    v.setUint32(0, 0x04034b50, true);
    v.setUint16(4, 20, true);
    v.setUint32(14, crc, true);
    v.setUint32(18, data.length, true);
    v.setUint32(22, data.length, true);
    v.setUint16(26, name.length, true);
    local.set(name, 30);
    const c = new Uint8Array(46 + name.length);
    const w = new DataView(c.buffer);
    w.setUint32(0, 0x02014b50, true);
    w.setUint16(4, 20, true);
    w.setUint16(6, 20, true);
    w.setUint32(16, crc, true);
    w.setUint32(20, data.length, true);
    w.setUint32(24, data.length, true);
    w.setUint16(28, name.length, true);
    w.setUint32(42, offset, true);
    c.set(name, 46);
    parts.push(local, data);
    central.push(c);
    offset += local.length + data.length;
  }
  const size = central.reduce((a, c) => a + c.length, 0);
  const end = new Uint8Array(22);
  const e = new DataView(end.buffer);
  e.setUint32(0, 0x06054b50, true);
  e.setUint16(8, files.size, true);
  e.setUint16(10, files.size, true);
  e.setUint32(12, size, true);
  e.setUint32(16, offset, true);
  const out = new Uint8Array(offset + size + 22);
  let at = 0;
  for (const p of [...parts, ...central, end]) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
