/**
 * Writes the token ids of the parity sentences for each tiny model, for
 * `scripts/torch_reference.py` to embed with PyTorch.
 *   node dist/scripts/reference-inputs.js
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TextTokenizer } from '../src/models/tokenizer.js';
import { repoRoot } from './make-models.js';

export const MODELS = ['tiny-bert', 'tiny-xlmr'];

/** English and Chinese sentences of very different lengths, one past the 128-token limit. */
export function paritySentences(): string[] {
  const data = join(repoRoot, 'data');
  const lines = (p: string) => readFileSync(join(data, p), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const queries = lines('cranfield/queries.jsonl').slice(0, 8).map((q) => q.text as string);
  const docs = lines('cranfield/corpus.jsonl').slice(0, 3).map((d) => d.text as string);
  const zh = lines('contrastive-zh/train.jsonl').slice(0, 5).flatMap((r) => [r.query as string, r.pos[0] as string]);
  return ['lift', 'Ünïcödé ﬁ  spaced   text', ...queries, ...docs, ...zh];
}

if (process.argv[1]?.endsWith('reference-inputs.js')) {
  const sentences = paritySentences();
  const models: Record<string, { ids: number[][] }> = {};
  for (const m of MODELS) {
    const tok = TextTokenizer.load(join(repoRoot, 'test', 'fixtures', 'models', m));
    models[m] = { ids: sentences.map((s) => tok.encode(s, 128)) };
  }
  writeFileSync(join(repoRoot, 'test', 'fixtures', 'reference', 'inputs.json'), JSON.stringify({ sentences, models }));
}
