/**
 * bge-m3's extra heads (Chen et al., 2024, "M3-Embedding"), as its Hub folder ships them beside
 * the encoder: `sparse_linear` (Linear(hidden, 1): a lexical weight per token) and
 * `colbert_linear` (Linear(hidden, colbert_dim): multi-vectors). Read from a safetensors copy where
 * one is present, else from the `torch.save` file (torch-pickle.ts), and checked against the
 * encoder's hidden size.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type NamedTensor, readSafetensors } from './safetensors.js';
import { readTorchStateDict } from './torch-pickle.js';

export interface LinearHead {
  /** [out, hidden], as torch keeps a Linear's weight. */
  weight: NamedTensor;
  /** [out] */
  bias: NamedTensor;
  /** The file it was read from. */
  file: string;
}

export interface M3Heads {
  sparse?: LinearHead;
  colbert?: LinearHead;
}

/** The head `name` of the model folder `dir`, if it has one (`<name>.safetensors`, else `<name>.pt`). */
function readHead(dir: string, name: string, hidden: number, out?: number): LinearHead | undefined {
  const candidates = [join(dir, `${name}.safetensors`), join(dir, `${name}.pt`)];
  const file = candidates.find((f) => existsSync(f));
  if (!file) return undefined;
  const tensors = file.endsWith('.pt') ? readTorchStateDict(file) : readSafetensors(file);
  const weight = tensors.get('weight');
  const bias = tensors.get('bias');
  if (!weight || !bias) throw new Error(`${file}: expected the state dict of a Linear layer ("weight" and "bias"), got ${[...tensors.keys()].join(', ') || 'nothing'}`);
  const rows = out ?? weight.shape[0]!;
  if (weight.shape.length !== 2 || weight.shape[0] !== rows || weight.shape[1] !== hidden) {
    throw new Error(`${file}: weight has shape [${weight.shape.join(', ')}], expected [${out ?? 'out'}, ${hidden}] (the encoder's hidden size is ${hidden})`);
  }
  if (bias.shape.length !== 1 || bias.shape[0] !== rows) throw new Error(`${file}: bias has shape [${bias.shape.join(', ')}], expected [${rows}]`);
  return { weight, bias, file };
}

/**
 * The sparse and ColBERT heads of a bge-m3 folder (either may be absent).
 * @example const { sparse, colbert } = readM3Heads('models/bge-m3', 1024);
 */
export function readM3Heads(dir: string, hidden: number): M3Heads {
  return { sparse: readHead(dir, 'sparse_linear', hidden, 1), colbert: readHead(dir, 'colbert_linear', hidden) };
}
