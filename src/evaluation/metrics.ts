/**
 * Retrieval metrics, defined exactly as sentence-transformers' InformationRetrievalEvaluator
 * (compute_metrics), generalised to graded relevance for NDCG (gain = grade, as pytrec_eval
 * and BEIR). With binary relevance and one relevant document per query they reduce to the
 * spec's hit rate, MRR and NDCG.
 */

export const METRICS = ['hit', 'mrr', 'ndcg', 'recall', 'precision', 'map'] as const;
export type MetricName = (typeof METRICS)[number];
/** `"ndcg@10"` → value, averaged over queries. */
export type MetricTable = Record<string, number>;

export function dcgAtK(relevances: readonly number[], k: number): number {
  let s = 0;
  for (let i = 0; i < Math.min(relevances.length, k); i++) s += relevances[i]! / Math.log2(i + 2);
  return s;
}

/** Metrics of one query: its ranking (best first) against its relevant documents (id → grade > 0). */
export function queryMetrics(ranking: readonly string[], relevant: ReadonlyMap<string, number>, ks: readonly number[]): MetricTable {
  const out: MetricTable = {};
  const ideal = [...relevant.values()].sort((a, b) => b - a);
  for (const k of ks) {
    const top = ranking.slice(0, k);
    const firstHit = top.findIndex((id) => relevant.has(id));
    let correct = 0;
    let sumPrecision = 0;
    top.forEach((id, rank) => {
      if (relevant.has(id)) {
        correct++;
        sumPrecision += correct / (rank + 1);
      }
    });
    out[`hit@${k}`] = firstHit >= 0 ? 1 : 0;
    out[`mrr@${k}`] = firstHit >= 0 ? 1 / (firstHit + 1) : 0;
    out[`ndcg@${k}`] = dcgAtK(top.map((id) => relevant.get(id) ?? 0), k) / dcgAtK(ideal, k);
    out[`recall@${k}`] = correct / relevant.size;
    out[`precision@${k}`] = correct / k;
    out[`map@${k}`] = sumPrecision / Math.min(k, relevant.size);
  }
  return out;
}

/** Mean of per-query metrics over queries that have at least one relevant document. */
export function meanMetrics(rankings: ReadonlyMap<string, readonly string[]>, qrels: ReadonlyMap<string, ReadonlyMap<string, number>>, ks: readonly number[]): { metrics: MetricTable; queries: number } {
  const sums: MetricTable = {};
  let n = 0;
  for (const [qid, ranking] of rankings) {
    const rel = qrels.get(qid);
    if (!rel || rel.size === 0) continue;
    n++;
    for (const [name, v] of Object.entries(queryMetrics(ranking, rel, ks))) sums[name] = (sums[name] ?? 0) + v;
  }
  const metrics: MetricTable = {};
  for (const m of METRICS) for (const k of ks) metrics[`${m}@${k}`] = n ? sums[`${m}@${k}`]! / n : 0;
  return { metrics, queries: n };
}

/** A fixed-width table: one row per metric, one column per k. */
export function formatMetrics(metrics: MetricTable, ks: readonly number[]): string {
  const header = ['metric', ...ks.map((k) => `@${k}`)];
  const rows = METRICS.map((m) => [m, ...ks.map((k) => metrics[`${m}@${k}`]!.toFixed(4))]);
  const widths = header.map((_, i) => Math.max(...[header, ...rows].map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((c, i) => c.padStart(widths[i]!)).join('  ')).join('\n');
}
