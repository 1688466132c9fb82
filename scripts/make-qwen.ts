/**
 * Writes random Qwen2 / Qwen3 models in Hugging Face layout with a real byte-level BPE
 * `tokenizer.json` (GPT-2 byte alphabet, merges learned here from the bundled English and
 * Chinese data, Qwen2's pre-tokenizer regex), laid out as Qwen3-Embedding ships it: the
 * post-processor appends `<|endoftext|>` (also the pad token) while tokenizer_config's
 * `eos_token` is `<|im_end|>`, and padding is on the left. Seeded: same arguments, same bytes.
 *
 *   node dist/scripts/make-qwen.js                    # test/fixtures/models/tiny-qwen2, tiny-qwen3
 *   node dist/scripts/make-qwen.js qwen3-0.6b DIR     # Qwen3-Embedding-0.6B's shape (benchmarks)
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type NamedTensor, writeSafetensors } from '../src/models/safetensors.js';
import { Rng } from '../src/util/rng.js';
import { repoRoot } from './make-models.js';

export interface QwenSpec {
  modelType: 'qwen2' | 'qwen3';
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  /** Qwen3 only: head width independent of hidden / heads. */
  headDim?: number;
  intermediate: number;
  /** BPE merges to learn (vocabulary = 256 bytes + merges), then padded to `vocabSize` if given. */
  merges: number;
  vocabSize?: number;
  /** Embedding rows (config vocab_size), past the tokenizer's ids as the real checkpoints have; default: rounded up to 16. */
  rows?: number;
  maxPositions: number;
  ropeTheta: number;
  seed: number;
  /** Write tensor names with the `model.` prefix (Qwen2Model's own save) or without (Qwen3-Embedding's files). */
  prefix: boolean;
}

/** Qwen2's pre-tokenizer pattern, as in its tokenizer.json. */
export const QWEN_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
export const SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];

/** GPT-2's byte → printable character map. */
export function bytesToUnicode(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const map: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) map[b] = String.fromCodePoint(keep.includes(b) ? b : 256 + n++);
  return map;
}

/** Learns `count` BPE merges over the bundled data, most frequent pair first (ties by text). */
export function learnMerges(count: number): string[][] {
  const data = join(repoRoot, 'data');
  const english = readFileSync(join(data, 'cranfield', 'corpus.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l).text as string);
  const chinese = readFileSync(join(data, 'contrastive-zh', 'train.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l).query as string);
  const split = new RegExp(QWEN_PATTERN.replace("(?i:'s|'t|'re|'ve|'m|'ll|'d)", "'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]"), 'gu');
  const byteChars = bytesToUnicode();
  const words = new Map<string, number>();
  for (const text of [...english, ...chinese]) {
    for (const piece of text.match(split) ?? []) {
      const w = [...Buffer.from(piece, 'utf8')].map((b) => byteChars[b]).join('\u0000');
      words.set(w, (words.get(w) ?? 0) + 1);
    }
  }
  let corpus = [...words].map(([w, n]) => ({ symbols: w.split('\u0000'), n }));
  const merges: string[][] = [];
  while (merges.length < count) {
    const pairs = new Map<string, number>();
    for (const { symbols, n } of corpus) for (let i = 0; i + 1 < symbols.length; i++) {
      const key = symbols[i] + '\u0000' + symbols[i + 1];
      pairs.set(key, (pairs.get(key) ?? 0) + n);
    }
    let best: string | undefined;
    let bestN = 0;
    for (const [k, n] of pairs) if (n > bestN || (n === bestN && best !== undefined && k < best)) [best, bestN] = [k, n];
    if (!best) break;
    const [a, b] = best.split('\u0000');
    merges.push([a!, b!]);
    corpus = corpus.map(({ symbols, n }) => {
      const out: string[] = [];
      for (let i = 0; i < symbols.length; i++) {
        if (i + 1 < symbols.length && symbols[i] === a && symbols[i + 1] === b) out.push(a! + b!), i++;
        else out.push(symbols[i]!);
      }
      return { symbols: out, n };
    });
  }
  return merges;
}

/** A Qwen-style byte-level BPE tokenizer.json; returns it and the id of `<|endoftext|>`. */
export function qwenTokenizer(merges: number, vocabSize?: number): { json: object; size: number; endOfText: number } {
  const vocab: Record<string, number> = {};
  for (const c of bytesToUnicode()) vocab[c] = Object.keys(vocab).length;
  const learned = learnMerges(merges);
  for (const [a, b] of learned) vocab[a! + b!] ??= Object.keys(vocab).length;
  let size = Object.keys(vocab).length;
  while (vocabSize !== undefined && size < vocabSize - SPECIALS.length) vocab[`<unused_${size}>`] = size++;
  const added = SPECIALS.map((content, i) => ({ id: size + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const eot = { id: SPECIALS[0], ids: [size], tokens: [SPECIALS[0]] };
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: 'NFC' },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: QWEN_PATTERN }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: SPECIALS[0], type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: SPECIALS[0], type_id: 1 } }],
      special_tokens: { [SPECIALS[0]!]: eot },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: learned.map(([a, b]) => `${a} ${b}`) },
  };
  return { json, size: size + SPECIALS.length, endOfText: size };
}

/** Random weights with Hugging Face's Qwen2/Qwen3 tensor names (no lm_head: an embedder). */
export function qwenWeights(spec: QwenSpec, vocabSize: number): Map<string, NamedTensor> {
  const rng = new Rng(spec.seed);
  const t = new Map<string, NamedTensor>();
  const pre = spec.prefix ? 'model.' : '';
  const make = (name: string, shape: number[], std: number, mean = 0) =>
    t.set(pre + name, { shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => mean + std * rng.normal()) });
  const h = spec.hidden;
  const d = spec.headDim ?? h / spec.heads;
  const linear = (name: string, inF: number, outF: number, bias: boolean) => {
    make(`${name}.weight`, [outF, inF], 1 / Math.sqrt(inF));
    if (bias) make(`${name}.bias`, [outF], 0.05);
  };
  make('embed_tokens.weight', [vocabSize, h], 0.5);
  const qwen2 = spec.modelType === 'qwen2';
  for (let i = 0; i < spec.layers; i++) {
    const p = `layers.${i}`;
    make(`${p}.input_layernorm.weight`, [h], 0.1, 1);
    linear(`${p}.self_attn.q_proj`, h, spec.heads * d, qwen2);
    linear(`${p}.self_attn.k_proj`, h, spec.kvHeads * d, qwen2);
    linear(`${p}.self_attn.v_proj`, h, spec.kvHeads * d, qwen2);
    linear(`${p}.self_attn.o_proj`, spec.heads * d, h, false);
    if (!qwen2) {
      make(`${p}.self_attn.q_norm.weight`, [d], 0.1, 1);
      make(`${p}.self_attn.k_norm.weight`, [d], 0.1, 1);
    }
    make(`${p}.post_attention_layernorm.weight`, [h], 0.1, 1);
    linear(`${p}.mlp.gate_proj`, h, spec.intermediate, false);
    linear(`${p}.mlp.up_proj`, h, spec.intermediate, false);
    linear(`${p}.mlp.down_proj`, spec.intermediate, h, false);
  }
  make('norm.weight', [h], 0.1, 1);
  return t;
}

/** config.json, tokenizer files, sentence-transformers pooling and model.safetensors for `spec`. */
export function writeQwenModel(dir: string, spec: QwenSpec): void {
  mkdirSync(join(dir, '1_Pooling'), { recursive: true });
  const tok = qwenTokenizer(spec.merges, spec.vocabSize);
  const vocabSize = spec.rows ?? Math.ceil(tok.size / 16) * 16;
  const qwen3 = spec.modelType === 'qwen3';
  const config = {
    architectures: [qwen3 ? 'Qwen3Model' : 'Qwen2Model'],
    model_type: spec.modelType,
    vocab_size: vocabSize,
    hidden_size: spec.hidden,
    intermediate_size: spec.intermediate,
    num_hidden_layers: spec.layers,
    num_attention_heads: spec.heads,
    num_key_value_heads: spec.kvHeads,
    ...(qwen3 ? { head_dim: spec.headDim ?? spec.hidden / spec.heads, attention_bias: false } : {}),
    hidden_act: 'silu',
    max_position_embeddings: spec.maxPositions,
    rms_norm_eps: 1e-6,
    rope_theta: spec.ropeTheta,
    rope_scaling: null,
    use_sliding_window: false,
    tie_word_embeddings: qwen3,
    bos_token_id: tok.endOfText,
    eos_token_id: tok.endOfText,
    torch_dtype: 'float32',
  };
  const tokenizerConfig = { tokenizer_class: 'Qwen2Tokenizer', model_max_length: spec.maxPositions, eos_token: '<|im_end|>', pad_token: '<|endoftext|>', padding_side: 'left', clean_up_tokenization_spaces: false };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tok.json));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig, null, 2) + '\n');
  writeFileSync(join(dir, '1_Pooling', 'config.json'), JSON.stringify({ word_embedding_dimension: spec.hidden, pooling_mode_lasttoken: true, include_prompt: true }, null, 2) + '\n');
  writeSafetensors(join(dir, 'model.safetensors'), qwenWeights(spec, vocabSize));
}

export const TINY_QWEN2: QwenSpec = { modelType: 'qwen2', hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 64, merges: 700, maxPositions: 512, ropeTheta: 10000, seed: 21, prefix: true };
export const TINY_QWEN3: QwenSpec = { modelType: 'qwen3', hidden: 32, layers: 2, heads: 4, kvHeads: 2, headDim: 16, intermediate: 64, merges: 700, maxPositions: 512, ropeTheta: 1000000, seed: 22, prefix: false };
/** Qwen3-Embedding-0.6B's shape: 28 layers, hidden 1024, 16 heads / 8 kv heads of 128, FFN 3072, vocab 151,669 (+ padding rows to 151,936). */
export const QWEN3_06B: QwenSpec = { modelType: 'qwen3', hidden: 1024, layers: 28, heads: 16, kvHeads: 8, headDim: 128, intermediate: 3072, merges: 2000, vocabSize: 151669, rows: 151936, maxPositions: 32768, ropeTheta: 1000000, seed: 23, prefix: false };

const SHAPES: Record<string, QwenSpec> = { 'tiny-qwen2': TINY_QWEN2, 'tiny-qwen3': TINY_QWEN3, 'qwen3-0.6b': QWEN3_06B };

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [shape, dir] = process.argv.slice(2);
  if (shape) {
    if (!SHAPES[shape] || !dir) throw new Error(`usage: make-qwen.js [${Object.keys(SHAPES).join('|')} DIR]`);
    writeQwenModel(dir, SHAPES[shape]);
  } else {
    writeQwenModel(join(repoRoot, 'test', 'fixtures', 'models', 'tiny-qwen2'), TINY_QWEN2);
    writeQwenModel(join(repoRoot, 'test', 'fixtures', 'models', 'tiny-qwen3'), TINY_QWEN3);
  }
}
