/**
 * Writes small random BERT and XLM-RoBERTa models in Hugging Face layout, with real
 * `tokenizer.json` files (WordPiece for BERT, SentencePiece-style Unigram for XLM-R) whose
 * vocabularies are built from the bundled Cranfield and Chinese data. Seeded: the same
 * arguments always give the same bytes.
 *
 *   node dist/scripts/make-models.js            # the test fixtures in test/fixtures/models
 *   node dist/scripts/make-models.js minilm DIR # a MiniLM-L6-shaped BERT (benchmarks)
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type NamedTensor, writeSafetensors } from '../src/models/safetensors.js';
import { Rng } from '../src/util/rng.js';
import type { Vectors } from '../src/search/topk.js';

export interface RandomModelSpec {
  architecture: 'bert' | 'xlm-roberta';
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
  maxLength: number;
  /** Vocabulary size for BERT shapes that must match a real model (e.g. 30522); filled with unused pieces. */
  vocabSize?: number;
  seed: number;
}

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root, whether run from src (tsx) or dist. */
export const repoRoot = here.includes(`${join('dist', 'scripts')}`) ? join(here, '..', '..') : join(here, '..');

/** Word and CJK-character frequencies of the bundled data, most frequent first. */
function corpusUnits(): { words: [string, number][]; cjk: [string, number][] } {
  const data = join(repoRoot, 'data');
  const english = readFileSync(join(data, 'cranfield', 'corpus.jsonl'), 'utf8') + readFileSync(join(data, 'cranfield', 'queries.jsonl'), 'utf8');
  const chinese = readFileSync(join(data, 'contrastive-zh', 'train.jsonl'), 'utf8');
  const words = new Map<string, number>();
  for (const line of english.split('\n')) {
    if (!line) continue;
    const { text } = JSON.parse(line);
    for (const w of String(text).toLowerCase().match(/[a-z]+|[0-9]+/g) ?? []) words.set(w, (words.get(w) ?? 0) + 1);
  }
  const cjk = new Map<string, number>();
  for (const ch of chinese) if (/\p{Script=Han}/u.test(ch)) cjk.set(ch, (cjk.get(ch) ?? 0) + 1);
  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  return { words: sorted(words), cjk: sorted(cjk) };
}

const ASCII = 'abcdefghijklmnopqrstuvwxyz0123456789'.split('');
const PUNCT = '.,;:!?()[]{}-+=*/\'"%&$#@<>_~'.split('').concat(['，', '。', '？', '！', '、', '：', '；', '（', '）']);

function specialToken(id: number, content: string) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

/**
 * The post-processor of the real tokenizers: bert-base-uncased pairs `[CLS] A [SEP] B [SEP]` with B
 * and its [SEP] as type 1; XLM-RoBERTa (transformers' XLMRobertaConverter) `<s> A </s> </s> B </s>`,
 * all type 0.
 */
function template(bos: string, bosId: number, eos: string, eosId: number, style: 'bert' | 'roberta') {
  const sp = (id: string, type_id = 0) => ({ SpecialToken: { id, type_id } });
  const seq = (id: string, type_id: number) => ({ Sequence: { id, type_id } });
  return {
    type: 'TemplateProcessing',
    single: [sp(bos), seq('A', 0), sp(eos)],
    pair: style === 'bert' ? [sp(bos), seq('A', 0), sp(eos), seq('B', 1), sp(eos, 1)] : [sp(bos), seq('A', 0), sp(eos), sp(eos), seq('B', 0), sp(eos)],
    special_tokens: {
      [bos]: { id: bos, ids: [bosId], tokens: [bos] },
      [eos]: { id: eos, ids: [eosId], tokens: [eos] },
    },
  };
}

/** A BERT WordPiece tokenizer.json; returns it and its vocabulary size. */
export function bertTokenizer(vocabSize?: number): { json: object; size: number } {
  const { words, cjk } = corpusUnits();
  const specials = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
  const pieces = [...specials, ...ASCII, ...PUNCT, ...ASCII.map((c) => `##${c}`)];
  for (const [c] of cjk.slice(0, 700)) pieces.push(c);
  for (const [w] of words) if (w.length > 1 && pieces.length < 2600) pieces.push(w);
  while (vocabSize !== undefined && pieces.length < vocabSize) pieces.push(`[unused${pieces.length}]`);
  const vocab = Object.fromEntries(pieces.map((p, i) => [p, i]));
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((s, i) => specialToken(i, s)),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: template('[CLS]', 2, '[SEP]', 3, 'bert'),
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
  return { json, size: pieces.length };
}

/** An XLM-R style Unigram (SentencePiece) tokenizer.json, padded with never-chosen pieces to `vocabSize` (bge-m3: 250002). */
export function xlmrTokenizer(vocabSize?: number): { json: object; size: number } {
  const { words, cjk } = corpusUnits();
  const specials = ['<s>', '<pad>', '</s>', '<unk>'];
  const vocab: [string, number][] = specials.map((s) => [s, 0]);
  const total = words.reduce((a, [, n]) => a + n, 0);
  vocab.push(['▁', -3]);
  for (const [w, n] of words.slice(0, 1500)) vocab.push([`▁${w}`, Math.log(n / total)]);
  for (const c of [...ASCII, ...PUNCT]) vocab.push([c, -12], [`▁${c}`, -12.5]);
  for (const [c, n] of cjk.slice(0, 700)) vocab.push([c, Math.log(n / total) - 2]);
  while (vocabSize !== undefined && vocab.length < vocabSize) vocab.push([`<unused${vocab.length}>`, -99]);
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((s, i) => specialToken(i, s)),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' }] },
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    post_processor: template('<s>', 0, '</s>', 2, 'roberta'),
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    model: { type: 'Unigram', unk_id: 3, vocab, byte_fallback: false },
  };
  return { json, size: vocab.length };
}

/** Random weights with the HF tensor names of the architecture. */
export function randomWeights(spec: RandomModelSpec, vocabSize: number, positions: number): Map<string, NamedTensor> {
  const rng = new Rng(spec.seed);
  const rand = () => rng.normal();
  const t = new Map<string, NamedTensor>();
  const make = (name: string, shape: number[], std: number, mean = 0) => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = mean + std * rand();
    t.set(name, { shape, data });
  };
  const h = spec.hidden;
  const ln = (p: string) => {
    make(`${p}.weight`, [h], 0.1, 1);
    make(`${p}.bias`, [h], 0.1);
  };
  const linear = (p: string, inF: number, outF: number) => {
    make(`${p}.weight`, [outF, inF], 1 / Math.sqrt(inF));
    make(`${p}.bias`, [outF], 0.05);
  };
  make('embeddings.word_embeddings.weight', [vocabSize, h], 0.5);
  make('embeddings.position_embeddings.weight', [positions, h], 0.2);
  make('embeddings.token_type_embeddings.weight', [spec.architecture === 'bert' ? 2 : 1, h], 0.2);
  ln('embeddings.LayerNorm');
  for (let i = 0; i < spec.layers; i++) {
    const p = `encoder.layer.${i}`;
    for (const n of ['query', 'key', 'value']) linear(`${p}.attention.self.${n}`, h, h);
    linear(`${p}.attention.output.dense`, h, h);
    ln(`${p}.attention.output.LayerNorm`);
    linear(`${p}.intermediate.dense`, h, spec.intermediate);
    linear(`${p}.output.dense`, spec.intermediate, h);
    ln(`${p}.output.LayerNorm`);
  }
  return t;
}

/** Writes config.json, tokenizer files and model.safetensors for `spec` into `dir`. */
export function writeRandomModel(dir: string, spec: RandomModelSpec): void {
  mkdirSync(dir, { recursive: true });
  const isBert = spec.architecture === 'bert';
  const tok = isBert ? bertTokenizer(spec.vocabSize) : xlmrTokenizer(spec.vocabSize);
  const positions = isBert ? spec.maxLength : spec.maxLength + 2;
  const config = {
    architectures: [isBert ? 'BertModel' : 'XLMRobertaModel'],
    model_type: spec.architecture,
    vocab_size: tok.size,
    hidden_size: spec.hidden,
    num_hidden_layers: spec.layers,
    num_attention_heads: spec.heads,
    intermediate_size: spec.intermediate,
    hidden_act: 'gelu',
    hidden_dropout_prob: 0.1,
    attention_probs_dropout_prob: 0.1,
    max_position_embeddings: positions,
    type_vocab_size: isBert ? 2 : 1,
    initializer_range: 0.02,
    layer_norm_eps: isBert ? 1e-12 : 1e-5,
    pad_token_id: isBert ? 0 : 1,
    bos_token_id: 0,
    eos_token_id: 2,
    position_embedding_type: 'absolute',
  };
  const tokenizerConfig = isBert
    ? { tokenizer_class: 'BertTokenizer', do_lower_case: true, model_max_length: spec.maxLength, cls_token: '[CLS]', sep_token: '[SEP]', pad_token: '[PAD]', unk_token: '[UNK]', mask_token: '[MASK]' }
    : { tokenizer_class: 'XLMRobertaTokenizer', model_max_length: spec.maxLength, bos_token: '<s>', eos_token: '</s>', sep_token: '</s>', cls_token: '<s>', pad_token: '<pad>', unk_token: '<unk>', mask_token: '<mask>' };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tok.json));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig, null, 2) + '\n');
  writeSafetensors(join(dir, 'model.safetensors'), randomWeights(spec, tok.size, positions));
}

/** A USE-Lite vocabulary (`[piece, score]` by id; 6 reserved ids first) from the bundled English data. */
export function useVocabulary(): [string, number][] {
  const { words } = corpusUnits();
  const total = words.reduce((a, [, n]) => a + n, 0);
  const vocab: [string, number][] = [['\ufffd', 0], ['<s>', 0], ['</s>', 0], ['extra_token_id_1', 0], ['extra_token_id_2', 0], ['extra_token_id_3', 0]];
  vocab.push(['\u2581', -3]);
  for (const [w, n] of words.slice(0, 1200)) vocab.push([`\u2581${w}`, Math.log(n / total)]);
  for (const c of [...ASCII, ...PUNCT.slice(0, 29)]) vocab.push([c, -12], [`\u2581${c}`, -12.5]);
  return vocab;
}

/** A small random model with USE-Lite's architecture (embedding 16, hidden 32) for gradient checks. */
export function writeRandomUseModel(dir: string, seed: number): void {
  mkdirSync(join(dir, '1_Pooling'), { recursive: true });
  const vocab = useVocabulary();
  const [e, h, ffn, layers] = [16, 32, 64, 2];
  const rng = new Rng(seed);
  const t = new Map<string, NamedTensor>();
  const make = (name: string, shape: number[], std: number, mean = 0) =>
    t.set(name, { shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => mean + std * rng.normal()) });
  make('embeddings.weight', [vocab.length + 2, e], 0.5);
  // USE's timescales: 1 / 10000^(i / (n − 1)), a fixed signal, not trained.
  t.set('timing.inv_timescales', { shape: [1, e / 2], data: Float32Array.from({ length: e / 2 }, (_, i) => 10000 ** (-i / (e / 2 - 1))) });
  make('layer_0.residual.weight', [e, h], 1 / Math.sqrt(e));
  make('layer_0.residual.bias', [h], 0.05);
  for (let l = 0; l < layers; l++) {
    const inDim = l === 0 ? e : h;
    const ln = (n: string, size: number) => {
      make(`layer_${l}.${n}.weight`, [size], 0.1, 1);
      make(`layer_${l}.${n}.bias`, [size], 0.1);
    };
    ln('attention_ln', inDim);
    make(`layer_${l}.qkv.weight`, [inDim, 3 * inDim], 1 / Math.sqrt(inDim));
    make(`layer_${l}.qkv.bias`, [3 * inDim], 0.05);
    make(`layer_${l}.attention_out.weight`, [inDim, h], 1 / Math.sqrt(inDim));
    make(`layer_${l}.attention_out.bias`, [h], 0.05);
    ln('ffn_ln', h);
    make(`layer_${l}.ffn_in.weight`, [h, ffn], 1 / Math.sqrt(h));
    make(`layer_${l}.ffn_in.bias`, [ffn], 0.05);
    make(`layer_${l}.ffn_out.weight`, [ffn, h], 1 / Math.sqrt(ffn));
    make(`layer_${l}.ffn_out.bias`, [h], 0.05);
  }
  make('head.weight', [h, h], 1 / Math.sqrt(h));
  make('head.bias', [h], 0.05);
  const config = { model_type: 'use-lite', vocab_size: vocab.length + 2, embedding_size: e, hidden_size: h, num_hidden_layers: layers, num_attention_heads: 4, intermediate_size: ffn, max_position_embeddings: 128, layer_norm_eps: 1e-6, pad_token_id: 0, hidden_act: 'relu' };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'UseTokenizer', model_max_length: 128 }, null, 2) + '\n');
  writeFileSync(join(dir, 'vocab.json'), JSON.stringify(vocab));
  writeFileSync(join(dir, '1_Pooling', 'config.json'), JSON.stringify({ word_embedding_dimension: h, pooling_mode_mean_tokens: true }) + '\n');
  writeSafetensors(join(dir, 'model.safetensors'), t);
}

export const TINY_BERT: RandomModelSpec = { architecture: 'bert', hidden: 32, layers: 2, heads: 4, intermediate: 64, maxLength: 128, seed: 1 };
export const TINY_XLMR: RandomModelSpec = { architecture: 'xlm-roberta', hidden: 48, layers: 2, heads: 4, intermediate: 96, maxLength: 128, seed: 2 };
export const MINILM_L6: RandomModelSpec = { architecture: 'bert', hidden: 384, layers: 6, heads: 12, intermediate: 1536, maxLength: 512, vocabSize: 30522, seed: 3 };
export const BGE_BASE: RandomModelSpec = { architecture: 'bert', hidden: 768, layers: 12, heads: 12, intermediate: 3072, maxLength: 512, vocabSize: 30522, seed: 4 };

/** BAAI/bge-m3's shape: XLM-RoBERTa large, 24 layers, hidden 1024, FFN 4096, vocab 250002, 8192 positions (568M parameters). */
export const BGE_M3: RandomModelSpec = { architecture: 'xlm-roberta', hidden: 1024, layers: 24, heads: 16, intermediate: 4096, maxLength: 8192, vocabSize: 250002, seed: 6 };

const SHAPES: Record<string, RandomModelSpec> = { 'tiny-bert': TINY_BERT, 'tiny-xlmr': TINY_XLMR, minilm: MINILM_L6, 'bge-base': BGE_BASE, 'bge-m3': BGE_M3 };

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [shape, dir] = process.argv.slice(2);
  if (shape) {
    if (!SHAPES[shape] || !dir) throw new Error(`usage: make-models.js [${Object.keys(SHAPES).join('|')} DIR]`);
    writeRandomModel(dir, SHAPES[shape]);
  } else {
    writeRandomModel(join(repoRoot, 'test', 'fixtures', 'models', 'tiny-bert'), TINY_BERT);
    writeRandomModel(join(repoRoot, 'test', 'fixtures', 'models', 'tiny-xlmr'), TINY_XLMR);
    writeRandomUseModel(join(repoRoot, 'test', 'fixtures', 'models', 'tiny-use'), 5);
  }
}

/** `n` random unit vectors of width `d` (seeded): search and dedup benchmarks. */
export function unitVectors(n: number, d: number, seed: number): Vectors {
  const rng = new Rng(seed);
  const data = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += (data[i * d + j] = rng.normal()) ** 2;
    const inv = 1 / Math.sqrt(s);
    for (let j = 0; j < d; j++) data[i * d + j]! *= inv;
  }
  return { data, dim: d, count: n };
}
