/**
 * Writes the token ids of the parity sentences for each tiny model, for
 * `scripts/torch_reference.py` to embed with PyTorch.
 *   node dist/scripts/reference-inputs.js
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { repoRoot } from './make-models.js';

export const MODELS = ['tiny-bert', 'tiny-xlmr', 'tiny-use', 'tiny-bert-f16', 'tiny-xlmr-bf16-long', 'tiny-qwen2', 'tiny-qwen3'];
/** Token limit of the parity sentences: 128, or 512 for models with 512+ positions. */
export const MAX_LENGTH: Record<string, number> = { 'tiny-xlmr-bf16-long': 512, 'tiny-qwen2': 512, 'tiny-qwen3': 512 };

/** English and Chinese sentences of very different lengths, two past 128 tokens and one past 512. */
export function paritySentences(): string[] {
  const data = join(repoRoot, 'data');
  const lines = (p: string) => readFileSync(join(data, p), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const queries = lines('cranfield/queries.jsonl').slice(0, 8).map((q) => q.text as string);
  const docs = lines('cranfield/corpus.jsonl').slice(0, 3).map((d) => d.text as string);
  const zh = lines('contrastive-zh/train.jsonl').slice(0, 5).flatMap((r) => [r.query as string, r.pos[0] as string]);
  const long = lines('cranfield/corpus.jsonl').slice(3, 9).map((d) => d.text as string).join(' ');
  return ['lift', 'Ünïcödé ﬁ  spaced   text', ...queries, ...docs, ...zh, long.slice(0, 1200), long];
}

/** A training batch: 3 queries, each with a positive and a hard negative (group size 2). */
export function trainingBatch(): { queries: string[]; passages: string[] } {
  const rows = readFileSync(join(repoRoot, 'data', 'contrastive-zh', 'train.jsonl'), 'utf8').trim().split('\n').slice(10, 12).map((l) => JSON.parse(l));
  const cran = readFileSync(join(repoRoot, 'data', 'cranfield', 'corpus.jsonl'), 'utf8').trim().split('\n').slice(5, 7).map((l) => JSON.parse(l).text as string);
  const queries = [...rows.map((r) => r.query as string), 'what is the effect of wing sweep on flutter'];
  const passages = [...rows.flatMap((r) => [r.pos[0] as string, r.neg[0] as string]), ...cran];
  return { queries, passages };
}

/** Loss settings of the gradient fixtures: model, pooling, temperature, Matryoshka dims/weights. */
export const GRADIENT_CASES = [
  { name: 'tiny-bert-cls', model: 'tiny-bert', pooling: 'cls', temperature: 0.05, matryoshkaDims: [] as number[], matryoshkaWeights: [] as number[] },
  { name: 'tiny-xlmr-cls', model: 'tiny-xlmr', pooling: 'cls', temperature: 0.05, matryoshkaDims: [], matryoshkaWeights: [] },
  { name: 'tiny-bert-mean-matryoshka', model: 'tiny-bert', pooling: 'mean', temperature: 0.1, matryoshkaDims: [16, 32], matryoshkaWeights: [0.5, 1] },
  { name: 'tiny-use-mean', model: 'tiny-use', pooling: 'mean', temperature: 0.05, matryoshkaDims: [], matryoshkaWeights: [] },
  // The spec's Qwen2SentenceEmbedding: last token, temperature 0.02 (scripts/torch_qwen_reference.py).
  { name: 'tiny-qwen2-last', model: 'tiny-qwen2', pooling: 'last', temperature: 0.02, matryoshkaDims: [], matryoshkaWeights: [] },
  { name: 'tiny-qwen3-last-matryoshka', model: 'tiny-qwen3', pooling: 'last', temperature: 0.05, matryoshkaDims: [8, 32], matryoshkaWeights: [1, 1] },
];

if (process.argv[1]?.endsWith('reference-inputs.js')) {
  const sentences = paritySentences();
  const batch = trainingBatch();
  const models: Record<string, { maxLength: number; ids: number[][]; queryIds: number[][]; passageIds: number[][] }> = {};
  for (const m of MODELS) {
    const tok = loadTokenizer(join(repoRoot, 'test', 'fixtures', 'models', m));
    models[m] = {
      maxLength: MAX_LENGTH[m] ?? 128,
      ids: sentences.map((s) => tok.encode(s, MAX_LENGTH[m] ?? 128)),
      queryIds: batch.queries.map((s) => tok.encode(s, 16)),
      passageIds: batch.passages.map((s) => tok.encode(s, 32)),
    };
  }
  const out = join(repoRoot, 'test', 'fixtures', 'reference', 'inputs.json');
  writeFileSync(out, JSON.stringify({ sentences, training: batch, models, gradientCases: GRADIENT_CASES }));
}
