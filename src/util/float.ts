/**
 * A float32 score as the shortest decimal that reads back as the same float32: written scores
 * are lossless (Math.fround(JSON.parse(text)) is the score) and short (0.3, not
 * 0.30000001192092896). Every score a job writes — embedding or reranker, `mine` or `score` —
 * goes through here, so one pair gets one text.
 * @example float32Value(Math.fround(0.3)); // 0.3
 */
export function float32Value(x: number): number {
  const f = Math.fround(x);
  if (!Number.isFinite(f)) return f;
  for (let digits = 1; digits < 9; digits++) {
    const short = Number(f.toPrecision(digits));
    if (Math.fround(short) === f) return short;
  }
  return Number(f.toPrecision(9)); // 9 significant digits identify every float32
}
