/**
 * Exports a model folder as `train` does at the end (every ONNX variant), reporting time and peak
 * memory: the check that a big model (bge-m3) exports within a small JS heap.
 *
 *   node --max-old-space-size=256 dist/scripts/export-check.js MODEL_DIR OUT_DIR
 */
import { readConfig } from '../src/models/config.js';
import { loadWeights } from '../src/models/weights.js';
import { exportModel } from '../src/models/export.js';
import { getHeapStatistics } from 'node:v8';

const [dir, out] = process.argv.slice(2);
if (!dir || !out) throw new Error('usage: export-check MODEL_DIR OUT_DIR');
const t0 = performance.now();
const config = readConfig(dir);
const weights = loadWeights(dir);
exportModel(out, { baseDir: dir, config, weights, pooling: 'cls', normalize: true });
const heap = getHeapStatistics();
console.log(JSON.stringify({ seconds: +((performance.now() - t0) / 1000).toFixed(1), heapLimitMB: Math.round(heap.heap_size_limit / 2 ** 20), peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024) }));
