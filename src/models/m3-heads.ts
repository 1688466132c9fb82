/**
 * bge-m3's extra heads (Chen et al., 2024, "M3-Embedding"), as its Hub folder ships them beside
 * the encoder: `sparse_linear` (Linear(hidden, 1): a lexical weight per token) and
 * `colbert_linear` (Linear(hidden, colbert_dim): multi-vectors). Read from a safetensors copy where
 * one is present, else from the `torch.save` file (torch-pickle.ts), and checked against the
 * encoder's hidden size.
 */
import { existsSync, readFileSync } from 'node:fs';
import { Rng } from '../util/rng.js';
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

/** The ids of the tokens bge-m3's sparse head ignores: the tokenizer's special tokens (CLS, EOS, padding, unknown, mask). */
export function specialTokenIds(dir: string): Set<number> {
  const tokenizer = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as { added_tokens?: { id: number; special?: boolean }[] };
  return new Set((tokenizer.added_tokens ?? []).filter((t) => t.special).map((t) => t.id));
}

/** The names the heads' tensors take among a trainer's weights (and in its checkpoints). */
export const HEAD_NAMES = ['sparse_linear', 'colbert_linear'] as const;
export const isHeadTensor = (name: string) => HEAD_NAMES.some((h) => name.startsWith(`${h}.`));

/**
 * The heads of `dir` added to `weights` as `sparse_linear.weight`, … (for unified training). A
 * folder without them (a plain XLM-R) gets new ones as torch initialises a Linear, U(±1/√hidden),
 * seeded, and ColBERT's size `colbertDim` (default: the hidden size, as FlagEmbedding's).
 * @example const { colbertDim } = addM3Heads(weights, 'models/bge-m3', 1024);
 */
export function addM3Heads(weights: Map<string, NamedTensor>, dir: string, hidden: number, o: { colbertDim?: number; seed?: number } = {}): { colbertDim: number; created: string[] } {
  const heads = readM3Heads(dir, hidden);
  const rng = new Rng(o.seed ?? 42);
  const bound = 1 / Math.sqrt(hidden);
  const fresh = (out: number): Omit<LinearHead, 'file'> => {
    const u = (n: number) => Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * bound);
    return { weight: { shape: [out, hidden], data: u(out * hidden) }, bias: { shape: [out], data: u(out) } };
  };
  const created: string[] = [];
  const colbertDim = heads.colbert?.weight.shape[0] ?? o.colbertDim ?? hidden;
  if (o.colbertDim !== undefined && o.colbertDim !== colbertDim) throw new Error(`colbert_dim ${o.colbertDim}: ${heads.colbert!.file} has ${colbertDim} outputs`);
  for (const [name, head, out] of [['sparse_linear', heads.sparse, 1], ['colbert_linear', heads.colbert, colbertDim]] as const) {
    const h = head ?? (created.push(name), fresh(out));
    weights.set(`${name}.weight`, { shape: [...h.weight.shape], data: Float32Array.from(h.weight.data) });
    weights.set(`${name}.bias`, { shape: [...h.bias.shape], data: Float32Array.from(h.bias.data) });
  }
  return { colbertDim, created };
}
