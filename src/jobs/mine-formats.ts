/**
 * mine's output shapes. `seed` (default) writes each input record back with its new negatives;
 * the others are sentence-transformers' `mine_hard_negatives(output_format=…)` rows, with its
 * column names for our records (`query`, `positive`) and its rules: `triplet` one row per
 * (query, positive, negative); `n-tuple` one row per (query, positive) with `negative_1…n`, and
 * only rows that got all n; `labeled-pair` the positives (label 1) then the negatives (label 0);
 * `labeled-list` one row per (query, positive) with the positive first and its labels. With
 * scores, `scores` / `score` replace the labels as sentence-transformers does.
 */

export const OUTPUT_FORMATS = ['seed', 'triplet', 'n-tuple', 'labeled-pair', 'labeled-list'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export interface RecordRows {
  query: string;
  positives: readonly string[];
  negatives: readonly string[];
  /** Scores of the positives and negatives, when asked for. */
  scores?: { pos: readonly number[]; neg: readonly (number | null)[] };
}

/**
 * The rows one record becomes.
 * @example formatRows('triplet', { query: 'q', positives: ['p'], negatives: ['n1', 'n2'] }, 2);
 *   // [{ query: 'q', positive: 'p', negative: 'n1' }, { query: 'q', positive: 'p', negative: 'n2' }]
 */
export function formatRows(format: Exclude<OutputFormat, 'seed'>, r: RecordRows, numNegatives: number): Record<string, unknown>[] {
  const { query, positives, negatives, scores } = r;
  const rows: Record<string, unknown>[] = [];
  switch (format) {
    case 'triplet':
      positives.forEach((positive, i) =>
        negatives.forEach((negative, j) => rows.push({ query, positive, negative, ...(scores && { scores: [scores.pos[i], scores.neg[j]] }) })),
      );
      break;
    case 'n-tuple':
      if (negatives.length < numNegatives) break;
      positives.forEach((positive, i) =>
        rows.push({
          query,
          positive,
          ...Object.fromEntries(negatives.slice(0, numNegatives).map((n, j) => [`negative_${j + 1}`, n])),
          ...(scores && { scores: [scores.pos[i], ...scores.neg.slice(0, numNegatives)] }),
        }),
      );
      break;
    case 'labeled-pair':
      positives.forEach((positive, i) => rows.push({ query, positive, ...(scores ? { score: scores.pos[i] } : { label: 1 }) }));
      negatives.forEach((negative, j) => rows.push({ query, positive: negative, ...(scores ? { score: scores.neg[j] } : { label: 0 }) }));
      break;
    case 'labeled-list':
      if (!negatives.length) break;
      positives.forEach((positive, i) =>
        rows.push({ query, positive: [positive, ...negatives], ...(scores ? { scores: [scores.pos[i], ...scores.neg] } : { labels: [1, ...negatives.map(() => 0)] }) }),
      );
      break;
  }
  return rows;
}
