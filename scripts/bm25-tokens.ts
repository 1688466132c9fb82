/**
 * The BM25 reference's input (scripts/bm25_reference.py): bundled Cranfield's corpus and 20 of its
 * queries, and 300 passages and 10 queries of the Chinese set, each with our BM25 tokens. Prints JSON.
 *   node dist/scripts/bm25-tokens.js
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bm25Tokens } from '../src/search/bm25.js';
import { repoRoot } from './make-models.js';

const lines = (f: string) => readFileSync(join(repoRoot, 'data', f), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

/** The two sets the fixture covers (the test rebuilds them from the bundled data). */
export function bm25Sets(): Record<'cranfield' | 'zh', { corpus: string[]; queries: string[] }> {
  const zh = lines('contrastive-zh/train.jsonl').slice(0, 150);
  return {
    cranfield: { corpus: lines('cranfield/corpus.jsonl').map((d) => `${d.title} ${d.text}`), queries: lines('cranfield/queries.jsonl').slice(0, 20).map((q) => q.text as string) },
    zh: { corpus: [...new Set(zh.flatMap((r) => [...r.pos, ...r.neg.slice(0, 1)]))] as string[], queries: zh.slice(0, 10).map((r) => r.query as string) },
  };
}
const sets = bm25Sets();
const withTokens = (texts: string[]) => texts.map((text) => ({ text, tokens: bm25Tokens(text) }));
if (process.argv[1]?.endsWith('bm25-tokens.js')) console.log(JSON.stringify(Object.fromEntries(Object.entries(sets).map(([k, s]) => [k, { corpus: withTokens(s.corpus), queries: withTokens(s.queries) }]))));
