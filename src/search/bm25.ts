/**
 * BM25 over a pool of texts with wink-bm25-text-search: Lucene's BM25 (k1 = 1.2, b = 0.75,
 * idf = ln(1 + (N − n + 0.5) / (n + 0.5)), tf·(k1 + 1) / (tf + k1·(1 − b + b·|d| / avg|d|))), each
 * query token counted as often as it occurs; checked against bm25s on the same tokens
 * (scripts/bm25_reference.py). Tokens: Intl.Segmenter's words (ICU: English words, Chinese
 * words), NFKC, lower-cased — one tokenizer for English and Chinese, no stemming, no stop words.
 */
import bm25 from 'wink-bm25-text-search';

export const BM25_PARAMS = { k1: 1.2, b: 0.75 };

const segmenter = new Intl.Segmenter('zh', { granularity: 'word' });

/** A text's BM25 tokens: its word-like segments, lower-cased. */
export function bm25Tokens(text: string): string[] {
  const out: string[] = [];
  for (const s of segmenter.segment(text.normalize('NFKC'))) if (s.isWordLike) out.push(s.segment.toLowerCase());
  return out;
}

/**
 * @example
 *   const index = Bm25Index.build(['Lift is the force …', 'Drag is …', 'Thrust …']);
 *   index.search('what is lift', 10); // [{ row: 0, score: 1.9 }]
 */
export class Bm25Index {
  private constructor(
    private readonly engine: ReturnType<typeof bm25>,
    readonly size: number,
  ) {}

  /** Indexes `texts` (row i is text i); at least 3, as the engine's statistics need. */
  static build(texts: readonly string[]): Bm25Index {
    if (texts.length < 3) throw new Error(`BM25: a pool of ${texts.length} text(s); it needs at least 3`);
    const engine = bm25();
    engine.defineConfig({ fldWeights: { text: 1 }, bm25Params: { ...BM25_PARAMS, k: 1 } });
    engine.definePrepTasks([bm25Tokens as (input: never) => unknown]);
    texts.forEach((text, row) => engine.addDoc({ text }, row));
    engine.consolidate(9); // per-term contributions kept to 9 decimals (the engine rounds them)
    return new Bm25Index(engine, texts.length);
  }

  /** The `k` best rows for `query`, best first (ties: the lower row first); rows that share no token are left out. */
  search(query: string, k: number): { row: number; score: number }[] {
    return this.engine
      .search(query, this.size)
      .map(([id, score]) => ({ row: Number(id), score }))
      .sort((a, b) => b.score - a.score || a.row - b.row)
      .slice(0, k);
  }
}
