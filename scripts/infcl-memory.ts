/**
 * Peak memory and time of the InfoNCE loss and its gradient over embeddings, dense (the whole
 * [B, B·G] score matrix: contrastive) or tiled (inf_cl), for B queries with G passages each.
 * Run one per process, so the peak RSS is this loss's:
 *   node dist/scripts/infcl-memory.js dense|tiled B [G=8] [d=384]
 * Prints {"loss", "queries", "passages", "seconds", "baseRssMiB", "peakRssMiB"}.
 */
import { DenseLoss, InfoNceTiled } from '../src/losses/inf-cl.js';
import { int64Tensor, Session } from '../src/runtime/session.js';
import { GRAD_PREFIX, lossGradGraph } from '../src/training/graphs.js';

const [kind, bArg, gArg, dArg] = process.argv.slice(2);
const [B, G, d] = [Number(bArg), Number(gArg ?? 8), Number(dArg ?? 384)];
if (!(kind === 'dense' || kind === 'tiled') || !(B >= 1)) throw new Error('usage: infcl-memory.js dense|tiled B [G] [d]');
/** Unit rows from a fixed pseudo-random sequence. */
const unitRows = (n: number, seed: number) => {
  const x = new Float32Array(n * d);
  for (let i = 0; i < x.length; i++) x[i] = ((Math.sin(i * 12.9898 + seed * 78.233) * 43758.5453) % 1) - 0.5;
  for (let r = 0; r < n; r++) {
    let ss = 0;
    for (let k = 0; k < d; k++) ss += x[r * d + k]! ** 2;
    for (let k = 0; k < d; k++) x[r * d + k]! /= Math.sqrt(ss);
  }
  return x;
};
const q = unitRows(B, 1);
const p = unitRows(B * G, 2);
const labels = { labels: int64Tensor(BigInt64Array.from({ length: B }, (_, i) => BigInt(i * G)), [B, 1]) };
const baseRssMiB = process.memoryUsage().rss / 2 ** 20;
const loss = kind === 'tiled'
  ? await InfoNceTiled.create({ scale: 50, normalized: true })
  : new DenseLoss(await Session.create(lossGradGraph(d, { temperature: 0.02, normalized: true })), GRAD_PREFIX);
const t0 = performance.now();
const r = await loss.lossAndGradients(q, p, d, labels);
const seconds = (performance.now() - t0) / 1000;
await loss.release();
console.log(JSON.stringify({ loss: r.loss, queries: B, passages: B * G, seconds, baseRssMiB, peakRssMiB: process.resourceUsage().maxRSS / 1024 }));
