/**
 * Greedy near-duplicate removal in input order: a vector is dropped when its inner product
 * with any already kept vector is ≥ threshold. Runs block by block: one ORT run scores a
 * block against every vector kept so far (max + argmax) and against itself; the block is then
 * resolved in order with the in-block scores. Kept vectors are packed into one preallocated
 * buffer that is passed zero-copy.
 */
import { Graph } from '../graph/graph.js';
import * as op from '../graph/ops.js';
import { floatTensor, Session } from '../runtime/session.js';
import { noProgress, type Reporter } from '../progress.js';
import type { Vectors } from './topk.js';

export interface DedupResult {
  /** keep[i]: whether row i is kept. */
  keep: Uint8Array;
  /** For a dropped row: the kept row it matched best; -1 for kept rows. */
  matchedRow: Int32Array;
  /** For a dropped row: its score against `matchedRow`. */
  matchedScore: Float32Array;
}

function dedupGraph(): Graph {
  const g = new Graph('dedup');
  const block = g.input('block', 'float32', ['b', 'dim']);
  const kept = g.input('kept', 'float32', ['m', 'dim']);
  const vsKept = op.matmulTransB(block, kept);
  g.output(op.reduceMax(vsKept, [1], false), 'max_kept', ['b']);
  g.output(op.argMax(vsKept, 1, false), 'argmax_kept', ['b']);
  g.output(op.matmulTransB(block, block), 'in_block', ['b', 'b']);
  return g;
}

/**
 * @example
 *   const { keep } = await greedyDedup(embeddings, 0.7);
 *   texts.filter((_, i) => keep[i]);
 */
export async function greedyDedup(
  v: Vectors,
  threshold: number,
  o: { blockRows?: number; threads?: number; progress?: Reporter } = {},
): Promise<DedupResult> {
  await using session = await Session.create(dedupGraph(), { threads: o.threads });
  const d = v.dim;
  const keep = new Uint8Array(v.count);
  const matchedRow = new Int32Array(v.count).fill(-1);
  const matchedScore = new Float32Array(v.count);
  // Packed kept vectors and their original rows, from slot 1; slot 0 is a zero placeholder
  // fed (and ignored) only while nothing is kept, since ORT cannot reduce over zero rows.
  const kept = new Float32Array((v.count + 1) * d);
  const keptRow = new Int32Array(v.count + 1).fill(-1);
  let m = 1;
  const blockRows = o.blockRows ?? 512;
  const bar = (o.progress ?? noProgress)('dedup', v.count);
  try {
    for (let b0 = 0; b0 < v.count; b0 += blockRows) {
      const nb = Math.min(blockRows, v.count - b0);
      const out = await session.run({
        block: floatTensor(v.data.subarray(b0 * d, (b0 + nb) * d), [nb, d]),
        // Past the first kept row, the zero placeholder is left out.
        kept: m > 1 ? floatTensor(kept.subarray(d, m * d), [m - 1, d]) : floatTensor(kept.subarray(0, d), [1, d]),
      });
      const maxKept = out.max_kept!.data as Float32Array;
      const argKept = out.argmax_kept!.data as BigInt64Array;
      const inBlock = out.in_block!.data as Float32Array;
      const keptInBlock: number[] = [];
      for (let i = 0; i < nb; i++) {
        let best = -Infinity;
        let bestRow = -1;
        if (m > 1) {
          best = maxKept[i]!;
          bestRow = keptRow[Number(argKept[i]) + 1]!;
        }
        for (const j of keptInBlock) {
          if (inBlock[i * nb + j]! > best) {
            best = inBlock[i * nb + j]!;
            bestRow = b0 + j;
          }
        }
        if (best >= threshold) {
          matchedRow[b0 + i] = bestRow;
          matchedScore[b0 + i] = best;
        } else {
          keep[b0 + i] = 1;
          keptInBlock.push(i);
        }
      }
      for (const i of keptInBlock) {
        kept.set(v.data.subarray((b0 + i) * d, (b0 + i + 1) * d), m * d);
        keptRow[m++] = b0 + i;
      }
      bar.tick(nb);
    }
  } finally {
    bar.done();
  }
  return { keep, matchedRow, matchedScore };
}
