/**
 * eval with bge-m3's modes (`modes: ['dense', 'sparse', 'colbert', 'hybrid']`): one pass of the
 * model gives each text's three representations (models/m3.ts), ranked as m3-rank.ts says.
 */
import { meanMetrics, type MetricTable } from '../evaluation/metrics.js';
import { M3Encoder } from '../models/m3.js';
import type { Run } from '../run.js';
import type { RetrievalSet } from './evaluate.js';
import { checkModes, encodeM3, type M3Mode, rankModes, type RankOptions } from './m3-rank.js';

export { M3_MODES, type M3Mode } from './m3-rank.js';

export interface M3EvalOptions extends RankOptions {
  model: string;
  modes: M3Mode[];
  batchSize?: number;
  maxQueryLength?: number;
  maxPassageLength?: number;
  threads?: number;
}

/** Metrics per mode: `{ dense: {...}, sparse: {...}, colbert: {...}, hybrid: {...} }` as asked. */
export async function evaluateM3(o: M3EvalOptions, set: RetrievalSet, ks: number[], run: Run): Promise<{ byMode: Record<string, MetricTable>; queries: number }> {
  const modes = checkModes(o.modes);
  await using m3 = await M3Encoder.load(o.model, { threads: o.threads });
  const qids = [...set.queries.keys()].filter((q) => set.qrels.has(q));
  const ids = set.corpus.map((d) => d.id);
  const bar = run.progress('eval: encode (dense, sparse, colbert)', qids.length + ids.length);
  const q = await encodeM3(m3, qids.map((id) => set.queries.get(id)!), { batchSize: o.batchSize, maxLength: o.maxQueryLength }, bar);
  const p = await encodeM3(m3, set.corpus.map((d) => d.text), { batchSize: o.batchSize, maxLength: o.maxPassageLength }, bar);
  bar.done();
  const depth = ks[ks.length - 1]!;
  const byId = (a: number, b: number) => (ids[a]! < ids[b]! ? -1 : ids[a]! > ids[b]! ? 1 : 0);
  const rankings: Record<string, Map<string, string[]>> = Object.fromEntries(modes.map((m) => [m, new Map()]));
  qids.forEach((qid, i) => {
    for (const [mode, rows] of Object.entries(rankModes(q[i]!, p, modes, depth, o, byId))) rankings[mode]!.set(qid, rows.map((r) => ids[r.row]!));
  });
  const byMode: Record<string, MetricTable> = {};
  let queries = 0;
  for (const [mode, r] of Object.entries(rankings)) {
    const m = meanMetrics(r, set.qrels, ks);
    byMode[mode] = m.metrics;
    queries = m.queries;
  }
  return { byMode, queries };
}
