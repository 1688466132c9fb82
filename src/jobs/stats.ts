/** Score summaries and histograms for mined positives and negatives. */

/** Six decimals: enough for cosine scores in reports, short in JSON. */
export const round = (x: number) => Math.round(x * 1e6) / 1e6;

export interface ScoreSummary {
  count: number;
  mean: number;
  std: number;
  min: number;
  p25: number;
  p50: number;
  p75: number;
  max: number;
}

function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** count, mean, population std, min, quartiles (linear interpolation, as numpy) and max. */
export function describeScores(xs: readonly number[]): ScoreSummary {
  const s = Float64Array.from(xs).sort();
  const n = s.length;
  const mean = n ? s.reduce((a, b) => a + b, 0) / n : NaN;
  const std = n ? Math.sqrt(s.reduce((a, b) => a + (b - mean) ** 2, 0) / n) : NaN;
  return { count: n, mean, std, min: n ? s[0]! : NaN, p25: quantile(s, 0.25), p50: quantile(s, 0.5), p75: quantile(s, 0.75), max: n ? s[n - 1]! : NaN };
}

/** Counts in `bins` equal bins over [lo, hi] (cosine range by default); values outside are clamped. */
export function histogram(xs: readonly number[], bins = 40, lo = -1, hi = 1): { lo: number; hi: number; counts: number[] } {
  const counts = new Array<number>(bins).fill(0);
  for (const x of xs) counts[Math.min(bins - 1, Math.max(0, Math.floor(((x - lo) / (hi - lo)) * bins)))]!++;
  return { lo, hi, counts };
}

export function formatScoreTable(rows: Record<string, ScoreSummary>): string {
  const cols: (keyof ScoreSummary)[] = ['count', 'mean', 'std', 'min', 'p25', 'p50', 'p75', 'max'];
  const fmt = (k: keyof ScoreSummary, v: number) => (k === 'count' ? String(v) : Number.isNaN(v) ? '-' : v.toFixed(4));
  const table = [['', ...cols], ...Object.entries(rows).map(([name, s]) => [name, ...cols.map((c) => fmt(c, s[c]))])];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  return table.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')).join('\n');
}
